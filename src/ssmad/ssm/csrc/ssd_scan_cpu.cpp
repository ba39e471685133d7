// SSD scan (Mamba-2 core recurrence: one scalar decay per head) for CPUs: forward and backward.
//
//   a_t = exp(dt_t * A_h)
//   h_t = a_t * h_{t-1} + w_t * x_t B_tᵀ           state (P, N) per (batch, head), h_{-1} = h0 or 0
//                                                  input weight w = dt, or its own array (Mamba-3 trapezoid rule)
//   y_t = h_t C_t + (D_h - cn_t k_t) * x_t,   k_t = C_t · B_t
//
// cn (optional) is the Mamba-3 trapezoid rule's diagonal correction (ssmad/ssm/ssd_mamba3.py); applying it here
// saves the caller two passes over (batch, L, H, P) temporaries in the forward and four in the backward.
//
// Layouts (all contiguous, row-major; the caller applies dt_bias/softplus before and the z gate after):
//   cn, dcn             : (batch, L, H) or null
//   x, y, dy, dx        : (batch, L, H, P)        dt, ddt, w, dw : (batch, L, H) (w, dw null: w = dt)   A : (H,)
//   B, C                : (batch, L, G, N)        group g serves heads [g H/G, (g+1) H/G)
//   dB, dC (partial)    : (batch, L, G, NB, N)    one row per block of heads (backward_items); the caller sums NB
//   D, dD               : (H, P) or null          dD is written per batch element: (batch, H, P)
//   h0, hlast, dh0, dhl : (batch, H, P, N)        dA : (batch, H) per batch element
//
// Inside the kernel the state is held as [N][P]: a step is, for each n, a P-wide vector FMA with the broadcast
// scalars B_t[n] and C_t[n] (no horizontal sums in the forward). P = N = 16 is compiled as a special case so the
// compiler keeps fixed-size arrays; any other size takes the runtime-size instantiation.
//
// Backward, with g_t = dL/dh_t (including everything after t):
//   g_t    = a_{t+1} g_{t+1} + dy_t C_tᵀ         (g_{L-1} starts from dL/dh_last)
//   dx_t   = D dy_t + w_t g_t B_t
//   dB_t   = w_t g_tᵀ x_t,   dC_t = h_tᵀ dy_t
//   ddt_t  = A a_t <g_t, h_{t-1}> (+ dw_t when w = dt),   dw_t = x_tᵀ g_t B_t
//   dA    += dt_t a_t <g_t, h_{t-1}>,   dD += dy_t * x_t,   dh0 = a_0 g_0
//   (the kernel gets a_t <g_t, h_{t-1}> from a running sum, re-anchored every kAnchor steps: backward_items)
//   and, with the correction (s_t = <x_t, dy_t>):
//   dx_t  -= cn_t k_t dy_t,   dcn_t = -k_t s_t,   dB_t -= cn_t s_t C_t,   dC_t -= cn_t s_t B_t
//
// Work item = (batch element, block of heads); items are independent, so the caller (Python thread pool; ctypes
// releases the GIL) runs item ranges in parallel. The readable oracle is ssmad/ssm/ssd_reference.py. The forward
// also has a directional mode for inference (K scan orders of one map, x and y in raster order: forward_items).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernel_common.h"

namespace {

using ssmad_kernels::DenormalGuard;
using ssmad_kernels::kVecBytes;
using ssmad_kernels::sum_lanes;
using ssmad_kernels::sum_one;
using ssmad_kernels::run_items;

struct Dims {
  int64_t batch, L, H, P, G, N;
};

// Scratch memory: a fixed aligned array for the compile-time sizes, a heap vector otherwise.
template <typename T, int SIZE>
struct Buf {
  alignas(64) T a[SIZE];
  explicit Buf(int64_t) {}
  T* data() { return a; }
};

template <typename T>
struct Buf<T, 0> {
  std::vector<T> a;
  explicit Buf(int64_t n) : a(n) {}
  T* data() { return a.data(); }
};

// One forward step on the state s[N][P]: s <- a s + (dt x) Bᵀ, acc <- acc + s C (acc starts at (D + skip) x).
template <typename T, int PS, int NS>
inline void fwd_step(T* __restrict s, const T* __restrict xt, const T* __restrict bt, const T* __restrict ct,
                     const T* __restrict Dh, T skip, T dtt, T a, T* __restrict yt, bool add, int64_t P_,
                     int64_t N_) {
  const int64_t P = PS ? PS : P_, N = NS ? NS : N_;
  Buf<T, PS> xd_b(P), acc0_b(P), acc1_b(P);
  T* __restrict xd = xd_b.data();
  T* __restrict acc0 = acc0_b.data();
  T* __restrict acc1 = acc1_b.data();
#pragma omp simd
  for (int64_t p = 0; p < P; ++p) {
    xd[p] = dtt * xt[p];
    acc0[p] = (Dh ? Dh[p] + skip : skip) * xt[p];
    acc1[p] = T(0);
  }
  // Two accumulators (even / odd n) halve the dependency chain of the output sum.
  int64_t n = 0;
  for (; n + 2 <= N; n += 2) {
    const T b0 = bt[n], c0 = ct[n], b1 = bt[n + 1], c1 = ct[n + 1];
    T* __restrict s0 = s + n * P;
    T* __restrict s1 = s0 + P;
#pragma omp simd
    for (int64_t p = 0; p < P; ++p) {
      s0[p] = a * s0[p] + b0 * xd[p];
      s1[p] = a * s1[p] + b1 * xd[p];
      acc0[p] += c0 * s0[p];
      acc1[p] += c1 * s1[p];
    }
  }
  if (n < N) {
    const T b0 = bt[n], c0 = ct[n];
    T* __restrict s0 = s + n * P;
#pragma omp simd
    for (int64_t p = 0; p < P; ++p) {
      s0[p] = a * s0[p] + b0 * xd[p];
      acc0[p] += c0 * s0[p];
    }
  }
#pragma omp simd
  for (int64_t p = 0; p < P; ++p) yt[p] = (add ? yt[p] : T(0)) + acc0[p] + acc1[p];
}

// Rows of one head are H·P (x, y) or G·N (B, C) elements apart, so consecutive steps touch a new cache line of
// every array, often on a new page where the hardware prefetcher stops: the loops ask for the rows kAhead steps
// ahead themselves (without this a head's forward waited on memory for half of its time).
constexpr int64_t kAhead = 12;
// Heads per forward work item (forward_items); exported so the caller can count the items.
constexpr int64_t kHeadBlock = 8;

template <typename T>
inline void prefetch_rows(const T* x, const T* dt, const T* B, const T* C, const T* y, int64_t row, int64_t H,
                          int64_t G, int64_t P, int64_t N, int64_t h, int64_t g) {
  __builtin_prefetch(x + (row * H + h) * P);
  __builtin_prefetch(B + (row * G + g) * N);
  __builtin_prefetch(C + (row * G + g) * N);
  __builtin_prefetch(dt + row * H + h);
  if (y) __builtin_prefetch(y + (row * H + h) * P, 1);
}

// Vectors of T for the P = N = 16 specialisation, written with GCC/Clang vector extensions (plain loops over the
// state rows were auto-vectorised into shuffles and gathers): kVecBytes (kernel_common.h), so one float state row
// per vector with AVX-512 (at MambaADv2's shapes forward and backward took 0.70-0.85x the time of 32-byte vectors on
// a Zen 5 core).
template <typename T>
struct Vec {
  typedef typename ssmad_kernels::VecOf<T>::V V;
  static constexpr int W = ssmad_kernels::VecOf<T>::W;
};

template <typename V, typename T>
inline V vload(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}

template <typename V, typename T>
inline void vstore(T* p, V v) {
  std::memcpy(p, &v, sizeof(V));
}

// fwd_step for compile-time P = PS (a multiple of the vector width) and N = NS; s is kVecBytes-aligned.
template <typename T, int PS, int NS>
inline void fwd_step_vec(T* __restrict s, const T* __restrict xt, const T* __restrict bt, const T* __restrict ct,
                         const T* __restrict Dh, T skip, T dtt, T a, T* __restrict yt, bool add) {
  typedef typename Vec<T>::V V;
  constexpr int W = Vec<T>::W, PV = PS / W;
  V xd[PV], acc0[PV], acc1[PV];
  for (int k = 0; k < PV; ++k) {
    const V xv = vload<V>(xt + k * W);
    xd[k] = xv * dtt;
    acc0[k] = (Dh ? vload<V>(Dh + k * W) + skip : V{} + skip) * xv;
    acc1[k] = V{};
  }
  V* __restrict sv = reinterpret_cast<V*>(__builtin_assume_aligned(s, kVecBytes));
#pragma GCC unroll 16
  for (int n = 0; n < NS; n += 2) {
    const T b0 = bt[n], c0 = ct[n], b1 = bt[n + 1], c1 = ct[n + 1];
    for (int k = 0; k < PV; ++k) {
      const V s0 = a * sv[n * PV + k] + b0 * xd[k];
      const V s1 = a * sv[(n + 1) * PV + k] + b1 * xd[k];
      sv[n * PV + k] = s0;
      sv[(n + 1) * PV + k] = s1;
      acc0[k] += c0 * s0;
      acc1[k] += c1 * s1;
    }
  }
  for (int k = 0; k < PV; ++k) vstore(yt + k * W, (add ? vload<V>(yt + k * W) : V{}) + acc0[k] + acc1[k]);
}

// The decays a_j = exp(dt_t A_h) of heads [h0, h0 + nh) at one step (dt_row = dt_t of all heads). Computed before
// the heads' vector work: an exp call clobbers every vector register, so calls between the heads made the compiler
// save and restore the step's vector accumulators around each one.
template <typename T>
inline void block_decays(const T* __restrict dt_row, const T* __restrict A, int64_t h0, int64_t nh, T* __restrict a) {
  for (int64_t j = 0; j < nh; ++j) a[j] = std::exp(dt_row[h0 + j] * A[h0 + j]);
}

// Forward sweep of the backward, one head and step, compile-time sizes: s <- a s + (w x) Bᵀ (s becomes h_t), the
// head's part of dC_t = h_tᵀ dy_t added to the lane accumulators sc[n] of its block (summed by the caller once per
// block and step); returns dy_t · (h_t C_t), the state's part of the output times its gradient, from h_t C_t
// accumulated over n (split by the parity of n) and one product with dy_t at the end: per state row one multiply
// and three FMAs.
template <typename T, int PS, int NS>
inline T grad_forward_step_vec(T* __restrict s, const T* __restrict xt, const T* __restrict dyt,
                               const T* __restrict bt, const T* __restrict ct, T wt, T a,
                               typename Vec<T>::V* __restrict sc) {
  typedef typename Vec<T>::V V;
  constexpr int W = Vec<T>::W, PV = PS / W;
  V xd[PV], dyv[PV], hc[2][PV];
  for (int k = 0; k < PV; ++k) {
    xd[k] = vload<V>(xt + k * W) * wt;
    dyv[k] = vload<V>(dyt + k * W);
    hc[0][k] = hc[1][k] = V{};
  }
  V* __restrict sv = reinterpret_cast<V*>(__builtin_assume_aligned(s, kVecBytes));
#pragma GCC unroll 16
  for (int n = 0; n < NS; ++n) {
    const T bn = bt[n], cn = ct[n];
    for (int k = 0; k < PV; ++k) {
      const V hv = a * sv[n * PV + k] + bn * xd[k];
      sv[n * PV + k] = hv;
      sc[n] += hv * dyv[k];
      hc[n & 1][k] += cn * hv;
    }
  }
  V yd = V{};
  for (int k = 0; k < PV; ++k) yd += (hc[0][k] + hc[1][k]) * dyv[k];
  return sum_one(yd);
}

// grad_forward_step_vec for runtime sizes (sc[n] scalar).
template <typename T>
inline T grad_forward_step(T* __restrict s, const T* __restrict xt, const T* __restrict dyt, const T* __restrict bt,
                           const T* __restrict ct, T wt, T a, T* __restrict sc, int64_t P, int64_t N) {
  T yd = 0;
  for (int64_t n = 0; n < N; ++n) {
    const T bn = wt * bt[n];
    T* __restrict sn = s + n * P;
    T scn = 0;
#pragma omp simd reduction(+ : scn)
    for (int64_t p = 0; p < P; ++p) {
      sn[p] = a * sn[p] + bn * xt[p];
      scn += sn[p] * dyt[p];
    }
    sc[n] += scn;
    yd += ct[n] * scn;
  }
  return yd;
}

// Reverse sweep step, one head, compile-time sizes (the formulas at the top of the file). On entry gs holds
// a_{t+1} g_{t+1}, on exit a_t g_t. Writes dx_t, adds the head's part of dB_t to the lane accumulators sb[n] of its
// block, and returns sx = x_t · (g_t B_t) (the gradient of the input weight) and xdy = x_t · dy_t. The accumulators
// of g_t B_t are split by the parity of n to shorten the dependency chains.
template <typename T, int PS, int NS>
inline void reverse_step_vec(T* __restrict gs, const T* __restrict xt, const T* __restrict dyt,
                             const T* __restrict bt, const T* __restrict ct, const T* __restrict Dh, T skip, T wt,
                             T a, T* __restrict dxt, typename Vec<T>::V* __restrict sb, T* __restrict dDacc, T& sx_out,
                             T& xdy_out) {
  typedef typename Vec<T>::V V;
  constexpr int W = Vec<T>::W, PV = PS / W;
  V xw[PV], dyv[PV], gb[2][PV];
  for (int k = 0; k < PV; ++k) {
    xw[k] = vload<V>(xt + k * W) * wt;
    dyv[k] = vload<V>(dyt + k * W);
    gb[0][k] = gb[1][k] = V{};
  }
  V* __restrict gv_ = reinterpret_cast<V*>(__builtin_assume_aligned(gs, kVecBytes));
#pragma GCC unroll 16
  for (int n = 0; n < NS; ++n) {
    const T bn = bt[n], cn = ct[n];
    for (int k = 0; k < PV; ++k) {
      const V gv = gv_[n * PV + k] + cn * dyv[k];  // g_t
      gb[n & 1][k] += gv * bn;
      sb[n] += gv * xw[k];
      gv_[n * PV + k] = a * gv;
    }
  }
  V sx = V{}, xdy = V{};
  for (int k = 0; k < PV; ++k) {
    const V gbk = gb[0][k] + gb[1][k];
    const V xv = vload<V>(xt + k * W);
    vstore(dxt + k * W, (Dh ? vload<V>(Dh + k * W) + skip : V{} + skip) * dyv[k] + wt * gbk);
    sx += xv * gbk;
    const V dx_ = dyv[k] * xv;
    vstore(dDacc + k * W, vload<V>(dDacc + k * W) + dx_);
    xdy += dx_;
  }
  sx_out = sum_one(sx);
  xdy_out = sum_one(xdy);
}

// Reverse step for runtime sizes: reverse_step_vec with scalar accumulators sb[n] (w_t already applied).
template <typename T>
inline void reverse_step(T* __restrict gs, const T* __restrict xt, const T* __restrict dyt, const T* __restrict bt,
                         const T* __restrict ct, const T* __restrict Dh, T skip, T wt, T a, T* __restrict dxt,
                         T* __restrict sb, T* __restrict dDacc, T* __restrict gb, int64_t P, int64_t N, T& sx_out,
                         T& xdy_out) {
#pragma omp simd
  for (int64_t p = 0; p < P; ++p) gb[p] = 0;
  for (int64_t n = 0; n < N; ++n) {
    const T cn = ct[n], bn = bt[n];
    T* __restrict gn = gs + n * P;
    T sbn = 0;
#pragma omp simd reduction(+ : sbn)
    for (int64_t p = 0; p < P; ++p) {
      const T gv = gn[p] + cn * dyt[p];  // g_t
      gb[p] += gv * bn;
      sbn += gv * xt[p];
      gn[p] = a * gv;  // a_t g_t: what step t-1 receives
    }
    sb[n] += wt * sbn;
  }
  T sx = 0, xdy = 0;
#pragma omp simd reduction(+ : sx, xdy)
  for (int64_t p = 0; p < P; ++p) {
    dxt[p] = (Dh ? Dh[p] + skip : skip) * dyt[p] + wt * gb[p];
    sx += xt[p] * gb[p];
    dDacc[p] += dyt[p] * xt[p];
    xdy += dyt[p] * xt[p];
  }
  sx_out = sx;
  xdy_out = xdy;
}

// x_t · dy_t of one head.
template <typename T>
inline T dot_p(const T* __restrict xt, const T* __restrict dyt, int64_t P) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t p = 0; p < P; ++p) s += xt[p] * dyt[p];
  return s;
}

// k_t = C_t · B_t of one group row.
template <typename T>
inline T dot_bc(const T* __restrict bt, const T* __restrict ct, int64_t N) {
  T k = 0;
#pragma omp simd reduction(+ : k)
  for (int64_t n = 0; n < N; ++n) k += bt[n] * ct[n];
  return k;
}

// One head's state s[N][P] from its (P, N) row of h0/dh_last, or zeros without one. The branch stays outside the
// loops: a conditional load inside them (src ? src[...] : 0) made the kernels twice as slow on short sequences.
template <typename T>
inline void load_state(T* __restrict s, const T* __restrict src, int64_t P, int64_t N) {
  if (!src) {
    std::memset(s, 0, sizeof(T) * P * N);
    return;
  }
  for (int64_t n = 0; n < N; ++n)
    for (int64_t p = 0; p < P; ++p) s[n * P + p] = src[p * N + n];
}

// Forward item = (batch element, block of kHeadBlock consecutive heads): each time step updates the block's heads
// one after the other, so the loop walks x, y, dt (and B, C when heads share groups) in memory order and the
// independent head updates overlap in the pipeline. The block's states (kHeadBlock · P · N values) stay in L1.
//
// Directional mode (order != null, inference only: no h0, hlast, D): the batch holds K scan orders of each
// image, sequence b·K + k running along order[k] (K, L) over the positions of image b. x and y are then in raster
// order, (batch / K, L, H, P): step t of sequence k reads x at position order[k][t] and adds its output to y there,
// so neither the K gathered copies of x nor the K outputs exist in memory. An item covers all K sequences of its
// image (the K outputs of a position add up in one thread); without order, K = 1.
template <typename T, int PS, int NS>
void forward_items(const Dims& d, const T* x, const T* dt, const T* w, const T* cn, const T* A, const T* B,
                   const T* C, const T* D, const T* h0, T* y, T* hlast, const int64_t* order, int64_t K,
                   int64_t i0, int64_t i1) {
  const int64_t P = PS ? PS : d.P, N = NS ? NS : d.N, H = d.H, G = d.G, L = d.L;
  const int64_t NP = N * P, per_group = H / G;
  const int64_t blocks = (H + kHeadBlock - 1) / kHeadBlock;
  const int64_t line = std::max<int64_t>(1, 64 / (P * int64_t(sizeof(T))));  // heads per cache line of x, y
  Buf<T, int(kHeadBlock) * PS * NS> s_v(kHeadBlock * NP);
  for (int64_t item = i0; item < i1; ++item) {
    const int64_t image = item / blocks, hb0 = (item % blocks) * kHeadBlock, hb1 = std::min(H, hb0 + kHeadBlock);
    for (int64_t k = 0; k < K; ++k) {
      const int64_t b = image * K + k;  // the sequence: rows of dt, w, cn, B, C
      const int64_t* path = order ? order + k * L : nullptr;
      for (int64_t h = hb0; h < hb1; ++h)
        load_state(s_v.data() + (h - hb0) * NP, h0 ? h0 + (b * H + h) * NP : nullptr, P, N);
      for (int64_t t = 0; t < L; ++t) {
        const int64_t row = b * L + t;
        const int64_t xrow = path ? image * L + path[t] : row;  // the row of x and y
        if (t + kAhead < L) {
          const int64_t ahead = row + kAhead, xahead = path ? image * L + path[t + kAhead] : ahead;
          for (int64_t h = hb0; h < hb1; h += line)
            __builtin_prefetch(x + (xahead * H + h) * P), __builtin_prefetch(y + (xahead * H + h) * P, 1);
          for (int64_t g = hb0 / per_group; g <= (hb1 - 1) / per_group; ++g)
            __builtin_prefetch(B + (ahead * G + g) * N), __builtin_prefetch(C + (ahead * G + g) * N);
          __builtin_prefetch(dt + ahead * H + hb0);
          if (w) __builtin_prefetch(w + ahead * H + hb0);
          if (cn) __builtin_prefetch(cn + ahead * H + hb0);
        }
        int64_t k_group = -1;  // the group whose k_t = C_t · B_t is in k_t (heads of a group share it)
        T k_t = 0;
        T decay[kHeadBlock];
        block_decays(dt + row * H, A, hb0, hb1 - hb0, decay);
        for (int64_t h = hb0; h < hb1; ++h) {
          T* __restrict s = s_v.data() + (h - hb0) * NP;
          const int64_t g = h / per_group;
          const T* bt = B + (row * G + g) * N;
          const T* ct = C + (row * G + g) * N;
          const T dtt = dt[row * H + h];
          const T a = decay[h - hb0];
          const T wt = w ? w[row * H + h] : dtt;  // input weight: dt, or the trapezoid rule's own
          T skip = 0;
          if (cn) {
            if (g != k_group) k_t = dot_bc(bt, ct, N), k_group = g;
            skip = -cn[row * H + h] * k_t;
          }
          const bool add = path && k > 0;
          if constexpr (PS != 0 && NS != 0)
            fwd_step_vec<T, PS, NS>(s, x + (xrow * H + h) * P, bt, ct, D ? D + h * P : nullptr, skip, wt, a,
                                    y + (xrow * H + h) * P, add);
          else
            fwd_step<T, PS, NS>(s, x + (xrow * H + h) * P, bt, ct, D ? D + h * P : nullptr, skip, wt, a,
                                y + (xrow * H + h) * P, add, P, N);
        }
      }
      if (hlast)
        for (int64_t h = hb0; h < hb1; ++h) {
          const T* s = s_v.data() + (h - hb0) * NP;
          for (int64_t n = 0; n < N; ++n)
            for (int64_t p = 0; p < P; ++p) hlast[((b * H + h) * P + p) * N + n] = s[n * P + p];
        }
    }
  }
}

// d/d(dt) through the decay is decay_part; the input weight's gradient sx goes to dw when the weight is its own
// input (trapezoid rule), else it is dt and adds to ddt.
template <typename T>
inline void input_weight_grads(T decay_part, T sx, T* ddt, T* dw, int64_t at) {
  if (dw) {
    ddt[at] = decay_part;
    dw[at] = sx;
  } else {
    ddt[at] = decay_part + sx;
  }
}

// Heads per backward block for groups of R heads: blocks never span two groups, so a block's heads share B_t and
// C_t and their dB_t, dC_t add up inside the kernel (one partial row per block and step instead of one per head).
constexpr int64_t kBackwardBlock = 8;
inline int64_t backward_block(int64_t R) { return std::min(kBackwardBlock, R); }

// Every kAnchor steps the reverse sweep replaces its running sum by the exact product a_t <g_t, h_{t-1}> from a state
// kept by the forward sweep: in float32 the sum's telescoping leaves the rounding of every recomputed state in the
// result (over L = 4096 steps, 1e-4 relative error in dA), the anchors bound that to kAnchor steps (L / kAnchor
// states per head, half the size of x at P = N = 16).
constexpr int64_t kAnchor = 32;

// Backward item = (batch element, group, block of that group's heads), in two sweeps over the sequence that keep
// the block's states in memory plus one state per head every kAnchor steps:
//   1. forward, from h0: the states h_t again, dC_t = h_tᵀ dy_t, and q_t = dy_t · (h_t C_t) per head, which waits
//      in ddt for the second sweep (plus <dL/dh_last, h_last> at the last step);
//   2. reverse: the adjoint g_t, dx_t, dB_t, and the gradient of the decays from the identity
//        dL/dcum_t = q_t - x̃_t · dx̃_t,   cum_t = Σ_{r<=t} dt_r A,   x̃_t = w_t x_t,   dx̃_t = g_t B_t
//      (exp(cum_t) scales everything the state carries into step t's output, exp(-cum_t) what step t's input adds
//      to the state), so d(dt_t A) = Σ_{r>=t} dL/dcum_r: a running sum of the reverse sweep, kept in double. It
//      replaces the per-step product a_t <g_t, h_{t-1}>, which needs h_{t-1} in the reverse sweep; that product
//      is taken only at the anchor steps (kAnchor), where it resets the sum.
template <typename T, int PS, int NS>
void backward_items(const Dims& d, const T* x, const T* dt, const T* w, const T* cn, const T* A, const T* B,
                    const T* C, const T* D, const T* dy, const T* dhlast, const T* h0, T* dx, T* ddt, T* dw, T* dcn,
                    T* dA, T* dB, T* dC, T* dD, T* dh0, int64_t i0, int64_t i1) {
  typedef typename Vec<T>::V V;
  constexpr int W = Vec<T>::W;
  constexpr bool kVec = PS != 0 && NS != 0;
  const int64_t P = PS ? PS : d.P, N = NS ? NS : d.N, H = d.H, G = d.G, L = d.L, NP = N * P;
  const int64_t R = H / G, HB = backward_block(R), NB = (R + HB - 1) / HB;
  const int64_t line = std::max<int64_t>(1, 64 / (P * int64_t(sizeof(T))));  // heads per cache line of x, dy, dx
  Buf<T, int(kBackwardBlock) * PS * NS> st_b(HB * NP), gs_b(HB * NP);
  std::vector<T> dd_v(HB * P), gb_v(P), sb_s(N), sc_s(N);
  V sb_v[kVec ? NS : 1], sc_v[kVec ? NS : 1];
  double run[kBackwardBlock], dA_acc[kBackwardBlock];
  T decay[kBackwardBlock];
  // h_{t-1} of the block's heads for every anchor step t (t % kAnchor == 0, t > 0); kept by the thread between calls
  // (1 MB per item at L = 4096: a fresh buffer each call cost its page faults and zeroing every time)
  thread_local std::vector<T> anchors;
  for (int64_t item = i0; item < i1; ++item) {
    const int64_t b = item / (G * NB), g = (item / NB) % G, jb = item % NB;
    const int64_t hA = g * R + jb * HB, nh = std::min(HB, (g + 1) * R - hA);
    if (anchors.size() < size_t(((L - 1) / kAnchor) * nh * NP)) anchors.resize(((L - 1) / kAnchor) * nh * NP);
    // Sweep 1: forward.
    for (int64_t j = 0; j < nh; ++j) load_state(st_b.data() + j * NP, h0 ? h0 + (b * H + hA + j) * NP : nullptr, P, N);
    for (int64_t t = 0; t < L; ++t) {
      const int64_t row = b * L + t;
      if (t + kAhead < L) {
        const int64_t ahead = row + kAhead;
        for (int64_t j = 0; j < nh; j += line) {
          __builtin_prefetch(x + (ahead * H + hA + j) * P);
          __builtin_prefetch(dy + (ahead * H + hA + j) * P);
        }
        __builtin_prefetch(B + (ahead * G + g) * N), __builtin_prefetch(C + (ahead * G + g) * N);
        __builtin_prefetch(dt + ahead * H + hA);
        if (w) __builtin_prefetch(w + ahead * H + hA);
      }
      const T* __restrict bt = B + (row * G + g) * N;
      const T* __restrict ct = C + (row * G + g) * N;
      block_decays(dt + row * H, A, hA, nh, decay);
      if constexpr (kVec) {
        for (int n = 0; n < NS; ++n) sc_v[n] = V{};
      } else {
        std::fill(sc_s.begin(), sc_s.end(), T(0));
      }
      T coef = 0;  // Σ_heads cn_t (x_t · dy_t): the correction's part of dC_t
      for (int64_t j = 0; j < nh; ++j) {
        const int64_t h = hA + j, at = row * H + h;
        const T dtt = dt[at];
        const T a = decay[j];
        const T wt = w ? w[at] : dtt;
        T* __restrict s = st_b.data() + j * NP;
        if constexpr (kVec)
          ddt[at] = grad_forward_step_vec<T, PS, NS>(s, x + at * P, dy + at * P, bt, ct, wt, a, sc_v);
        else
          ddt[at] = grad_forward_step<T>(s, x + at * P, dy + at * P, bt, ct, wt, a, sc_s.data(), P, N);
        if (cn) coef += cn[at] * dot_p(x + at * P, dy + at * P, P);
      }
      T* __restrict dCt = dC + ((row * G + g) * NB + jb) * N;
      if constexpr (kVec) {
        for (int q = 0; q < NS / W; ++q) vstore(dCt + q * W, sum_lanes(sc_v + q * W) - coef * vload<V>(bt + q * W));
      } else {
        for (int64_t n = 0; n < N; ++n) dCt[n] = sc_s[n] - coef * bt[n];
      }
      if ((t + 1) % kAnchor == 0 && t + 1 < L)
        std::copy(st_b.data(), st_b.data() + nh * NP, anchors.data() + ((t + 1) / kAnchor - 1) * nh * NP);
    }
    if (dhlast && L > 0)  // h_last = h_{L-1} is an output too: its gradient's share of dL/dcum_{L-1}
      for (int64_t j = 0; j < nh; ++j) {
        const int64_t h = hA + j;
        const T* s = st_b.data() + j * NP;
        T q = 0;
        for (int64_t n = 0; n < N; ++n)
          for (int64_t p = 0; p < P; ++p) q += dhlast[((b * H + h) * P + p) * N + n] * s[n * P + p];
        ddt[((b * L) + L - 1) * H + h] += q;
      }
    // Sweep 2: reverse.
    for (int64_t j = 0; j < nh; ++j) {
      const int64_t h = hA + j;
      load_state(gs_b.data() + j * NP, dhlast ? dhlast + (b * H + h) * NP : nullptr, P, N);
      std::fill(dd_v.begin() + j * P, dd_v.begin() + (j + 1) * P, T(0));
      run[j] = 0;
      dA_acc[j] = 0;
    }
    for (int64_t t = L - 1; t >= 0; --t) {
      const int64_t row = b * L + t;
      if (t >= kAhead) {
        const int64_t ahead = row - kAhead;
        for (int64_t j = 0; j < nh; j += line) {
          __builtin_prefetch(x + (ahead * H + hA + j) * P);
          __builtin_prefetch(dy + (ahead * H + hA + j) * P);
          __builtin_prefetch(dx + (ahead * H + hA + j) * P, 1);
        }
        __builtin_prefetch(B + (ahead * G + g) * N), __builtin_prefetch(C + (ahead * G + g) * N);
        __builtin_prefetch(dt + ahead * H + hA), __builtin_prefetch(ddt + ahead * H + hA, 1);
        __builtin_prefetch(dB + ((ahead * G + g) * NB + jb) * N, 1);
        if (w) __builtin_prefetch(w + ahead * H + hA);
        if (cn) __builtin_prefetch(cn + ahead * H + hA);
      }
      const T* __restrict bt = B + (row * G + g) * N;
      const T* __restrict ct = C + (row * G + g) * N;
      const T k_t = cn ? dot_bc(bt, ct, N) : T(0);
      block_decays(dt + row * H, A, hA, nh, decay);
      if constexpr (kVec) {
        for (int n = 0; n < NS; ++n) sb_v[n] = V{};
      } else {
        std::fill(sb_s.begin(), sb_s.end(), T(0));
      }
      T coef = 0;  // Σ_heads cn_t (x_t · dy_t): the correction's part of dB_t
      for (int64_t j = 0; j < nh; ++j) {
        const int64_t h = hA + j, at = row * H + h;
        const T dtt = dt[at];
        const T a = decay[j];
        const T wt = w ? w[at] : dtt;
        const T cnt = cn ? cn[at] : T(0);
        T sx, xdy;
        if constexpr (kVec)
          reverse_step_vec<T, PS, NS>(gs_b.data() + j * NP, x + at * P, dy + at * P, bt, ct, D ? D + h * P : nullptr,
                                      -cnt * k_t, wt, a, dx + at * P, sb_v, dd_v.data() + j * P, sx, xdy);
        else
          reverse_step<T>(gs_b.data() + j * NP, x + at * P, dy + at * P, bt, ct, D ? D + h * P : nullptr, -cnt * k_t,
                          wt, a, dx + at * P, sb_s.data(), dd_v.data() + j * P, gb_v.data(), P, N, sx, xdy);
        if (t % kAnchor == 0 && t > 0) {  // the exact value a_t <g_t, h_{t-1}>: gs holds a_t g_t now
          const T* hp = anchors.data() + (t / kAnchor - 1) * nh * NP + j * NP;
          const T* gp = gs_b.data() + j * NP;
          double exact = 0;
          for (int64_t k = 0; k < NP; ++k) exact += double(gp[k]) * double(hp[k]);
          run[j] = exact;
        } else {
          run[j] += double(ddt[at]) - double(wt) * double(sx);  // dL/dcum_t, summed over r >= t
        }
        input_weight_grads(T(double(A[h]) * run[j]), sx, ddt, dw, at);
        dA_acc[j] += double(dtt) * run[j];
        if (cn) {
          dcn[at] = -k_t * xdy;
          coef += cnt * xdy;
        }
      }
      T* __restrict dBt = dB + ((row * G + g) * NB + jb) * N;
      if constexpr (kVec) {
        for (int q = 0; q < NS / W; ++q) vstore(dBt + q * W, sum_lanes(sb_v + q * W) - coef * vload<V>(ct + q * W));
      } else {
        for (int64_t n = 0; n < N; ++n) dBt[n] = sb_s[n] - coef * ct[n];
      }
    }
    for (int64_t j = 0; j < nh; ++j) {
      const int64_t h = hA + j;
      dA[b * H + h] = T(dA_acc[j]);
      if (dD)
        for (int64_t p = 0; p < P; ++p) dD[(b * H + h) * P + p] = dd_v[j * P + p];
      if (dh0)
        for (int64_t n = 0; n < N; ++n)
          for (int64_t p = 0; p < P; ++p) dh0[((b * H + h) * P + p) * N + n] = gs_b.data()[j * NP + n * P + p];
    }
  }
}

template <typename T>
int forward(const T* x, const T* dt, const T* w, const T* cn, const T* A, const T* B, const T* C, const T* D,
            const T* h0, T* y, T* hlast, const int64_t* order, int64_t K, int64_t batch, int64_t L, int64_t H,
            int64_t P, int64_t G, int64_t N, int64_t i0, int64_t i1) {
  DenormalGuard guard;
  const Dims d{batch, L, H, P, G, N};
  if (P == 16 && N == 16)
    forward_items<T, 16, 16>(d, x, dt, w, cn, A, B, C, D, h0, y, hlast, order, K, i0, i1);
  else
    forward_items<T, 0, 0>(d, x, dt, w, cn, A, B, C, D, h0, y, hlast, order, K, i0, i1);
  return 0;
}

template <typename T>
int backward(const T* x, const T* dt, const T* w, const T* cn, const T* A, const T* B, const T* C, const T* D,
             const T* dy, const T* dhlast, const T* h0, T* dx, T* ddt, T* dw, T* dcn, T* dA, T* dB, T* dC, T* dD,
             T* dh0, int64_t batch, int64_t L, int64_t H, int64_t P, int64_t G, int64_t N, int64_t i0, int64_t i1) {
  DenormalGuard guard;
  const Dims d{batch, L, H, P, G, N};
  if (P == 16 && N == 16)
    backward_items<T, 16, 16>(d, x, dt, w, cn, A, B, C, D, dy, dhlast, h0, dx, ddt, dw, dcn, dA, dB, dC, dD, dh0, i0,
                              i1);
  else
    backward_items<T, 0, 0>(d, x, dt, w, cn, A, B, C, D, dy, dhlast, h0, dx, ddt, dw, dcn, dA, dB, dC, dD, dh0, i0,
                            i1);
  return 0;
}

// The trapezoid rule's kernel inputs from its weights λ (ssmad/ssm/ssd_mamba3.py), over (batch, L, H) arrays:
//   w_t = λ_t dt_t + c_t,   c_t = (1 - λ_{t+1}) dt_{t+1}   (c_{L-1} = 0)
// and their backward from dw, dc (the kernel's gradients of w and cn), with q_t = dw_{t-1} + dc_{t-1} (q_0 = 0):
//   ddt_t += λ_t dw_t + (1 - λ_t) q_t,   dλ_t = dt_t (dw_t - q_t)
// One pass each instead of the dozen tensor operations (and their autograd nodes) of the torch formula.
template <typename T>
void trapezoid_forward(const T* dt, const T* lam, T* w, T* cn, int64_t batch, int64_t L, int64_t H) {
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < L; ++t) {
      const int64_t row = (b * L + t) * H;
      const bool last = t + 1 == L;
#pragma omp simd
      for (int64_t h = 0; h < H; ++h) {
        const T c = last ? T(0) : (T(1) - lam[row + H + h]) * dt[row + H + h];
        cn[row + h] = c;
        w[row + h] = lam[row + h] * dt[row + h] + c;
      }
    }
}

template <typename T>
void trapezoid_backward(const T* dt, const T* lam, const T* dw, const T* dcn, T* ddt, T* dlam, int64_t batch, int64_t L,
                        int64_t H) {
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < L; ++t) {
      const int64_t row = (b * L + t) * H;
      const bool first = t == 0;
#pragma omp simd
      for (int64_t h = 0; h < H; ++h) {
        const T q = first ? T(0) : dw[row - H + h] + dcn[row - H + h];
        ddt[row + h] += lam[row + h] * dw[row + h] + (T(1) - lam[row + h]) * q;
        dlam[row + h] = dt[row + h] * (dw[row + h] - q);
      }
    }
}

}  // namespace

extern "C" {

#ifdef _OPENMP
int ssmad_ssd_openmp() { return 1; }
#else
int ssmad_ssd_openmp() { return 0; }
#endif

int ssmad_ssd_abi_version() { return 7; }
int64_t ssmad_ssd_head_block() { return kHeadBlock; }
int64_t ssmad_ssd_backward_block() { return kBackwardBlock; }
int ssmad_ssd_vector_bytes() { return kVecBytes; }

#define SSMAD_SSD_EXPORT(SUFFIX, T)                                                                                   \
  int ssmad_ssd_fwd_##SUFFIX(const T* x, const T* dt, const T* w, const T* cn, const T* A, const T* B, const T* C,    \
                             const T* D, const T* h0, T* y, T* hlast, const int64_t* order, int64_t K, int64_t batch, \
                             int64_t L, int64_t H, int64_t P, int64_t G, int64_t N, int64_t i0, int64_t i1) {         \
    return forward<T>(x, dt, w, cn, A, B, C, D, h0, y, hlast, order, K, batch, L, H, P, G, N, i0, i1);               \
  }                                                                                                                   \
  int ssmad_ssd_bwd_##SUFFIX(const T* x, const T* dt, const T* w, const T* cn, const T* A, const T* B, const T* C,    \
                             const T* D, const T* dy, const T* dhlast, const T* h0, T* dx, T* ddt, T* dw, T* dcn,     \
                             T* dA, T* dB, T* dC, T* dD, T* dh0, int64_t batch, int64_t L, int64_t H, int64_t P,      \
                             int64_t G, int64_t N, int64_t i0, int64_t i1) {                                          \
    return backward<T>(x, dt, w, cn, A, B, C, D, dy, dhlast, h0, dx, ddt, dw, dcn, dA, dB, dC, dD, dh0, batch, L, H, \
                       P, G, N, i0, i1);                                                                              \
  }

// The same over all items, in threads ranges (run_items).
#define SSMAD_SSD_EXPORT_ALL(SUFFIX, T)                                                                               \
  int ssmad_ssd_fwd_all_##SUFFIX(const T* x, const T* dt, const T* w, const T* cn, const T* A, const T* B,            \
                                 const T* C, const T* D, const T* h0, T* y, T* hlast, const int64_t* order, int64_t K, \
                                 int64_t batch, int64_t L, int64_t H, int64_t P, int64_t G, int64_t N, int64_t items, \
                                 int64_t threads) {                                                                   \
    run_items(items, threads, [&](int64_t i0, int64_t i1) {                                                           \
      forward<T>(x, dt, w, cn, A, B, C, D, h0, y, hlast, order, K, batch, L, H, P, G, N, i0, i1);                    \
    });                                                                                                               \
    return 0;                                                                                                         \
  }                                                                                                                   \
  int ssmad_ssd_bwd_all_##SUFFIX(const T* x, const T* dt, const T* w, const T* cn, const T* A, const T* B,            \
                                 const T* C, const T* D, const T* dy, const T* dhlast, const T* h0, T* dx, T* ddt,    \
                                 T* dw, T* dcn, T* dA, T* dB, T* dC, T* dD, T* dh0, int64_t batch, int64_t L,         \
                                 int64_t H, int64_t P, int64_t G, int64_t N, int64_t items, int64_t threads) {        \
    run_items(items, threads, [&](int64_t i0, int64_t i1) {                                                           \
      backward<T>(x, dt, w, cn, A, B, C, D, dy, dhlast, h0, dx, ddt, dw, dcn, dA, dB, dC, dD, dh0, batch, L, H, P, G, \
                  N, i0, i1);                                                                                         \
    });                                                                                                               \
    return 0;                                                                                                         \
  }

#define SSMAD_SSD_TRAPEZOID(SUFFIX, T)                                                                                \
  int ssmad_ssd_trapezoid_fwd_##SUFFIX(const T* dt, const T* lam, T* w, T* cn, int64_t batch, int64_t L, int64_t H) {  \
    trapezoid_forward<T>(dt, lam, w, cn, batch, L, H);                                                                \
    return 0;                                                                                                         \
  }                                                                                                                   \
  int ssmad_ssd_trapezoid_bwd_##SUFFIX(const T* dt, const T* lam, const T* dw, const T* dcn, T* ddt, T* dlam,          \
                                       int64_t batch, int64_t L, int64_t H) {                                         \
    trapezoid_backward<T>(dt, lam, dw, dcn, ddt, dlam, batch, L, H);                                                  \
    return 0;                                                                                                         \
  }

SSMAD_SSD_EXPORT(f32, float)
SSMAD_SSD_EXPORT(f64, double)
SSMAD_SSD_TRAPEZOID(f32, float)
SSMAD_SSD_TRAPEZOID(f64, double)
SSMAD_SSD_EXPORT_ALL(f32, float)
SSMAD_SSD_EXPORT_ALL(f64, double)

}  // extern "C"
