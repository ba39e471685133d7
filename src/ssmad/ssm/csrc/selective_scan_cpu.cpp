// Selective scan (Mamba-1 core recurrence) for CPUs: forward and backward.
//
//   h_t = exp(dt_t * A) * h_{t-1} + dt_t * B_t * u_t        (h_0 = 0, per channel d and state n)
//   y_t = <C_t, h_t> + D * u_t
//
// Layouts (all contiguous, row-major):
//   u, dt, y, dy, du, ddt : (batch, dim, L)        A, dA : (dim, N)        D : (dim,) or null
//   B, C, dB, dC          : (batch, G, N, L)       group g serves channels [g*P, (g+1)*P), P = dim / G
//   ckpt                  : (batch, dim, n_chunks, N)   state before each chunk of T steps (saved by the
//                            forward when gradients are needed; the backward recomputes inside a chunk)
//
// Vectorisation runs across W consecutive channels of one group (16 floats or 8 doubles per 64-byte vector where
// the CPU has AVX-512, else 8 floats or 4 doubles per 32-byte vector),
// which share B_t and C_t: every state update is a vector FMA with a broadcast scalar, and no horizontal sum
// is needed in the forward. exp() is a vector polynomial (float) so the loop stays in registers.
//
// Work is split into independent "items" so the caller (Python thread pool; the GIL is released by ctypes)
// can run item ranges in parallel:
//   forward  item = (b, g, block of W channels)
//   backward item = (b, g, split s) where the group's channel blocks are divided into S splits; each split
//             writes its own partial dB/dC slice (S, batch, G, N, L), summed by the caller.
// Partial dA (batch, dim, N) and dD (batch, dim) are written per batch element and summed by the caller.
//
// The readable oracle is ssmad/ssm/reference.py; tests compare values and gradients against it.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernel_common.h"

namespace {

using ssmad_kernels::DenormalGuard;
using ssmad_kernels::kLog2e;
using ssmad_kernels::vexp2;
using ssmad_kernels::kVecBytes;
using ssmad_kernels::sum_lanes_n;
using ssmad_kernels::sum_lanes_run;
using ssmad_kernels::run_items;

template <typename T>
struct VecTraits;

template <>
struct VecTraits<float> {
  typedef float V __attribute__((vector_size(kVecBytes)));
  typedef int32_t I __attribute__((vector_size(kVecBytes)));
  static constexpr int W = kVecBytes / 4;
};

template <>
struct VecTraits<double> {
  typedef double V __attribute__((vector_size(kVecBytes)));
  typedef int64_t I __attribute__((vector_size(kVecBytes)));
  static constexpr int W = kVecBytes / 8;
};

typedef VecTraits<float>::V vf;
typedef VecTraits<float>::I vi;
typedef VecTraits<double>::V vd;


// softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|). With v = e^-|x| in (0, 1] and s = v / (2 + v) <= 1/3,
// log1p(v) = 2 atanh(s) = 2 s (1 + s^2/3 + s^4/5 + ... + s^10/11), truncation error below 1e-7. (torch returns x
// itself above 20, where this formula agrees to float precision.)
inline vf vsoftplus(vf x) {
  const vf zero = vf{};
  const vf negabs = x < -x ? x : -x;
  const vf v = vexp2(negabs * (float)kLog2e);
  const vf s = v / (v + 2.0f);
  const vf s2 = s * s;
  vf p = vf{} + 1.0f / 11.0f;
  p = p * s2 + 1.0f / 9.0f;
  p = p * s2 + 1.0f / 7.0f;
  p = p * s2 + 1.0f / 5.0f;
  p = p * s2 + 1.0f / 3.0f;
  p = p * s2 + 1.0f;
  return (x > zero ? x : zero) + (s + s) * p;
}

inline vd vsoftplus(vd x) {
  vd out = x;
  for (int i = 0; i < VecTraits<double>::W; ++i) out[i] = x[i] > 20.0 ? x[i] : std::log1p(std::exp(x[i]));
  return out;
}

// Per-channel-block state storage: a fixed array the compiler can keep in registers for the common N = 16, a heap
// vector for any other N.
template <typename V, int NS>
struct StateBuf {
  V a[NS];
  explicit StateBuf(int64_t) {}
  V* data() { return a; }
};

template <typename V>
struct StateBuf<V, 0> {
  std::vector<V> a;
  explicit StateBuf(int64_t n) : a(n) {}
  V* data() { return a.data(); }
};

// One time step for a block of channels: h[n] <- 2^(dt * A2[n]) h[n] + (dt u) B[n] (A2 = A log2 e), returning
// sum_n C[n] h[n]. B and C are scalars shared by the block (broadcast). Two partial sums shorten the chain.
template <typename V, typename T, int NS>
inline V state_step(V* __restrict h, const V* __restrict A2, V dtv, V duv, const T* __restrict bt,
                    const T* __restrict ct, int64_t n_state) {
  const int64_t N = NS ? NS : n_state;
  V y0 = V{}, y1 = V{};
  int64_t n = 0;
#pragma GCC unroll 16
  for (; n + 2 <= N; n += 2) {
    const V a0 = vexp2(dtv * A2[n]), a1 = vexp2(dtv * A2[n + 1]);
    h[n] = a0 * h[n] + duv * bt[n];
    h[n + 1] = a1 * h[n + 1] + duv * bt[n + 1];
    y0 += h[n] * ct[n];
    y1 += h[n + 1] * ct[n + 1];
  }
  if (n < N) {
    const V a = vexp2(dtv * A2[n]);
    h[n] = a * h[n] + duv * bt[n];
    y0 += h[n] * ct[n];
  }
  return y0 + y1;
}

// One recomputed forward step, kept for the reverse pass: a[n] = 2^(dt A2[n]), h[n] <- a[n] h[n] + (dt u) B[n],
// both stored (hs, as) for this step. NS = N at compile time (0: runtime n_state), so N = 16 is unrolled.
template <typename V, typename T, int NS>
inline void recompute_step(V* __restrict h, const V* A2, V dtv, V duv, const T* bt, V* hs, V* as, int64_t n_state) {
  const int64_t N = NS ? NS : n_state;
#pragma GCC unroll 16
  for (int64_t n = 0; n < N; ++n) {
    const V a = vexp2(dtv * A2[n]);
    h[n] = a * h[n] + duv * bt[n];
    hs[n] = h[n];
    as[n] = a;
  }
}

// One step of the reverse (adjoint) recurrence for a block of channels, shared by both backwards: with
// gn = g[n] + dy C[n] (dL/dh_t), accumulate dA[n] += gn a[n] h_{t-1}[n] dt, dB[n] += gn dt u, dC[n] += dy h_t[n],
// gB = <gn, B> and dd = <gn a h_{t-1}, A>, and carry g[n] <- gn a[n] to step t-1.
template <typename V, typename T, int NS>
inline void adjoint_step(V* __restrict g, const V* a, const V* h, const V* hp, const V* Ak, const T* bt, const T* ct,
                         V dyv, V dtv, V duv, V* dA, V* dB, V* dC, V& gB, V& dd, int64_t n_state) {
  const int64_t N = NS ? NS : n_state;
  V dd4[4] = {dd, V{}, V{}, V{}}, gB4[4] = {gB, V{}, V{}, V{}};  // four partial sums: shorter FMA chains
#pragma GCC unroll 16
  for (int64_t n = 0; n < N; ++n) {
    const V gn = g[n] + dyv * ct[n];
    const V q = gn * a[n] * hp[n];
    dd4[n & 3] += q * Ak[n];
    dA[n] += q * dtv;
    gB4[n & 3] += gn * bt[n];
    dB[n] += gn * duv;
    dC[n] += dyv * h[n];
    g[n] = gn * a[n];
  }
  dd = (dd4[0] + dd4[1]) + (dd4[2] + dd4[3]);
  gB = (gB4[0] + gB4[1]) + (gB4[2] + gB4[3]);
}

// Two consecutive steps of adjoint_step at once, step 1 then step 0 = the one before it (h1 = h_t, h0 = h_{t-1},
// hm = h_{t-2}): the state h_{t-1} loaded once for both, dA updated once for both.
template <typename V, typename T, int NS>
inline void adjoint_pair(V* __restrict g, const V* a1, const V* h1, const V* a0, const V* h0, const V* hm, const V* Ak,
                         const T* bt1, const T* ct1, const T* bt0, const T* ct0, V dy1, V dt1, V du1, V dy0, V dt0,
                         V du0, V* dA, V* dB1, V* dC1, V* dB0, V* dC0, V& gB1, V& dd1, V& gB0, V& dd0,
                         int64_t n_state) {
  const int64_t N = NS ? NS : n_state;
  V d1[2] = {V{}, V{}}, b1[2] = {V{}, V{}}, d0[2] = {V{}, V{}}, b0[2] = {V{}, V{}};
#pragma GCC unroll 16
  for (int64_t n = 0; n < N; ++n) {
    const V hp = h0[n];
    const V gn1 = g[n] + dy1 * ct1[n];
    const V q1 = gn1 * a1[n] * hp;
    const V gn0 = gn1 * a1[n] + dy0 * ct0[n];
    const V q0 = gn0 * a0[n] * hm[n];
    g[n] = gn0 * a0[n];
    d1[n & 1] += q1 * Ak[n];
    d0[n & 1] += q0 * Ak[n];
    dA[n] += q1 * dt1 + q0 * dt0;
    b1[n & 1] += gn1 * bt1[n];
    b0[n & 1] += gn0 * bt0[n];
    dB1[n] += gn1 * du1;
    dB0[n] += gn0 * du0;
    dC1[n] += dy1 * h1[n];
    dC0[n] += dy0 * hp;
  }
  dd1 = d1[0] + d1[1], gB1 = b1[0] + b1[1], dd0 = d0[0] + d0[1], gB0 = b0[0] + b0[1];
}

struct Dims {
  int64_t batch, dim, N, L, G, chunk;
  int64_t P() const { return dim / G; }
  int64_t n_chunks() const { return (L + chunk - 1) / chunk; }
};

// Copy rows [d0, d0 + nl) x [t0, t0 + tl) of a (.., L) array into a time-major vector buffer out[t][lane].
template <typename T, typename V>
inline void load_block(const T* src, int64_t L, int64_t t0, int64_t tl, int nl, V* out) {
  for (int lane = 0; lane < nl; ++lane) {
    const T* row = src + lane * L + t0;
    for (int64_t t = 0; t < tl; ++t) out[t][lane] = row[t];
  }
}

template <typename T, typename V>
inline void store_block(const V* in, int64_t L, int64_t t0, int64_t tl, int nl, T* dst) {
  for (int lane = 0; lane < nl; ++lane) {
    T* row = dst + lane * L + t0;
    for (int64_t t = 0; t < tl; ++t) row[t] = in[t][lane];
  }
}

// Copy B[n][t0 .. t0 + tl) for all n into a time-major scalar buffer out[t * N + n].
template <typename T>
inline void load_bc(const T* src, int64_t N, int64_t L, int64_t t0, int64_t tl, T* out) {
  for (int64_t n = 0; n < N; ++n) {
    const T* row = src + n * L + t0;
    for (int64_t t = 0; t < tl; ++t) out[t * N + n] = row[t];
  }
}

template <typename T, int NS>
void forward_item(const Dims& dm, const T* u, const T* dt, const T* A, const T* B, const T* C, const T* D, T* y,
                  T* last, T* ckpt, int64_t item) {
  typedef typename VecTraits<T>::V V;
  constexpr int W = VecTraits<T>::W;
  const int64_t N = NS ? NS : dm.N, L = dm.L, TT = dm.chunk, P = dm.P(), nblk = (P + W - 1) / W;
  const int64_t blk = item % nblk, bg = item / nblk, g = bg % dm.G, b = bg / dm.G;
  const int64_t d0 = g * P + blk * W;
  const int nl = (int)std::min<int64_t>(W, g * P + P - d0);
  const int64_t row0 = b * dm.dim + d0;  // first (b, d) row
  const T* Bp = B + bg * N * L;
  const T* Cp = C + bg * N * L;

  StateBuf<V, NS> A2buf(N), hbuf(N);
  V* A2 = A2buf.data();
  V* h = hbuf.data();
  std::vector<V> ub(TT), dtb(TT), yb(TT);
  std::vector<T> Bt(TT * N), Ct(TT * N);
  V Dv = V{};
  for (int64_t n = 0; n < N; ++n) A2[n] = V{}, h[n] = V{};
  for (int64_t t = 0; t < TT; ++t) ub[t] = V{}, dtb[t] = V{};
  for (int lane = 0; lane < nl; ++lane) {
    for (int64_t n = 0; n < N; ++n) A2[n][lane] = A[(d0 + lane) * N + n] * (T)kLog2e;
    if (D) Dv[lane] = D[d0 + lane];
  }

  const int64_t nch = dm.n_chunks();
  for (int64_t c = 0; c < nch; ++c) {
    const int64_t t0 = c * TT, tl = std::min(TT, L - t0);
    if (ckpt) {
      for (int lane = 0; lane < nl; ++lane)
        for (int64_t n = 0; n < N; ++n) ckpt[((row0 + lane) * nch + c) * N + n] = h[n][lane];
    }
    load_block(u + row0 * L, L, t0, tl, nl, ub.data());
    load_block(dt + row0 * L, L, t0, tl, nl, dtb.data());
    load_bc(Bp, N, L, t0, tl, Bt.data());
    load_bc(Cp, N, L, t0, tl, Ct.data());
    for (int64_t t = 0; t < tl; ++t) {
      const V dtv = dtb[t], uv = ub[t];
      yb[t] = state_step<V, T, NS>(h, A2, dtv, dtv * uv, &Bt[t * N], &Ct[t * N], N) + Dv * uv;
    }
    store_block(yb.data(), L, t0, tl, nl, y + row0 * L);
  }
  if (last) {
    for (int lane = 0; lane < nl; ++lane)
      for (int64_t n = 0; n < N; ++n) last[(row0 + lane) * N + n] = h[n][lane];
  }
}

template <typename T, int NS>
void backward_item(const Dims& dm, int64_t S, const T* u, const T* dt, const T* A, const T* B, const T* C,
                   const T* D, const T* dy, const T* dlast, const T* ckpt, T* du, T* ddt, T* dA_part, T* dB_part,
                   T* dC_part, T* dD_part, int64_t item) {
  typedef typename VecTraits<T>::V V;
  constexpr int W = VecTraits<T>::W;
  const int64_t N = NS ? NS : dm.N, L = dm.L, TT = dm.chunk, P = dm.P(), nblk = (P + W - 1) / W;
  const int64_t s = item % S, bg = item / S, g = bg % dm.G, b = bg / dm.G;
  const int64_t k0 = s * nblk / S, k1 = (s + 1) * nblk / S, nb = k1 - k0;
  if (nb <= 0) return;
  const T* Bp = B + bg * N * L;
  const T* Cp = C + bg * N * L;
  T* dBp = dB_part + ((s * dm.batch + b) * dm.G + g) * N * L;
  T* dCp = dC_part + ((s * dm.batch + b) * dm.G + g) * N * L;

  std::vector<V> Av(nb * N), A2v(nb * N), carry(nb * N), dAacc(nb * N), Dv(nb), dDacc(nb);
  std::vector<V> ub(TT), dtb(TT), dyb(TT), dub(TT), ddtb(TT), hstart(N), hbuf(TT * N), abuf(TT * N), g_(N);
  std::vector<V> dBacc(TT * N), dCacc(TT * N);
  std::vector<const V*> bcrow(2 * N);
  std::vector<T> bcsum(2 * N);
  std::vector<T> Bt(TT * N), Ct(TT * N);
  std::vector<int> nls(nb);
  for (int64_t kb = 0; kb < nb; ++kb) {
    const int64_t d0 = g * P + (k0 + kb) * W;
    const int nl = (int)std::min<int64_t>(W, g * P + P - d0);
    nls[kb] = nl;
    Dv[kb] = V{}, dDacc[kb] = V{};
    for (int64_t n = 0; n < N; ++n)
      Av[kb * N + n] = V{}, A2v[kb * N + n] = V{}, carry[kb * N + n] = V{}, dAacc[kb * N + n] = V{};
    for (int lane = 0; lane < nl; ++lane) {
      for (int64_t n = 0; n < N; ++n) {
        Av[kb * N + n][lane] = A[(d0 + lane) * N + n];
        A2v[kb * N + n][lane] = A[(d0 + lane) * N + n] * (T)kLog2e;
        if (dlast) carry[kb * N + n][lane] = dlast[((b * dm.dim) + d0 + lane) * N + n];
      }
      if (D) Dv[kb][lane] = D[d0 + lane];
    }
  }

  const int64_t nch = dm.n_chunks();
  for (int64_t c = nch - 1; c >= 0; --c) {
    const int64_t t0 = c * TT, tl = std::min(TT, L - t0);
    load_bc(Bp, N, L, t0, tl, Bt.data());
    load_bc(Cp, N, L, t0, tl, Ct.data());
    for (int64_t i = 0; i < tl * N; ++i) dBacc[i] = V{}, dCacc[i] = V{};
    for (int64_t kb = 0; kb < nb; ++kb) {
      const int nl = nls[kb];
      const int64_t row0 = b * dm.dim + g * P + (k0 + kb) * W;
      const V* Ak = &Av[kb * N];
      const V* A2k = &A2v[kb * N];
      for (int64_t t = 0; t < tl; ++t) ub[t] = V{}, dtb[t] = V{}, dyb[t] = V{};
      load_block(u + row0 * L, L, t0, tl, nl, ub.data());
      load_block(dt + row0 * L, L, t0, tl, nl, dtb.data());
      load_block(dy + row0 * L, L, t0, tl, nl, dyb.data());
      for (int64_t n = 0; n < N; ++n) hstart[n] = V{};
      for (int lane = 0; lane < nl; ++lane)
        for (int64_t n = 0; n < N; ++n) hstart[n][lane] = ckpt[((row0 + lane) * nch + c) * N + n];

      // Recompute the states of this chunk (and the decays) from the saved chunk-start state.
      for (int64_t n = 0; n < N; ++n) g_[n] = hstart[n];
      for (int64_t t = 0; t < tl; ++t) {
        const V dtv = dtb[t], duv = dtv * ub[t];
        recompute_step<V, T, NS>(g_.data(), A2k, dtv, duv, &Bt[t * N], &hbuf[t * N], &abuf[t * N], N);
      }

      // Reverse pass: g_t = C_t dy_t + a_{t+1} g_{t+1} (the a_{t+1} factor is applied at the end of step t+1).
      V* gk = &carry[kb * N];
      for (int64_t n = 0; n < N; ++n) g_[n] = gk[n];
      V dD = dDacc[kb];
      V* dAk = &dAacc[kb * N];
      for (int64_t t = tl - 1; t >= 0; --t) {
        const V dyv = dyb[t], dtv = dtb[t], uv = ub[t], duv = dtv * uv;
        const T* bt = &Bt[t * N];
        const T* ct = &Ct[t * N];
        const V* hb = &hbuf[t * N];
        const V* hp = t > 0 ? &hbuf[(t - 1) * N] : hstart.data();
        const V* ab = &abuf[t * N];
        V* dBt = &dBacc[t * N];
        V* dCt = &dCacc[t * N];
        V gB = V{}, dd = V{};
        adjoint_step<V, T, NS>(g_.data(), ab, hb, hp, Ak, bt, ct, dyv, dtv, duv, dAk, dBt, dCt, gB, dd, N);
        dub[t] = gB * dtv + Dv[kb] * dyv;
        ddtb[t] = dd + gB * uv;
        dD += dyv * uv;
      }
      dDacc[kb] = dD;
      for (int64_t n = 0; n < N; ++n) gk[n] = g_[n];
      store_block(dub.data(), L, t0, tl, nl, du + row0 * L);
      store_block(ddtb.data(), L, t0, tl, nl, ddt + row0 * L);
    }
    for (int64_t t = 0; t < tl; ++t) {  // the lane sums of the step's 2N accumulators, W at a time
      for (int64_t n = 0; n < N; ++n) bcrow[n] = &dBacc[t * N + n], bcrow[N + n] = &dCacc[t * N + n];
      sum_lanes_n(bcrow.data(), 2 * N, bcsum.data());
      for (int64_t n = 0; n < N; ++n) dBp[n * L + t0 + t] = bcsum[n], dCp[n * L + t0 + t] = bcsum[N + n];
    }
  }

  for (int64_t kb = 0; kb < nb; ++kb) {
    const int64_t d0 = g * P + (k0 + kb) * W;
    for (int lane = 0; lane < nls[kb]; ++lane) {
      for (int64_t n = 0; n < N; ++n) dA_part[((b * dm.dim) + d0 + lane) * N + n] = dAacc[kb * N + n][lane];
      dD_part[b * dm.dim + d0 + lane] = dDacc[kb][lane];
    }
  }
}

template <typename T>
void forward_range(const Dims& dm, const T* u, const T* dt, const T* A, const T* B, const T* C, const T* D, T* y,
                   T* last, T* ckpt, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; ++i) {
    if (dm.N == 16)
      forward_item<T, 16>(dm, u, dt, A, B, C, D, y, last, ckpt, i);
    else
      forward_item<T, 0>(dm, u, dt, A, B, C, D, y, last, ckpt, i);
  }
}

template <typename T>
void backward_range(const Dims& dm, int64_t S, const T* u, const T* dt, const T* A, const T* B, const T* C,
                    const T* D, const T* dy, const T* dlast, const T* ckpt, T* du, T* ddt, T* dA_part, T* dB_part,
                    T* dC_part, T* dD_part, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; ++i) {
    if (dm.N == 16)
      backward_item<T, 16>(dm, S, u, dt, A, B, C, D, dy, dlast, ckpt, du, ddt, dA_part, dB_part, dC_part, dD_part, i);
    else
      backward_item<T, 0>(dm, S, u, dt, A, B, C, D, dy, dlast, ckpt, du, ddt, dA_part, dB_part, dC_part, dD_part, i);
  }
}


// ---------------------------------------------------------------------------------------------------------------
// Direction-fused scan for inference (SS2D, RSAL): K directions over the same L positions, direction k visiting
// position index[k][t] at step t. For every direction the step sizes are softplus(dt_bias_k + W_k dts_k(p)), the
// recurrence runs in that direction's order, and its outputs are added back at the positions they belong to:
//
//   y[p] = sum_k ssm_k(p) + (sum_k D_k) x[p]
//
// Gathering the K orders, the step-size projection, softplus, the scan and the merge happen in one pass, so none
// of the (batch, K, D, L) tensors of the unfused path exist. For training (ckpt not null) the state entering every
// chunk of kFusedChunk steps is saved for the backward (fused_bwd_item, below), which recomputes the rest. Layouts, all contiguous:
//   x, y   : (batch, L, D)        channels last, positions in raster order
//   xdbl   : (batch, L, K, E)     E = R + 2N; for direction k at position p: [dts (R) | B (N) | C (N)];
//                                 any strides for the first three axes (e.g. a (batch, K, L, E) tensor's)
//   dtw    : (K, D, R)    dtb : (K, D)    A : (K, D, N)    Dsum : (D,) or null    index : (K, L) int64
// item = (b, block of W channels): its inputs x[b, :, block] and the running sum over directions stay in two
// L-long vector buffers (L1/L2 resident), so the random order of a curve costs no extra memory traffic.
constexpr int64_t kFusedChunk = 64;  // steps per pass-1 / pass-2 round
constexpr int64_t kPrefetch = 32;    // steps between prefetching a row and reading it
constexpr int64_t kRowAhead = 8;     // the same in the backward's recompute pass, for the rows of x, dy and dx

struct FusedDims {
  int64_t batch, L, D, K, R, N;
  int64_t sb, sk, sl;  // element strides of xdbl along batch, direction and position (its last axis is dense)
};

template <typename T, int NS>
void fused_item(const FusedDims& fd, const T* x, const T* xdbl, const T* dtw, const T* dtb, const T* A,
                const T* Dsum, const int64_t* index, T* y, T* ckpt, int64_t item) {
  typedef typename VecTraits<T>::V V;
  constexpr int W = VecTraits<T>::W;
  const int64_t N = NS ? NS : fd.N, L = fd.L, Dm = fd.D, K = fd.K, R = fd.R, E = R + 2 * N;
  const int64_t nblk = (Dm + W - 1) / W, blk = item % nblk, b = item / nblk, d0 = blk * W;
  const int nl = (int)std::min<int64_t>(W, Dm - d0);

  std::vector<V> xb(L), acc(L), Wr(R), dts(kFusedChunk), dus(kFusedChunk);
  std::vector<const T*> rows(kFusedChunk);
  StateBuf<V, NS> A2buf(N), hbuf(N);
  V* A2 = A2buf.data();
  V* h = hbuf.data();
  for (int64_t p = 0; p < L; ++p) {
    const T* src = x + (b * L + p) * Dm + d0;
    V v = V{};
    if (nl == W)
      std::memcpy(&v, src, sizeof(V));
    else
      for (int lane = 0; lane < nl; ++lane) v[lane] = src[lane];
    xb[p] = v;
    acc[p] = V{};
  }

  for (int64_t k = 0; k < K; ++k) {
    V bias = V{};
    for (int64_t n = 0; n < N; ++n) A2[n] = V{}, h[n] = V{};
    for (int64_t r = 0; r < R; ++r) Wr[r] = V{};
    for (int lane = 0; lane < nl; ++lane) {
      const int64_t kd = k * Dm + d0 + lane;
      for (int64_t n = 0; n < N; ++n) A2[n][lane] = A[kd * N + n] * (T)kLog2e;
      for (int64_t r = 0; r < R; ++r) Wr[r][lane] = dtw[kd * R + r];
      bias[lane] = dtb[kd];
    }
    const int64_t* order = index + k * L;
    const T* base = xdbl + b * fd.sb + k * fd.sk;
    V* saved = ckpt ? reinterpret_cast<V*>(ckpt) + ((b * K + k) * nblk + blk) * ((L + kFusedChunk - 1) / kFusedChunk) * N
                    : nullptr;
    for (int64_t t0 = 0; t0 < L; t0 += kFusedChunk) {
      const int64_t tl = std::min<int64_t>(kFusedChunk, L - t0);
      if (saved)  // training: the state entering this chunk, for the backward
        for (int64_t n = 0; n < N; ++n) saved[(t0 / kFusedChunk) * N + n] = h[n];
      // Pass 1, steps independent of each other: fetch the rows, step sizes (projection + softplus) and dt*u.
      // Done apart from the recurrence so that these long dependency chains overlap across steps instead of
      // stalling every step of pass 2.
      for (int64_t j = 0; j < tl; ++j) {
        const int64_t p = order[t0 + j];
        const T* row = base + p * fd.sl;
        if (t0 + j + kPrefetch < L) {  // curves jump around memory: ask for the row needed kPrefetch steps later
          const T* ahead = base + order[t0 + j + kPrefetch] * fd.sl;
          __builtin_prefetch(ahead);
          __builtin_prefetch(ahead + 64 / sizeof(T));
          __builtin_prefetch(ahead + E - 1);
        }
        V s0 = bias, s1 = V{}, s2 = V{}, s3 = V{};
        int64_t r = 0;
        for (; r + 4 <= R; r += 4) {
          s0 += Wr[r] * row[r];
          s1 += Wr[r + 1] * row[r + 1];
          s2 += Wr[r + 2] * row[r + 2];
          s3 += Wr[r + 3] * row[r + 3];
        }
        for (; r < R; ++r) s0 += Wr[r] * row[r];
        const V dtv = vsoftplus((s0 + s1) + (s2 + s3));
        dts[j] = dtv;
        dus[j] = dtv * xb[p];
        rows[j] = row + R;
      }
      // Pass 2: the recurrence, its outputs added at their positions.
      for (int64_t j = 0; j < tl; ++j)
        acc[order[t0 + j]] += state_step<V, T, NS>(h, A2, dts[j], dus[j], rows[j], rows[j] + N, N);
    }
  }

  V Dv = V{};
  if (Dsum)
    for (int lane = 0; lane < nl; ++lane) Dv[lane] = Dsum[d0 + lane];
  for (int64_t p = 0; p < L; ++p) {
    const V v = acc[p] + Dv * xb[p];
    T* dst = y + (b * L + p) * Dm + d0;
    if (nl == W)
      std::memcpy(dst, &v, sizeof(V));
    else
      for (int lane = 0; lane < nl; ++lane) dst[lane] = v[lane];
  }
}

template <typename T>
void fused_range(const FusedDims& fd, const T* x, const T* xdbl, const T* dtw, const T* dtb, const T* A,
                 const T* Dsum, const int64_t* index, T* y, T* ckpt, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; ++i) {
    if (fd.N == 16)
      fused_item<T, 16>(fd, x, xdbl, dtw, dtb, A, Dsum, index, y, ckpt, i);
    else
      fused_item<T, 0>(fd, x, xdbl, dtw, dtb, A, Dsum, index, y, ckpt, i);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Backward of the direction-fused scan (training of SS2D and RSAL). Given dy (batch, L, D), it produces
//   dx    (batch, L, D)        ADDED to what the caller put there (zeros): the skip term D_sum * dy (none without
//                              Dsum), added while direction 0 visits the position, and every direction's gradient
//   dD    (batch, D)           per batch element sum_p dy x (the gradient of D_sum), when dD_part is not null
//   dxdbl (S, batch, L, K, E)  one partial per split s of the channel blocks (summed by the caller); every
//                              (p, k) row is written once per split, so no zeroing is needed
//   ddtw (batch, K, D, R), ddtb (batch, K, D), dA (batch, K, D, N)   per batch element, summed by the caller
// without any (batch, K, D, L) tensor. Per direction k, with s_t = dtb + dtw . dts_t, dt_t = softplus(s_t):
//   h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t,  y_k(p_t) = <C_t, h_t>
//   g_t = C_t dy_t + exp(dt_{t+1} A) g_{t+1}          (dL/dh_t, run backwards in time)
//   dC_t += dy_t h_t,  dB_t += g_t dt_t u_t,  du_t = dt_t <g_t, B_t>,  dA += g_t exp(dt_t A) h_{t-1} dt_t
//   ds_t = sigmoid(s_t) (<g_t, A exp(dt_t A) h_{t-1}> + u_t <g_t, B_t>),  ddtb += ds_t,  ddtw += ds_t dts_t,
//   ddts_t += dtw^T ds_t
// where B_t, C_t, dts_t are the direction's row at position p_t = index[k][t] and sums over channels (dB, dC,
// ddts) are taken across the item's channel blocks. The forward saved the state entering every chunk of
// kFusedChunk steps (ckpt: (batch, K, channel block, chunk, N) vectors of W lanes); the reverse pass recomputes
// the states inside each chunk from there. item = (b, split s) where the channel blocks are cut into S splits.

template <typename V, typename T>
inline V load_lanes(const T* src, int nl) {
  V v = V{};
  if (nl == (int)(sizeof(V) / sizeof(T)))
    std::memcpy(&v, src, sizeof(V));
  else
    for (int lane = 0; lane < nl; ++lane) v[lane] = src[lane];
  return v;
}

template <typename V, typename T>
inline void add_lanes(T* dst, V v, int nl) {
  if (nl == (int)(sizeof(V) / sizeof(T))) {  // a full block: one vector load, add and store
    V d;
    std::memcpy(&d, dst, sizeof(V));
    d += v;
    std::memcpy(dst, &d, sizeof(V));
    return;
  }
  for (int lane = 0; lane < nl; ++lane) dst[lane] += v[lane];
}

inline vf vsigmoid(vf s) { return 1.0f / (1.0f + vexp2(s * -(float)kLog2e)); }

inline vd vsigmoid(vd s) {
  vd out = s;
  for (int i = 0; i < VecTraits<double>::W; ++i) out[i] = 1.0 / (1.0 + std::exp(-s[i]));
  return out;
}

template <typename T, int NS>
void fused_bwd_item(const FusedDims& fd, int64_t S, const T* x, const T* xdbl, const T* dtw, const T* dtb,
                    const T* A, const T* Dsum, const int64_t* index, const T* ckpt, const T* dy, T* dx,
                    T* dxdbl_part, T* ddtw_part, T* ddtb_part, T* dA_part, T* dD_part, int64_t item) {
  typedef typename VecTraits<T>::V V;
  constexpr int W = VecTraits<T>::W;
  const int64_t N = NS ? NS : fd.N, L = fd.L, Dm = fd.D, K = fd.K, R = fd.R, E = R + 2 * N;
  const int64_t TT = kFusedChunk, nch = (L + TT - 1) / TT, nblk = (Dm + W - 1) / W;
  const int64_t s = item % S, b = item / S;
  const int64_t k0 = s * nblk / S, k1 = (s + 1) * nblk / S, nb = k1 - k0;
  if (nb <= 0) return;
  const T* xb = x + b * L * Dm;
  const T* dyb = dy + b * L * Dm;
  T* dxb = dx + b * L * Dm;
  T* part = dxdbl_part + (s * fd.batch + b) * L * K * E;

  std::vector<V> Av(nb * N), A2v(nb * N), Wv(nb * R), bias(nb), carry(nb * N);
  std::vector<V> dAacc(nb * N), dWacc(nb * R), dbacc(nb), Dv(nb), dDacc(nb);
  std::vector<V> ub(TT), dtv_(TT), sigb(TT), dyv_(TT), hbuf(TT * N), abuf(TT * N), hstart(N), g(N);
  std::vector<V> dBacc(TT * N), dCacc(TT * N), dRacc(TT * R);
  std::vector<const T*> rows(TT);
  std::vector<int64_t> pos(TT);
  std::vector<int> nls(nb);
  for (int64_t kb = 0; kb < nb; ++kb) {
    nls[kb] = (int)std::min<int64_t>(W, Dm - (k0 + kb) * W);
    Dv[kb] = Dsum ? load_lanes<V, T>(Dsum + (k0 + kb) * W, nls[kb]) : V{};
    dDacc[kb] = V{};
  }

  for (int64_t k = 0; k < K; ++k) {
    const int64_t* order = index + k * L;
    const T* base = xdbl + b * fd.sb + k * fd.sk;
    for (int64_t kb = 0; kb < nb; ++kb) {
      const int64_t d0 = (k0 + kb) * W;
      bias[kb] = V{}, dbacc[kb] = V{};
      for (int64_t n = 0; n < N; ++n)
        Av[kb * N + n] = V{}, A2v[kb * N + n] = V{}, carry[kb * N + n] = V{}, dAacc[kb * N + n] = V{};
      for (int64_t r = 0; r < R; ++r) Wv[kb * R + r] = V{}, dWacc[kb * R + r] = V{};
      for (int lane = 0; lane < nls[kb]; ++lane) {
        const int64_t kd = k * Dm + d0 + lane;
        for (int64_t n = 0; n < N; ++n) {
          Av[kb * N + n][lane] = A[kd * N + n];
          A2v[kb * N + n][lane] = A[kd * N + n] * (T)kLog2e;
        }
        for (int64_t r = 0; r < R; ++r) Wv[kb * R + r][lane] = dtw[kd * R + r];
        bias[kb][lane] = dtb[kd];
      }
    }

    // Chunks from last to first: recompute the chunk's states, then run the adjoint backwards.
    for (int64_t c = nch - 1; c >= 0; --c) {
      const int64_t t0 = c * TT, tl = std::min(TT, L - t0);
      for (int64_t j = 0; j < tl; ++j) {
        pos[j] = order[t0 + j];
        rows[j] = base + pos[j] * fd.sl;
      }
      for (int64_t j = std::max<int64_t>(0, t0 - TT); j < t0; ++j) {  // the previous chunk's rows, needed next
        const T* ahead = base + order[j] * fd.sl;
        __builtin_prefetch(ahead);
        __builtin_prefetch(ahead + 64 / sizeof(T));
        __builtin_prefetch(ahead + E - 1);
      }
      for (int64_t i = 0; i < tl * N; ++i) dBacc[i] = V{}, dCacc[i] = V{};
      for (int64_t i = 0; i < tl * R; ++i) dRacc[i] = V{};
      for (int64_t kb = 0; kb < nb; ++kb) {
        const int nl = nls[kb];
        const int64_t d0 = (k0 + kb) * W;
        const V* Ak = &Av[kb * N];
        const V* A2 = &A2v[kb * N];
        const V* Wr = &Wv[kb * R];
        const V* saved = reinterpret_cast<const V*>(ckpt) + (((b * K + k) * nblk + k0 + kb) * nch + c) * N;
        for (int64_t n = 0; n < N; ++n) hstart[n] = saved[n], g[n] = hstart[n];
        // Pass 1, steps independent of each other: step sizes, their sigmoids, inputs and output gradients, apart
        // from the recurrence so that these long dependency chains overlap across steps.
        for (int64_t j = 0; j < tl; ++j) {
          if (j + kRowAhead < tl) {  // this block's x, dy, dx at a position kRowAhead steps later
            const int64_t at = pos[j + kRowAhead] * Dm + d0;
            __builtin_prefetch(xb + at), __builtin_prefetch(dyb + at), __builtin_prefetch(dxb + at, 1);
          }
          const T* row = rows[j];
          V sv = bias[kb];
          for (int64_t r = 0; r < R; ++r) sv += Wr[r] * row[r];
          dtv_[j] = vsoftplus(sv), ub[j] = load_lanes<V, T>(xb + pos[j] * Dm + d0, nl), sigb[j] = vsigmoid(sv);
          dyv_[j] = load_lanes<V, T>(dyb + pos[j] * Dm + d0, nl);
          if (k == 0) {  // direction 0's visit of this position: the skip term, and D's gradient sums dy x
            add_lanes<V, T>(dxb + pos[j] * Dm + d0, Dv[kb] * dyv_[j], nl);
            dDacc[kb] += dyv_[j] * ub[j];
          }
        }
        // Pass 2: the recurrence, every state and decay kept for the reverse pass.
        for (int64_t j = 0; j < tl; ++j)
          recompute_step<V, T, NS>(g.data(), A2, dtv_[j], dtv_[j] * ub[j], rows[j] + R, &hbuf[j * N], &abuf[j * N], N);
        V* gk = &carry[kb * N];
        for (int64_t n = 0; n < N; ++n) g[n] = gk[n];
        V* dAk = &dAacc[kb * N];
        V* dWk = &dWacc[kb * R];
        V db = dbacc[kb];
        // the per-step gradients once gB and dd of step j are known
        auto finish = [&](int64_t j, V gB, V dd) {
          const T* row = rows[j];
          add_lanes<V, T>(dxb + pos[j] * Dm + d0, gB * dtv_[j], nl);
          const V ds = (dd + gB * ub[j]) * sigb[j];
          db += ds;
          V* dRj = &dRacc[j * R];
          for (int64_t r = 0; r < R; ++r) {
            dWk[r] += ds * row[r];
            dRj[r] += ds * Wr[r];
          }
        };
        int64_t j = tl - 1;
        for (; j >= 1; j -= 2) {  // steps j and j - 1
          const T* r1 = rows[j] + R;
          const T* r0 = rows[j - 1] + R;
          const V dt1 = dtv_[j], dt0 = dtv_[j - 1];
          const V* hm = j > 1 ? &hbuf[(j - 2) * N] : hstart.data();
          V gB1, dd1, gB0, dd0;
          adjoint_pair<V, T, NS>(g.data(), &abuf[j * N], &hbuf[j * N], &abuf[(j - 1) * N], &hbuf[(j - 1) * N], hm, Ak,
                                 r1, r1 + N, r0, r0 + N, dyv_[j], dt1, dt1 * ub[j], dyv_[j - 1], dt0, dt0 * ub[j - 1],
                                 dAk, &dBacc[j * N], &dCacc[j * N], &dBacc[(j - 1) * N], &dCacc[(j - 1) * N], gB1, dd1,
                                 gB0, dd0, N);
          finish(j, gB1, dd1);
          finish(j - 1, gB0, dd0);
        }
        if (j == 0) {
          const T* r0 = rows[0] + R;
          const V dtv = dtv_[0];
          V gB = V{}, dd = V{};
          adjoint_step<V, T, NS>(g.data(), &abuf[0], &hbuf[0], hstart.data(), Ak, r0, r0 + N, dyv_[0], dtv,
                                 dtv * ub[0], dAk, &dBacc[0], &dCacc[0], gB, dd, N);
          finish(0, gB, dd);
        }
        dbacc[kb] = db;
        for (int64_t n = 0; n < N; ++n) gk[n] = g[n];
      }
      // Channel sums of this chunk: the gradients of the direction's [dts | B | C] rows, each part from its run of
      // consecutive accumulators (sum_lanes_run: W vectors' lane sums at once, log2(W) shuffle-adds, instead of W - 1
      // scalar adds for each).
      for (int64_t j = 0; j < tl; ++j) {
        if (j + 4 < tl) {  // the output row written 4 steps later (rows follow the curve through memory)
          const T* ahead = part + (pos[j + 4] * K + k) * E;
          __builtin_prefetch(ahead, 1), __builtin_prefetch(ahead + E - 1, 1);
        }
        T* out = part + (pos[j] * K + k) * E;
        sum_lanes_run(&dRacc[j * R], R, out);
        sum_lanes_run(&dBacc[j * N], N, out + R);
        sum_lanes_run(&dCacc[j * N], N, out + R + N);
      }
    }

    for (int64_t kb = 0; kb < nb; ++kb) {
      const int64_t d0 = (k0 + kb) * W;
      for (int lane = 0; lane < nls[kb]; ++lane) {
        const int64_t row = (b * K + k) * Dm + d0 + lane;
        for (int64_t n = 0; n < N; ++n) dA_part[row * N + n] = dAacc[kb * N + n][lane];
        for (int64_t r = 0; r < R; ++r) ddtw_part[row * R + r] = dWacc[kb * R + r][lane];
        ddtb_part[row] = dbacc[kb][lane];
      }
    }
  }
  if (dD_part)
    for (int64_t kb = 0; kb < nb; ++kb)
      for (int lane = 0; lane < nls[kb]; ++lane) dD_part[b * Dm + (k0 + kb) * W + lane] = dDacc[kb][lane];
}

template <typename T>
void fused_bwd_range(const FusedDims& fd, int64_t S, const T* x, const T* xdbl, const T* dtw, const T* dtb,
                     const T* A, const T* Dsum, const int64_t* index, const T* ckpt, const T* dy, T* dx,
                     T* dxdbl_part, T* ddtw_part, T* ddtb_part, T* dA_part, T* dD_part, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; ++i) {
    if (fd.N == 16)
      fused_bwd_item<T, 16>(fd, S, x, xdbl, dtw, dtb, A, Dsum, index, ckpt, dy, dx, dxdbl_part, ddtw_part, ddtb_part,
                            dA_part, dD_part, i);
    else
      fused_bwd_item<T, 0>(fd, S, x, xdbl, dtw, dtb, A, Dsum, index, ckpt, dy, dx, dxdbl_part, ddtw_part, ddtb_part,
                           dA_part, dD_part, i);
  }
}


// F.softplus (beta 1, threshold 20) of values [i0, i1) of x into out (which may be x): whole vectors through
// vsoftplus, the tail through a zero-padded one. Exported for the step sizes computed outside the kernels
// (ssmad/ssm/softplus.py): torch's CPU softplus takes ~6 ns per value on 2 threads where this takes well under 1.
template <typename T>
void softplus_range(const T* x, T* out, int64_t i0, int64_t i1) {
  typedef typename VecTraits<T>::V V;
  constexpr int W = VecTraits<T>::W;
  int64_t i = i0;
  for (; i + W <= i1; i += W) {
    V v;
    std::memcpy(&v, x + i, sizeof(V));
    v = vsoftplus(v);
    std::memcpy(out + i, &v, sizeof(V));
  }
  if (i < i1) {
    V v{};
    std::memcpy(&v, x + i, size_t(i1 - i) * sizeof(T));
    v = vsoftplus(v);
    std::memcpy(out + i, &v, size_t(i1 - i) * sizeof(T));
  }
}

// softplus of n values in blocks of kSoftplusBlock, the blocks split into `threads` ranges (run_items).
constexpr int64_t kSoftplusBlock = 4096;

template <typename T>
void softplus_all(const T* x, T* out, int64_t n, int64_t threads) {
  run_items((n + kSoftplusBlock - 1) / kSoftplusBlock, threads, [&](int64_t b0, int64_t b1) {
    softplus_range(x, out, b0 * kSoftplusBlock, std::min(n, b1 * kSoftplusBlock));
  });
}

}  // namespace

#define SSMAD_EXPORT extern "C" __attribute__((visibility("default")))

#ifdef _OPENMP
SSMAD_EXPORT int ssmad_scan_openmp() { return 1; }
#else
SSMAD_EXPORT int ssmad_scan_openmp() { return 0; }
#endif

SSMAD_EXPORT int ssmad_scan_abi_version() { return 7; }

// Bytes per vector: a block of channels holds this many / sizeof(T) lanes (the caller sizes its buffers by it).
SSMAD_EXPORT int ssmad_scan_vector_bytes() { return kVecBytes; }

SSMAD_EXPORT int ssmad_softplus_f32(const float* x, float* out, int64_t n, int64_t threads) {
  softplus_all(x, out, n, threads);
  return 0;
}

SSMAD_EXPORT int ssmad_softplus_f64(const double* x, double* out, int64_t n, int64_t threads) {
  softplus_all(x, out, n, threads);
  return 0;
}

SSMAD_EXPORT int ssmad_scan_lanes(int is_double) { return is_double ? VecTraits<double>::W : VecTraits<float>::W; }

#define SSMAD_DEFINE(T, SUFFIX)                                                                                       \
  SSMAD_EXPORT int ssmad_scan_fwd_##SUFFIX(const T* u, const T* dt, const T* A, const T* B, const T* C, const T* D,    \
                                           T* y, T* last, T* ckpt, int64_t batch, int64_t dim, int64_t N, int64_t L,  \
                                           int64_t G, int64_t chunk, int64_t i0, int64_t i1) {                       \
    DenormalGuard guard;                                                                                              \
    Dims dm{batch, dim, N, L, G, chunk};                                                                           \
    forward_range<T>(dm, u, dt, A, B, C, D, y, last, ckpt, i0, i1);                                                   \
    return 0;                                                                                                         \
  }                                                                                                                   \
  SSMAD_EXPORT int ssmad_scan_bwd_##SUFFIX(const T* u, const T* dt, const T* A, const T* B, const T* C, const T* D,    \
                                           const T* dy, const T* dlast, const T* ckpt, T* du, T* ddt, T* dA_part,     \
                                           T* dB_part, T* dC_part, T* dD_part, int64_t batch, int64_t dim, int64_t N, \
                                           int64_t L, int64_t G, int64_t chunk, int64_t S, int64_t i0, int64_t i1) {  \
    DenormalGuard guard;                                                                                              \
    Dims dm{batch, dim, N, L, G, chunk};                                                                           \
    backward_range<T>(dm, S, u, dt, A, B, C, D, dy, dlast, ckpt, du, ddt, dA_part, dB_part, dC_part, dD_part, i0,    \
                      i1);                                                                                            \
    return 0;                                                                                                         \
  }                                                                                                                   \
  SSMAD_EXPORT int ssmad_fused_fwd_##SUFFIX(const T* x, const T* xdbl, const T* dtw, const T* dtb, const T* A,        \
                                            const T* Dsum, const int64_t* index, T* y, T* ckpt, int64_t batch,        \
                                            int64_t L,                                                                \
                                            int64_t D, int64_t K, int64_t R, int64_t N, int64_t sb, int64_t sk,       \
                                            int64_t sl, int64_t i0, int64_t i1) {                                     \
    DenormalGuard guard;                                                                                              \
    FusedDims fd{batch, L, D, K, R, N, sb, sk, sl};                                                                   \
    fused_range<T>(fd, x, xdbl, dtw, dtb, A, Dsum, index, y, ckpt, i0, i1);                                           \
    return 0;                                                                                                         \
  } \
  SSMAD_EXPORT int ssmad_fused_bwd_##SUFFIX(const T* x, const T* xdbl, const T* dtw, const T* dtb, const T* A,        \
                                            const T* Dsum, const int64_t* index, const T* ckpt, const T* dy, T* dx,   \
                                            T* dxdbl_part, T* ddtw_part, T* ddtb_part, T* dA_part, T* dD_part,        \
                                            int64_t batch, int64_t L, int64_t D, int64_t K, int64_t R, int64_t N,     \
                                            int64_t sb, int64_t sk, int64_t sl, int64_t S, int64_t i0, int64_t i1) {  \
    DenormalGuard guard;                                                                                              \
    FusedDims fd{batch, L, D, K, R, N, sb, sk, sl};                                                                   \
    fused_bwd_range<T>(fd, S, x, xdbl, dtw, dtb, A, Dsum, index, ckpt, dy, dx, dxdbl_part, ddtw_part, ddtb_part,      \
                       dA_part, dD_part, i0, i1);                                                                     \
    return 0;                                                                                                         \
  }

// The same over all items, in `threads` ranges (run_items).
#define SSMAD_DEFINE_ALL(T, SUFFIX)                                                                                   \
  SSMAD_EXPORT int ssmad_scan_fwd_all_##SUFFIX(const T* u, const T* dt, const T* A, const T* B, const T* C,           \
                                               const T* D, T* y, T* last, T* ckpt, int64_t batch, int64_t dim,         \
                                               int64_t N, int64_t L, int64_t G, int64_t chunk, int64_t items,          \
                                               int64_t threads) {                                                      \
    run_items(items, threads, [&](int64_t i0, int64_t i1) {                                                           \
      ssmad_scan_fwd_##SUFFIX(u, dt, A, B, C, D, y, last, ckpt, batch, dim, N, L, G, chunk, i0, i1);                  \
    });                                                                                                               \
    return 0;                                                                                                         \
  }                                                                                                                   \
  SSMAD_EXPORT int ssmad_scan_bwd_all_##SUFFIX(const T* u, const T* dt, const T* A, const T* B, const T* C,           \
                                               const T* D, const T* dy, const T* dlast, const T* ckpt, T* du, T* ddt,  \
                                               T* dA_part, T* dB_part, T* dC_part, T* dD_part, int64_t batch,          \
                                               int64_t dim, int64_t N, int64_t L, int64_t G, int64_t chunk, int64_t S, \
                                               int64_t items, int64_t threads) {                                      \
    run_items(items, threads, [&](int64_t i0, int64_t i1) {                                                           \
      ssmad_scan_bwd_##SUFFIX(u, dt, A, B, C, D, dy, dlast, ckpt, du, ddt, dA_part, dB_part, dC_part, dD_part, batch, \
                              dim, N, L, G, chunk, S, i0, i1);                                                        \
    });                                                                                                               \
    return 0;                                                                                                         \
  }                                                                                                                   \
  SSMAD_EXPORT int ssmad_fused_fwd_all_##SUFFIX(const T* x, const T* xdbl, const T* dtw, const T* dtb, const T* A,    \
                                                const T* Dsum, const int64_t* index, T* y, T* ckpt, int64_t batch,    \
                                                int64_t L, int64_t D, int64_t K, int64_t R, int64_t N, int64_t sb,    \
                                                int64_t sk, int64_t sl, int64_t items, int64_t threads) {             \
    run_items(items, threads, [&](int64_t i0, int64_t i1) {                                                           \
      ssmad_fused_fwd_##SUFFIX(x, xdbl, dtw, dtb, A, Dsum, index, y, ckpt, batch, L, D, K, R, N, sb, sk, sl, i0, i1); \
    });                                                                                                               \
    return 0;                                                                                                         \
  }                                                                                                                   \
  SSMAD_EXPORT int ssmad_fused_bwd_all_##SUFFIX(const T* x, const T* xdbl, const T* dtw, const T* dtb, const T* A,    \
                                                const T* Dsum, const int64_t* index, const T* ckpt, const T* dy,      \
                                                T* dx, T* dxdbl_part, T* ddtw_part, T* ddtb_part, T* dA_part,         \
                                                T* dD_part, int64_t batch, int64_t L, int64_t D, int64_t K,           \
                                                int64_t R, int64_t N, int64_t sb, int64_t sk, int64_t sl, int64_t S,  \
                                                int64_t items, int64_t threads) {                                     \
    run_items(items, threads, [&](int64_t i0, int64_t i1) {                                                           \
      ssmad_fused_bwd_##SUFFIX(x, xdbl, dtw, dtb, A, Dsum, index, ckpt, dy, dx, dxdbl_part, ddtw_part, ddtb_part,     \
                               dA_part, dD_part, batch, L, D, K, R, N, sb, sk, sl, S, i0, i1);                        \
    });                                                                                                               \
    return 0;                                                                                                         \
  }

SSMAD_DEFINE(float, f32)
SSMAD_DEFINE(double, f64)
SSMAD_DEFINE_ALL(float, f32)
SSMAD_DEFINE_ALL(double, f64)
