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
// Vectorisation runs across W consecutive channels of one group (8 floats or 4 doubles per 32-byte vector),
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

#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace {

template <typename T>
struct VecTraits;

template <>
struct VecTraits<float> {
  typedef float V __attribute__((vector_size(32)));
  typedef int32_t I __attribute__((vector_size(32)));
  static constexpr int W = 8;
};

template <>
struct VecTraits<double> {
  typedef double V __attribute__((vector_size(32)));
  typedef int64_t I __attribute__((vector_size(32)));
  static constexpr int W = 4;
};

typedef VecTraits<float>::V vf;
typedef VecTraits<float>::I vi;
typedef VecTraits<double>::V vd;

// exp for 8 floats: x = k*ln2 + r with |r| <= ln2/2, a degree-6 polynomial for exp(r) (Cephes
// coefficients, relative error ~2e-7), and 2^k assembled in the exponent bits. Inputs are clamped to
// [-87.3, 88.3], so very negative arguments give ~1e-38 instead of 0 (harmless for a decay factor).
inline vf vexp(vf x) {
#if defined(__AVX__)
  x = (vf)_mm256_min_ps(_mm256_max_ps((__m256)x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
#else
  const vf lo = vf{} - 87.3f, hi = vf{} + 88.3f;
  x = x < lo ? lo : x;
  x = x > hi ? hi : x;
#endif
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer
  vf k = (x * 1.44269504088896341f + magic) - magic;
  vf r = x - k * 0.693359375f;
  r = r - k * -2.12194440e-4f;
  vf p = vf{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  vi e = (__builtin_convertvector(k, vi) + 127) << 23;
  vf scale;
  std::memcpy(&scale, &e, sizeof(scale));
  return p * scale;
}

// float64 path (gradcheck, users who want double precision): libm exp per lane.
inline vd vexp(vd x) {
  vd out = x;
  for (int i = 0; i < 4; ++i) out[i] = std::exp(x[i]);
  return out;
}

template <typename V, typename T>
inline T hsum(V v, int W) {
  T s = 0;
  for (int i = 0; i < W; ++i) s += v[i];
  return s;
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

  std::vector<V> Av(N), h(N), ub(TT), dtb(TT), yb(TT);
  std::vector<T> Bt(TT * N), Ct(TT * N);
  V Dv = V{};
  for (int64_t n = 0; n < N; ++n) Av[n] = V{}, h[n] = V{};
  for (int64_t t = 0; t < TT; ++t) ub[t] = V{}, dtb[t] = V{};
  for (int lane = 0; lane < nl; ++lane) {
    for (int64_t n = 0; n < N; ++n) Av[n][lane] = A[(d0 + lane) * N + n];
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
      const V dtv = dtb[t], uv = ub[t], duv = dtv * uv;
      const T* bt = &Bt[t * N];
      const T* ct = &Ct[t * N];
      // four partial sums break the serial dependency of the reduction over n
      V y0 = V{}, y1 = V{}, y2 = V{}, y3 = V{};
      int64_t n = 0;
      for (; n + 4 <= N; n += 4) {
        const V a0 = vexp(dtv * Av[n]), a1 = vexp(dtv * Av[n + 1]);
        const V a2 = vexp(dtv * Av[n + 2]), a3 = vexp(dtv * Av[n + 3]);
        h[n] = a0 * h[n] + duv * bt[n];
        h[n + 1] = a1 * h[n + 1] + duv * bt[n + 1];
        h[n + 2] = a2 * h[n + 2] + duv * bt[n + 2];
        h[n + 3] = a3 * h[n + 3] + duv * bt[n + 3];
        y0 += h[n] * ct[n];
        y1 += h[n + 1] * ct[n + 1];
        y2 += h[n + 2] * ct[n + 2];
        y3 += h[n + 3] * ct[n + 3];
      }
      for (; n < N; ++n) {
        const V a = vexp(dtv * Av[n]);
        h[n] = a * h[n] + duv * bt[n];
        y0 += h[n] * ct[n];
      }
      yb[t] = ((y0 + y1) + (y2 + y3)) + Dv * uv;
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

  std::vector<V> Av(nb * N), carry(nb * N), dAacc(nb * N), Dv(nb), dDacc(nb);
  std::vector<V> ub(TT), dtb(TT), dyb(TT), dub(TT), ddtb(TT), hstart(N), hbuf(TT * N), abuf(TT * N), g_(N);
  std::vector<V> dBacc(TT * N), dCacc(TT * N);
  std::vector<T> Bt(TT * N), Ct(TT * N);
  std::vector<int> nls(nb);
  for (int64_t kb = 0; kb < nb; ++kb) {
    const int64_t d0 = g * P + (k0 + kb) * W;
    const int nl = (int)std::min<int64_t>(W, g * P + P - d0);
    nls[kb] = nl;
    Dv[kb] = V{}, dDacc[kb] = V{};
    for (int64_t n = 0; n < N; ++n) Av[kb * N + n] = V{}, carry[kb * N + n] = V{}, dAacc[kb * N + n] = V{};
    for (int lane = 0; lane < nl; ++lane) {
      for (int64_t n = 0; n < N; ++n) {
        Av[kb * N + n][lane] = A[(d0 + lane) * N + n];
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
        const T* bt = &Bt[t * N];
        V* hb = &hbuf[t * N];
        V* ab = &abuf[t * N];
        for (int64_t n = 0; n < N; ++n) {
          const V a = vexp(dtv * Ak[n]);
          g_[n] = a * g_[n] + duv * bt[n];
          hb[n] = g_[n];
          ab[n] = a;
        }
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
        for (int64_t n = 0; n < N; ++n) {
          const V gn = g_[n] + dyv * ct[n];
          const V q = gn * ab[n] * hp[n];
          dd += q * Ak[n];
          dAk[n] += q * dtv;
          gB += gn * bt[n];
          dBt[n] += gn * duv;
          dCt[n] += dyv * hb[n];
          g_[n] = gn * ab[n];
        }
        dub[t] = gB * dtv + Dv[kb] * dyv;
        ddtb[t] = dd + gB * uv;
        dD += dyv * uv;
      }
      dDacc[kb] = dD;
      for (int64_t n = 0; n < N; ++n) gk[n] = g_[n];
      store_block(dub.data(), L, t0, tl, nl, du + row0 * L);
      store_block(ddtb.data(), L, t0, tl, nl, ddt + row0 * L);
    }
    for (int64_t t = 0; t < tl; ++t) {
      for (int64_t n = 0; n < N; ++n) {
        dBp[n * L + t0 + t] = hsum<V, T>(dBacc[t * N + n], W);
        dCp[n * L + t0 + t] = hsum<V, T>(dCacc[t * N + n], W);
      }
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

}  // namespace

#define SSMAD_EXPORT extern "C" __attribute__((visibility("default")))

SSMAD_EXPORT int ssmad_scan_abi_version() { return 1; }

SSMAD_EXPORT int ssmad_scan_lanes(int is_double) { return is_double ? VecTraits<double>::W : VecTraits<float>::W; }

#define SSMAD_DEFINE(T, SUFFIX)                                                                                       \
  SSMAD_EXPORT int ssmad_scan_fwd_##SUFFIX(const T* u, const T* dt, const T* A, const T* B, const T* C, const T* D,    \
                                           T* y, T* last, T* ckpt, int64_t batch, int64_t dim, int64_t N, int64_t L,  \
                                           int64_t G, int64_t chunk, int64_t i0, int64_t i1) {                       \
    Dims dm{batch, dim, N, L, G, chunk};                                                                           \
    forward_range<T>(dm, u, dt, A, B, C, D, y, last, ckpt, i0, i1);                                                   \
    return 0;                                                                                                         \
  }                                                                                                                   \
  SSMAD_EXPORT int ssmad_scan_bwd_##SUFFIX(const T* u, const T* dt, const T* A, const T* B, const T* C, const T* D,    \
                                           const T* dy, const T* dlast, const T* ckpt, T* du, T* ddt, T* dA_part,     \
                                           T* dB_part, T* dC_part, T* dD_part, int64_t batch, int64_t dim, int64_t N, \
                                           int64_t L, int64_t G, int64_t chunk, int64_t S, int64_t i0, int64_t i1) {  \
    Dims dm{batch, dim, N, L, G, chunk};                                                                           \
    backward_range<T>(dm, S, u, dt, A, B, C, D, dy, dlast, ckpt, du, ddt, dA_part, dB_part, dC_part, dD_part, i0,    \
                      i1);                                                                                            \
    return 0;                                                                                                         \
  }

SSMAD_DEFINE(float, f32)
SSMAD_DEFINE(double, f64)
