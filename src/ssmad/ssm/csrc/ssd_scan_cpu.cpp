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
//   ckpt                : (batch, H, n_chunks, N, P)  state before each chunk of T steps, saved by the forward
//                          when gradients are needed; the backward recomputes the states inside a chunk from it
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

#if defined(__SSE__) || defined(__x86_64__)
#include <immintrin.h>
#endif

namespace {

// Flush denormals to zero for the duration of a call (decaying states underflow in long sequences, where x86
// arithmetic on denormals is ~100x slower), restoring the caller's mode afterwards.
struct DenormalGuard {
#if defined(__SSE__) || defined(__x86_64__)
  unsigned int saved;
  DenormalGuard() : saved(_mm_getcsr()) { _mm_setcsr(saved | 0x8040); }
  ~DenormalGuard() { _mm_setcsr(saved); }
#endif
};

struct Dims {
  int64_t batch, L, H, P, G, N, chunk;
  int64_t n_chunks() const { return (L + chunk - 1) / chunk; }
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

// 32-byte vectors of T (8 floats / 4 doubles) for the P = N = 16 specialisation, written with GCC/Clang vector
// extensions: plain loops over the two state rows per step were auto-vectorised into shuffles and gathers.
template <typename T>
struct Vec {
  typedef T V __attribute__((vector_size(32)));
  static constexpr int W = 32 / sizeof(T);
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

// fwd_step for compile-time P = PS (a multiple of the vector width) and N = NS; s is 32-byte aligned.
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
  V* __restrict sv = reinterpret_cast<V*>(__builtin_assume_aligned(s, 32));
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

// out[i] = sum of the lanes of v[i], for the W vectors v[0..W-1] (a transposed horizontal sum).
inline Vec<float>::V sum_lanes(const Vec<float>::V* v) {
#if defined(__AVX__)
  const __m256 t0 = _mm256_hadd_ps((__m256)v[0], (__m256)v[1]), t1 = _mm256_hadd_ps((__m256)v[2], (__m256)v[3]);
  const __m256 t2 = _mm256_hadd_ps((__m256)v[4], (__m256)v[5]), t3 = _mm256_hadd_ps((__m256)v[6], (__m256)v[7]);
  const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
  return (Vec<float>::V)_mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
#else
  Vec<float>::V out{};
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 8; ++j) out[i] += v[i][j];
  return out;
#endif
}

inline Vec<double>::V sum_lanes(const Vec<double>::V* v) {
#if defined(__AVX__)
  const __m256d t0 = _mm256_hadd_pd((__m256d)v[0], (__m256d)v[1]), t1 = _mm256_hadd_pd((__m256d)v[2], (__m256d)v[3]);
  return (Vec<double>::V)_mm256_add_pd(_mm256_permute2f128_pd(t0, t1, 0x20), _mm256_permute2f128_pd(t0, t1, 0x31));
#else
  Vec<double>::V out{};
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) out[i] += v[i][j];
  return out;
#endif
}

template <typename V, typename T>
inline T sum_one(V v) {
  T s = 0;
  for (int i = 0; i < int(sizeof(V) / sizeof(T)); ++i) s += v[i];
  return s;
}

// Recompute step of the backward for compile-time sizes: cur = a prev + (dt x) Bᵀ.
template <typename T, int PS, int NS>
inline void recompute_step_vec(const T* __restrict prev, T* __restrict cur, const T* __restrict xt,
                               const T* __restrict bt, T dtt, T a) {
  typedef typename Vec<T>::V V;
  constexpr int W = Vec<T>::W, PV = PS / W;
  V xd[PV];
  for (int k = 0; k < PV; ++k) xd[k] = vload<V>(xt + k * W) * dtt;
#pragma GCC unroll 16
  for (int n = 0; n < NS; ++n)
    for (int k = 0; k < PV; ++k) vstore(cur + (n * PV + k) * W, a * vload<V>(prev + (n * PV + k) * W) + bt[n] * xd[k]);
}

// Reverse step of the backward for compile-time sizes (the formulas at the top of the file), one head. On entry gs
// holds a_{t+1} g_{t+1}, on exit a_t g_t. The head's parts of dB_t and dC_t are added to the vector accumulators
// sb[n], sc[n] of its block (their lanes are summed once per block and step by the caller). The accumulators of
// gb and sh are split by the parity of n to shorten the dependency chains.
template <typename T, int PS, int NS>
inline void reverse_step_vec(T* __restrict gs, const T* __restrict prev, const T* __restrict cur,
                             const T* __restrict xt, const T* __restrict dyt, const T* __restrict bt,
                             const T* __restrict ct, const T* __restrict Dh, T skip, T wt, T a, bool want_xdy,
                             T* __restrict dxt, typename Vec<T>::V* __restrict sb, typename Vec<T>::V* __restrict sc,
                             T* __restrict dDacc, T& s_dot, T& sx_out, T& xdy_out) {
  typedef typename Vec<T>::V V;
  constexpr int W = Vec<T>::W, PV = PS / W;
  V xw[PV], dyv[PV], gb[2][PV], sh[2][PV];
  for (int k = 0; k < PV; ++k) {
    xw[k] = vload<V>(xt + k * W) * wt;
    dyv[k] = vload<V>(dyt + k * W);
    gb[0][k] = gb[1][k] = sh[0][k] = sh[1][k] = V{};
  }
#pragma GCC unroll 16
  for (int n = 0; n < NS; ++n) {
    const T bn = bt[n], cn = ct[n];
    V sbn = V{}, scn = V{};
    for (int k = 0; k < PV; ++k) {
      const int off = (n * PV + k) * W;
      const V gv = vload<V>(gs + off) + cn * dyv[k];  // g_t
      gb[n & 1][k] += gv * bn;
      sh[n & 1][k] += gv * vload<V>(prev + off);
      sbn += gv * xw[k];
      scn += vload<V>(cur + off) * dyv[k];
      vstore(gs + off, a * gv);
    }
    sb[n] += sbn;
    sc[n] += scn;
  }
  V sx = V{}, shv = V{}, xdy = V{};
  for (int k = 0; k < PV; ++k) {
    const V gbk = gb[0][k] + gb[1][k];
    const V xv = vload<V>(xt + k * W);
    vstore(dxt + k * W, (Dh ? vload<V>(Dh + k * W) + skip : V{} + skip) * dyv[k] + wt * gbk);
    sx += xv * gbk;
    shv += sh[0][k] + sh[1][k];
    const V dx_ = dyv[k] * xv;
    vstore(dDacc + k * W, vload<V>(dDacc + k * W) + dx_);
    xdy += dx_;
  }
  s_dot = sum_one<V, T>(shv);
  sx_out = sum_one<V, T>(sx);
  xdy_out = want_xdy ? sum_one<V, T>(xdy) : T(0);
}

// Reverse step for runtime sizes: reverse_step_vec with scalar accumulators sb[n], sc[n] (w_t already applied).
template <typename T>
inline void reverse_step(T* __restrict gs, const T* __restrict prev, const T* __restrict cur, const T* __restrict xt,
                         const T* __restrict dyt, const T* __restrict bt, const T* __restrict ct,
                         const T* __restrict Dh, T skip, T wt, T a, T* __restrict dxt, T* __restrict sb,
                         T* __restrict sc, T* __restrict dDacc, T* __restrict gb, int64_t P, int64_t N, T& s_dot,
                         T& sx_out, T& xdy_out) {
#pragma omp simd
  for (int64_t p = 0; p < P; ++p) gb[p] = 0;
  T sdot = 0;
  for (int64_t n = 0; n < N; ++n) {
    const T cn = ct[n], bn = bt[n];
    T* __restrict gn = gs + n * P;
    const T* __restrict hp = prev + n * P;
    const T* __restrict hc = cur + n * P;
    T sbn = 0, scn = 0, sh = 0;
#pragma omp simd reduction(+ : sbn, scn, sh)
    for (int64_t p = 0; p < P; ++p) {
      const T gv = gn[p] + cn * dyt[p];  // g_t
      gb[p] += gv * bn;
      sbn += gv * xt[p];
      scn += hc[p] * dyt[p];
      sh += gv * hp[p];
      gn[p] = a * gv;  // a_t g_t: what step t-1 receives
    }
    sb[n] += wt * sbn;
    sc[n] += scn;
    sdot += sh;
  }
  T sx = 0, xdy = 0;
#pragma omp simd reduction(+ : sx, xdy)
  for (int64_t p = 0; p < P; ++p) {
    dxt[p] = (Dh ? Dh[p] + skip : skip) * dyt[p] + wt * gb[p];
    sx += xt[p] * gb[p];
    dDacc[p] += dyt[p] * xt[p];
    xdy += dyt[p] * xt[p];
  }
  s_dot = sdot;
  sx_out = sx;
  xdy_out = xdy;
}

// k_t = C_t · B_t of one group row.
template <typename T>
inline T dot_bc(const T* __restrict bt, const T* __restrict ct, int64_t N) {
  T k = 0;
#pragma omp simd reduction(+ : k)
  for (int64_t n = 0; n < N; ++n) k += bt[n] * ct[n];
  return k;
}

// Forward item = (batch element, block of kHeadBlock consecutive heads): each time step updates the block's heads
// one after the other, so the loop walks x, y, dt (and B, C when heads share groups) in memory order and the
// independent head updates overlap in the pipeline. The block's states (kHeadBlock · P · N values) stay in L1.
//
// Directional mode (order != null, inference only: no h0, hlast, ckpt, D): the batch holds K scan orders of each
// image, sequence b·K + k running along order[k] (K, L) over the positions of image b. x and y are then in raster
// order, (batch / K, L, H, P): step t of sequence k reads x at position order[k][t] and adds its output to y there,
// so neither the K gathered copies of x nor the K outputs exist in memory. An item covers all K sequences of its
// image (the K outputs of a position add up in one thread); without order, K = 1.
template <typename T, int PS, int NS>
void forward_items(const Dims& d, const T* x, const T* dt, const T* w, const T* cn, const T* A, const T* B,
                   const T* C, const T* D, const T* h0, T* y, T* hlast, T* ckpt, const int64_t* order, int64_t K,
                   int64_t i0, int64_t i1) {
  const int64_t P = PS ? PS : d.P, N = NS ? NS : d.N, H = d.H, G = d.G, L = d.L;
  const int64_t nc = d.n_chunks(), NP = N * P, per_group = H / G;
  const int64_t blocks = (H + kHeadBlock - 1) / kHeadBlock;
  const int64_t line = std::max<int64_t>(1, 64 / (P * int64_t(sizeof(T))));  // heads per cache line of x, y
  Buf<T, int(kHeadBlock) * PS * NS> s_v(kHeadBlock * NP);
  for (int64_t item = i0; item < i1; ++item) {
    const int64_t image = item / blocks, hb0 = (item % blocks) * kHeadBlock, hb1 = std::min(H, hb0 + kHeadBlock);
    for (int64_t k = 0; k < K; ++k) {
      const int64_t b = image * K + k;  // the sequence: rows of dt, w, cn, B, C
      const int64_t* path = order ? order + k * L : nullptr;
      for (int64_t h = hb0; h < hb1; ++h) {
        T* s = s_v.data() + (h - hb0) * NP;
        for (int64_t n = 0; n < N; ++n)
          for (int64_t p = 0; p < P; ++p) s[n * P + p] = h0 ? h0[((b * H + h) * P + p) * N + n] : T(0);
      }
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
        for (int64_t h = hb0; h < hb1; ++h) {
          T* __restrict s = s_v.data() + (h - hb0) * NP;
          if (ckpt && t % d.chunk == 0)
            std::memcpy(ckpt + ((b * H + h) * nc + t / d.chunk) * NP, s, sizeof(T) * NP);
          const int64_t g = h / per_group;
          const T* bt = B + (row * G + g) * N;
          const T* ct = C + (row * G + g) * N;
          const T dtt = dt[row * H + h];
          const T a = std::exp(dtt * A[h]);
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
// Four heads: their recomputed states for a chunk of 32 steps (4 · 33 · P · N values, 132 KiB at P = N = 16 in
// float) stay in the L2 cache; blocks of 8 heads with 16-step chunks and of 2 with 64-step chunks measured slower.
constexpr int64_t kBackwardBlock = 4;
inline int64_t backward_block(int64_t R) { return std::min(kBackwardBlock, R); }

// Backward item = (batch element, group, block of that group's heads). Chunk by chunk, from the last: the states of
// the chunk's steps are recomputed from the checkpoint for every head of the block, then the adjoint recurrence runs
// backwards through the chunk, all heads of the block per step.
template <typename T, int PS, int NS>
void backward_items(const Dims& d, const T* x, const T* dt, const T* w, const T* cn, const T* A, const T* B,
                    const T* C, const T* D, const T* dy, const T* dhlast, const T* ckpt, T* dx, T* ddt, T* dw, T* dcn,
                    T* dA, T* dB, T* dC, T* dD, T* dh0, int64_t i0, int64_t i1) {
  typedef typename Vec<T>::V V;
  constexpr int W = Vec<T>::W;
  constexpr bool kVec = PS != 0 && NS != 0;
  const int64_t P = PS ? PS : d.P, N = NS ? NS : d.N, H = d.H, G = d.G, L = d.L, TC = d.chunk;
  const int64_t nc = d.n_chunks(), NP = N * P;
  const int64_t R = H / G, HB = backward_block(R), NB = (R + HB - 1) / HB;
  std::vector<T> hs_v(HB * (TC + 1) * NP), gs_v(HB * NP), dd_v(HB * P), gb_v(P), sb_s(N), sc_s(N);
  V sb_v[kVec ? NS : 1], sc_v[kVec ? NS : 1];
  T dA_acc[kBackwardBlock];
  for (int64_t item = i0; item < i1; ++item) {
    const int64_t b = item / (G * NB), g = (item / NB) % G, jb = item % NB;
    const int64_t hA = g * R + jb * HB, nh = std::min(HB, (g + 1) * R - hA);
    for (int64_t j = 0; j < nh; ++j) {
      const int64_t h = hA + j;
      T* gs = gs_v.data() + j * NP;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t p = 0; p < P; ++p) gs[n * P + p] = dhlast ? dhlast[((b * H + h) * P + p) * N + n] : T(0);
      std::fill(dd_v.begin() + j * P, dd_v.begin() + (j + 1) * P, T(0));
      dA_acc[j] = 0;
    }
    for (int64_t c = nc - 1; c >= 0; --c) {
      const int64_t t0 = c * TC, t1 = std::min(L, t0 + TC);
      // Recompute the chunk's states from its checkpoint.
      for (int64_t j = 0; j < nh; ++j)
        std::memcpy(hs_v.data() + j * (TC + 1) * NP, ckpt + ((b * H + hA + j) * nc + c) * NP, sizeof(T) * NP);
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t row = b * L + t;
        if (t + kAhead < L) {
          const int64_t ahead = row + kAhead;
          for (int64_t j = 0; j < nh; j += std::max<int64_t>(1, 64 / (P * int64_t(sizeof(T))))) {
            __builtin_prefetch(x + (ahead * H + hA + j) * P);
            __builtin_prefetch(dy + (ahead * H + hA + j) * P);
          }
          __builtin_prefetch(B + (ahead * G + g) * N), __builtin_prefetch(C + (ahead * G + g) * N);
          __builtin_prefetch(dt + ahead * H + hA);
        }
        const T* __restrict bt = B + (row * G + g) * N;
        for (int64_t j = 0; j < nh; ++j) {
          const int64_t h = hA + j;
          const T dtt = dt[row * H + h];
          const T a = std::exp(dtt * A[h]);
          const T wt = w ? w[row * H + h] : dtt;
          const T* __restrict xt = x + (row * H + h) * P;
          const T* __restrict prev = hs_v.data() + (j * (TC + 1) + (t - t0)) * NP;
          T* __restrict cur = const_cast<T*>(prev) + NP;
          if constexpr (kVec) {
            recompute_step_vec<T, PS, NS>(prev, cur, xt, bt, wt, a);
          } else {
            for (int64_t n = 0; n < N; ++n) {
              const T bn = wt * bt[n];
#pragma omp simd
              for (int64_t p = 0; p < P; ++p) cur[n * P + p] = a * prev[n * P + p] + bn * xt[p];
            }
          }
        }
      }
      for (int64_t t = t1 - 1; t >= t0; --t) {
        const int64_t row = b * L + t;
        if (t >= kAhead) {  // the rows written kAhead steps later (the recompute pass brought in those read)
          for (int64_t j = 0; j < nh; j += std::max<int64_t>(1, 64 / (P * int64_t(sizeof(T)))))
            __builtin_prefetch(dx + ((row - kAhead) * H + hA + j) * P, 1);
          __builtin_prefetch(dB + (((row - kAhead) * G + g) * NB + jb) * N, 1);
          __builtin_prefetch(dC + (((row - kAhead) * G + g) * NB + jb) * N, 1);
        }
        const T* __restrict bt = B + (row * G + g) * N;
        const T* __restrict ct = C + (row * G + g) * N;
        const T k_t = cn ? dot_bc(bt, ct, N) : T(0);
        if constexpr (kVec) {
          for (int n = 0; n < NS; ++n) sb_v[n] = sc_v[n] = V{};
        } else {
          std::fill(sb_s.begin(), sb_s.end(), T(0));
          std::fill(sc_s.begin(), sc_s.end(), T(0));
        }
        T coef = 0;  // Σ_heads cn_t s_t: the correction's part of dB_t, dC_t
        for (int64_t j = 0; j < nh; ++j) {
          const int64_t h = hA + j, at = row * H + h;
          const T dtt = dt[at];
          const T a = std::exp(dtt * A[h]);
          const T wt = w ? w[at] : dtt;
          const T cnt = cn ? cn[at] : T(0);
          const T* __restrict prev = hs_v.data() + (j * (TC + 1) + (t - t0)) * NP;
          T s_dot, sx, xdy;
          if constexpr (kVec)
            reverse_step_vec<T, PS, NS>(gs_v.data() + j * NP, prev, prev + NP, x + at * P, dy + at * P, bt, ct,
                                        D ? D + h * P : nullptr, -cnt * k_t, wt, a, cn != nullptr, dx + at * P, sb_v,
                                        sc_v, dd_v.data() + j * P, s_dot, sx, xdy);
          else
            reverse_step<T>(gs_v.data() + j * NP, prev, prev + NP, x + at * P, dy + at * P, bt, ct,
                            D ? D + h * P : nullptr, -cnt * k_t, wt, a, dx + at * P, sb_s.data(), sc_s.data(),
                            dd_v.data() + j * P, gb_v.data(), P, N, s_dot, sx, xdy);
          input_weight_grads(A[h] * a * s_dot, sx, ddt, dw, at);
          dA_acc[j] += dtt * a * s_dot;
          if (cn) {
            dcn[at] = -k_t * xdy;
            coef += cnt * xdy;
          }
        }
        T* __restrict dBt = dB + ((row * G + g) * NB + jb) * N;
        T* __restrict dCt = dC + ((row * G + g) * NB + jb) * N;
        if constexpr (kVec) {
          for (int q = 0; q < NS / W; ++q) {
            vstore(dBt + q * W, sum_lanes(sb_v + q * W) - coef * vload<V>(ct + q * W));
            vstore(dCt + q * W, sum_lanes(sc_v + q * W) - coef * vload<V>(bt + q * W));
          }
        } else {
          for (int64_t n = 0; n < N; ++n) {
            dBt[n] = sb_s[n] - coef * ct[n];
            dCt[n] = sc_s[n] - coef * bt[n];
          }
        }
      }
    }
    for (int64_t j = 0; j < nh; ++j) {
      const int64_t h = hA + j;
      dA[b * H + h] = dA_acc[j];
      if (dD)
        for (int64_t p = 0; p < P; ++p) dD[(b * H + h) * P + p] = dd_v[j * P + p];
      if (dh0)
        for (int64_t n = 0; n < N; ++n)
          for (int64_t p = 0; p < P; ++p) dh0[((b * H + h) * P + p) * N + n] = gs_v[j * NP + n * P + p];
    }
  }
}

template <typename T>
int forward(const T* x, const T* dt, const T* w, const T* cn, const T* A, const T* B, const T* C, const T* D,
            const T* h0, T* y, T* hlast, T* ckpt, const int64_t* order, int64_t K, int64_t batch, int64_t L,
            int64_t H, int64_t P, int64_t G, int64_t N, int64_t chunk, int64_t i0, int64_t i1) {
  DenormalGuard guard;
  const Dims d{batch, L, H, P, G, N, chunk};
  if (P == 16 && N == 16)
    forward_items<T, 16, 16>(d, x, dt, w, cn, A, B, C, D, h0, y, hlast, ckpt, order, K, i0, i1);
  else
    forward_items<T, 0, 0>(d, x, dt, w, cn, A, B, C, D, h0, y, hlast, ckpt, order, K, i0, i1);
  return 0;
}

template <typename T>
int backward(const T* x, const T* dt, const T* w, const T* cn, const T* A, const T* B, const T* C, const T* D,
             const T* dy, const T* dhlast, const T* ckpt, T* dx, T* ddt, T* dw, T* dcn, T* dA, T* dB, T* dC, T* dD,
             T* dh0, int64_t batch, int64_t L, int64_t H, int64_t P, int64_t G, int64_t N, int64_t chunk, int64_t i0,
             int64_t i1) {
  DenormalGuard guard;
  const Dims d{batch, L, H, P, G, N, chunk};
  if (P == 16 && N == 16)
    backward_items<T, 16, 16>(d, x, dt, w, cn, A, B, C, D, dy, dhlast, ckpt, dx, ddt, dw, dcn, dA, dB, dC, dD, dh0,
                              i0, i1);
  else
    backward_items<T, 0, 0>(d, x, dt, w, cn, A, B, C, D, dy, dhlast, ckpt, dx, ddt, dw, dcn, dA, dB, dC, dD, dh0, i0,
                            i1);
  return 0;
}

}  // namespace

extern "C" {

int ssmad_ssd_abi_version() { return 3; }
int64_t ssmad_ssd_head_block() { return kHeadBlock; }
int64_t ssmad_ssd_backward_block() { return kBackwardBlock; }

#define SSMAD_SSD_EXPORT(SUFFIX, T)                                                                                   \
  int ssmad_ssd_fwd_##SUFFIX(const T* x, const T* dt, const T* w, const T* cn, const T* A, const T* B, const T* C,    \
                             const T* D, const T* h0, T* y, T* hlast, T* ckpt, const int64_t* order, int64_t K,       \
                             int64_t batch, int64_t L, int64_t H, int64_t P, int64_t G, int64_t N, int64_t chunk,     \
                             int64_t i0, int64_t i1) {                                                                \
    return forward<T>(x, dt, w, cn, A, B, C, D, h0, y, hlast, ckpt, order, K, batch, L, H, P, G, N, chunk, i0, i1);  \
  }                                                                                                                   \
  int ssmad_ssd_bwd_##SUFFIX(const T* x, const T* dt, const T* w, const T* cn, const T* A, const T* B, const T* C,    \
                             const T* D, const T* dy, const T* dhlast, const T* ckpt, T* dx, T* ddt, T* dw, T* dcn,   \
                             T* dA, T* dB, T* dC, T* dD, T* dh0, int64_t batch, int64_t L, int64_t H, int64_t P,      \
                             int64_t G, int64_t N, int64_t chunk, int64_t i0, int64_t i1) {                           \
    return backward<T>(x, dt, w, cn, A, B, C, D, dy, dhlast, ckpt, dx, ddt, dw, dcn, dA, dB, dC, dD, dh0, batch, L,  \
                       H, P, G, N, chunk, i0, i1);                                                                    \
  }

SSMAD_SSD_EXPORT(f32, float)
SSMAD_SSD_EXPORT(f64, double)

}  // extern "C"
