// SSD scan (Mamba-2 core recurrence: one scalar decay per head) for CPUs: forward and backward.
//
//   a_t = exp(dt_t * A_h)
//   h_t = a_t * h_{t-1} + w_t * x_t B_tᵀ           state (P, N) per (batch, head), h_{-1} = h0 or 0
//                                                  input weight w = dt, or its own array (Mamba-3 trapezoid rule)
//   y_t = h_t C_t + D_h * x_t
//
// Layouts (all contiguous, row-major; the caller applies dt_bias/softplus before and the z gate after):
//   x, y, dy, dx        : (batch, L, H, P)        dt, ddt, w, dw : (batch, L, H) (w, dw null: w = dt)   A : (H,)
//   B, C                : (batch, L, G, N)        group g serves heads [g H/G, (g+1) H/G)
//   dB, dC (per head)   : (batch, L, H, N)        the caller sums the heads of a group
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
//
// Work item = (batch element, head); items are independent, so the caller (Python thread pool; ctypes releases
// the GIL) runs item ranges in parallel. The readable oracle is ssmad/ssm/ssd_reference.py.

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

// One forward step on the state s[N][P]: s <- a s + (dt x) Bᵀ, acc <- acc + s C (acc starts at D x).
template <typename T, int PS, int NS>
inline void fwd_step(T* __restrict s, const T* __restrict xt, const T* __restrict bt, const T* __restrict ct,
                     const T* __restrict Dh, T dtt, T a, T* __restrict yt, int64_t P_, int64_t N_) {
  const int64_t P = PS ? PS : P_, N = NS ? NS : N_;
  Buf<T, PS> xd_b(P), acc0_b(P), acc1_b(P);
  T* __restrict xd = xd_b.data();
  T* __restrict acc0 = acc0_b.data();
  T* __restrict acc1 = acc1_b.data();
#pragma omp simd
  for (int64_t p = 0; p < P; ++p) {
    xd[p] = dtt * xt[p];
    acc0[p] = Dh ? Dh[p] * xt[p] : T(0);
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
  for (int64_t p = 0; p < P; ++p) yt[p] = acc0[p] + acc1[p];
}

// Rows of one head are H·P (x, y) or G·N (B, C) elements apart, so consecutive steps touch a new cache line of
// every array, often on a new page where the hardware prefetcher stops: the loops ask for the rows kAhead steps
// ahead themselves (without this a head's forward waited on memory for half of its time).
constexpr int64_t kAhead = 12;
// Heads per forward work item (see forward_items); exported so the caller can count the items.
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
                         const T* __restrict Dh, T dtt, T a, T* __restrict yt) {
  typedef typename Vec<T>::V V;
  constexpr int W = Vec<T>::W, PV = PS / W;
  V xd[PV], acc0[PV], acc1[PV];
  for (int k = 0; k < PV; ++k) {
    const V xv = vload<V>(xt + k * W);
    xd[k] = xv * dtt;
    acc0[k] = Dh ? vload<V>(Dh + k * W) * xv : V{};
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
  for (int k = 0; k < PV; ++k) vstore(yt + k * W, acc0[k] + acc1[k]);
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

// Reverse step of the backward for compile-time sizes (the formulas at the top of the file). On entry gs holds
// a_{t+1} g_{t+1} (plus nothing else), on exit a_t g_t. Accumulators are split by the parity of n to shorten the
// dependency chains.
template <typename T, int PS, int NS>
inline void reverse_step_vec(T* __restrict gs, const T* __restrict prev, const T* __restrict cur,
                             const T* __restrict xt, const T* __restrict dyt, const T* __restrict bt,
                             const T* __restrict ct, const T* __restrict Dh, T wt, T a, T* __restrict dxt,
                             T* __restrict dBt, T* __restrict dCt, T* __restrict dDacc, T& s_dot, T& sx_out) {
  typedef typename Vec<T>::V V;
  constexpr int W = Vec<T>::W, PV = PS / W;
  V xv[PV], dyv[PV], gb[2][PV], sh[2][PV], sb[NS], sc[NS];
  for (int k = 0; k < PV; ++k) {
    xv[k] = vload<V>(xt + k * W);
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
      sbn += gv * xv[k];
      scn += vload<V>(cur + off) * dyv[k];
      vstore(gs + off, a * gv);
    }
    sb[n] = sbn;
    sc[n] = scn;
  }
  for (int j = 0; j < NS / W; ++j) {
    vstore(dBt + j * W, sum_lanes(sb + j * W) * wt);
    vstore(dCt + j * W, sum_lanes(sc + j * W));
  }
  V sx = V{}, shv = V{};
  for (int k = 0; k < PV; ++k) {
    const V gbk = gb[0][k] + gb[1][k];
    vstore(dxt + k * W, (Dh ? vload<V>(Dh + k * W) * dyv[k] : V{}) + wt * gbk);
    sx += xv[k] * gbk;
    shv += sh[0][k] + sh[1][k];
    vstore(dDacc + k * W, vload<V>(dDacc + k * W) + dyv[k] * xv[k]);
  }
  s_dot = sum_one<V, T>(shv);
  sx_out = sum_one<V, T>(sx);
}

// Forward item = (batch element, block of kHeadBlock consecutive heads): each time step updates the block's heads
// one after the other, so the loop walks x, y, dt (and B, C when heads share groups) in memory order and the
// independent head updates overlap in the pipeline. The block's states (kHeadBlock · P · N values) stay in L1.
template <typename T, int PS, int NS>
void forward_items(const Dims& d, const T* x, const T* dt, const T* w, const T* A, const T* B, const T* C, const T* D,
                   const T* h0, T* y, T* hlast, T* ckpt, int64_t i0, int64_t i1) {
  const int64_t P = PS ? PS : d.P, N = NS ? NS : d.N, H = d.H, G = d.G, L = d.L;
  const int64_t nc = d.n_chunks(), NP = N * P, per_group = H / G;
  const int64_t blocks = (H + kHeadBlock - 1) / kHeadBlock;
  Buf<T, int(kHeadBlock) * PS * NS> s_v(kHeadBlock * NP);
  for (int64_t item = i0; item < i1; ++item) {
    const int64_t b = item / blocks, hb0 = (item % blocks) * kHeadBlock, hb1 = std::min(H, hb0 + kHeadBlock);
    for (int64_t h = hb0; h < hb1; ++h) {
      T* s = s_v.data() + (h - hb0) * NP;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t p = 0; p < P; ++p) s[n * P + p] = h0 ? h0[((b * H + h) * P + p) * N + n] : T(0);
    }
    for (int64_t t = 0; t < L; ++t) {
      const int64_t row = b * L + t;
      if (t + kAhead < L) {
        const int64_t ahead = row + kAhead;
        for (int64_t h = hb0; h < hb1; h += std::max<int64_t>(1, 64 / (P * int64_t(sizeof(T)))))
          __builtin_prefetch(x + (ahead * H + h) * P), __builtin_prefetch(y + (ahead * H + h) * P, 1);
        for (int64_t g = hb0 / per_group; g <= (hb1 - 1) / per_group; ++g)
          __builtin_prefetch(B + (ahead * G + g) * N), __builtin_prefetch(C + (ahead * G + g) * N);
        __builtin_prefetch(dt + ahead * H + hb0);
      }
      for (int64_t h = hb0; h < hb1; ++h) {
        T* __restrict s = s_v.data() + (h - hb0) * NP;
        if (ckpt && t % d.chunk == 0) std::memcpy(ckpt + ((b * H + h) * nc + t / d.chunk) * NP, s, sizeof(T) * NP);
        const int64_t g = h / per_group;
        const T dtt = dt[row * H + h];
        const T a = std::exp(dtt * A[h]);
        const T wt = w ? w[row * H + h] : dtt;  // input weight: dt, or the trapezoid rule's own
        if constexpr (PS != 0 && NS != 0)
          fwd_step_vec<T, PS, NS>(s, x + (row * H + h) * P, B + (row * G + g) * N, C + (row * G + g) * N,
                                  D ? D + h * P : nullptr, wt, a, y + (row * H + h) * P);
        else
          fwd_step<T, PS, NS>(s, x + (row * H + h) * P, B + (row * G + g) * N, C + (row * G + g) * N,
                              D ? D + h * P : nullptr, wt, a, y + (row * H + h) * P, P, N);
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

template <typename T, int PS, int NS>
void backward_items(const Dims& d, const T* x, const T* dt, const T* w, const T* A, const T* B, const T* C,
                    const T* D, const T* dy, const T* dhlast, const T* ckpt, T* dx, T* ddt, T* dw, T* dA, T* dB, T* dC, T* dD, T* dh0,
                    int64_t i0, int64_t i1) {
  const int64_t P = PS ? PS : d.P, N = NS ? NS : d.N, H = d.H, G = d.G, L = d.L, T_ = d.chunk;
  const int64_t nc = d.n_chunks();
  const int64_t NP = N * P;
  std::vector<T> hs_v((T_ + 1) * NP);  // states h_{t0-1} .. h_{t1-1} of the current chunk
  T* __restrict hs = hs_v.data();
  Buf<T, PS * NS> g_b(NP);
  Buf<T, PS> gb_b(P), dd_b(P);
  T* __restrict gs = g_b.data();
  T* __restrict gb = gb_b.data();
  T* __restrict dDacc = dd_b.data();
  for (int64_t item = i0; item < i1; ++item) {
    const int64_t b = item / H, h = item % H, g = h / (H / G);
    const T rate = A[h];
    const T* Dh = D ? D + h * P : nullptr;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t p = 0; p < P; ++p) gs[n * P + p] = dhlast ? dhlast[((b * H + h) * P + p) * N + n] : T(0);
    for (int64_t p = 0; p < P; ++p) dDacc[p] = 0;
    T dA_acc = 0;
    for (int64_t c = nc - 1; c >= 0; --c) {
      const int64_t t0 = c * T_, t1 = std::min(L, t0 + T_);
      // Recompute the chunk's states from its checkpoint.
      std::memcpy(hs, ckpt + ((b * H + h) * nc + c) * NP, sizeof(T) * NP);
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t row = b * L + t;
        if (t + kAhead < t1) prefetch_rows(x, dt, B, C, dy, row + kAhead, H, G, P, N, h, g);
        const T dtt = dt[row * H + h];
        const T a = std::exp(dtt * rate);
        const T wt = w ? w[row * H + h] : dtt;
        const T* __restrict xt = x + (row * H + h) * P;
        const T* __restrict bt = B + (row * G + g) * N;
        const T* __restrict prev = hs + (t - t0) * NP;
        T* __restrict cur = hs + (t - t0 + 1) * NP;
        if constexpr (PS != 0 && NS != 0) {
          recompute_step_vec<T, PS, NS>(prev, cur, xt, bt, wt, a);
          continue;
        }
        for (int64_t n = 0; n < N; ++n) {
          const T bn = wt * bt[n];
#pragma omp simd
          for (int64_t p = 0; p < P; ++p) cur[n * P + p] = a * prev[n * P + p] + bn * xt[p];
        }
      }
      for (int64_t t = t1 - 1; t >= t0; --t) {
        const int64_t row = b * L + t;
        if (t >= kAhead) {  // the rows written kAhead steps later (the recompute pass brought in those read)
          __builtin_prefetch(dx + ((row - kAhead) * H + h) * P, 1);
          __builtin_prefetch(dB + ((row - kAhead) * H + h) * N, 1);
          __builtin_prefetch(dC + ((row - kAhead) * H + h) * N, 1);
        }
        const T dtt = dt[row * H + h];
        const T a = std::exp(dtt * rate);
        const T wt = w ? w[row * H + h] : dtt;
        const T* __restrict xt = x + (row * H + h) * P;
        const T* __restrict dyt = dy + (row * H + h) * P;
        const T* __restrict bt = B + (row * G + g) * N;
        const T* __restrict ct = C + (row * G + g) * N;
        const T* __restrict prev = hs + (t - t0) * NP;
        const T* __restrict cur = prev + NP;
        T* __restrict dBt = dB + (row * H + h) * N;
        T* __restrict dCt = dC + (row * H + h) * N;
        if constexpr (PS != 0 && NS != 0) {
          T s_dot, sx;
          reverse_step_vec<T, PS, NS>(gs, prev, cur, xt, dyt, bt, ct, Dh, wt, a, dx + (row * H + h) * P, dBt, dCt,
                                      dDacc, s_dot, sx);
          input_weight_grads(rate * a * s_dot, sx, ddt, dw, row * H + h);
          dA_acc += dtt * a * s_dot;
          continue;
        }
#pragma omp simd
        for (int64_t p = 0; p < P; ++p) gb[p] = 0;
        T s_dot = 0;
        for (int64_t n = 0; n < N; ++n) {
          const T cn = ct[n], bn = bt[n];
          T* __restrict gn = gs + n * P;
          const T* __restrict hp = prev + n * P;
          const T* __restrict hc = cur + n * P;
          T sb = 0, sc = 0, sh = 0;
#pragma omp simd reduction(+ : sb, sc, sh)
          for (int64_t p = 0; p < P; ++p) {
            const T gv = gn[p] + cn * dyt[p];  // g_t
            gb[p] += gv * bn;
            sb += gv * xt[p];
            sc += hc[p] * dyt[p];
            sh += gv * hp[p];
            gn[p] = a * gv;  // a_t g_t: what step t-1 receives
          }
          dBt[n] = wt * sb;
          dCt[n] = sc;
          s_dot += sh;
        }
        T sx = 0;
        T* __restrict dxt = dx + (row * H + h) * P;
#pragma omp simd reduction(+ : sx)
        for (int64_t p = 0; p < P; ++p) {
          dxt[p] = (Dh ? Dh[p] * dyt[p] : T(0)) + wt * gb[p];
          sx += xt[p] * gb[p];
          dDacc[p] += dyt[p] * xt[p];
        }
        input_weight_grads(rate * a * s_dot, sx, ddt, dw, row * H + h);
        dA_acc += dtt * a * s_dot;
      }
    }
    dA[b * H + h] = dA_acc;
    if (dD)
      for (int64_t p = 0; p < P; ++p) dD[(b * H + h) * P + p] = dDacc[p];
    if (dh0)
      for (int64_t n = 0; n < N; ++n)
        for (int64_t p = 0; p < P; ++p) dh0[((b * H + h) * P + p) * N + n] = gs[n * P + p];
  }
}

template <typename T>
int forward(const T* x, const T* dt, const T* w, const T* A, const T* B, const T* C, const T* D, const T* h0, T* y,
            T* hlast, T* ckpt, int64_t batch, int64_t L, int64_t H, int64_t P, int64_t G, int64_t N, int64_t chunk,
            int64_t i0, int64_t i1) {
  DenormalGuard guard;
  const Dims d{batch, L, H, P, G, N, chunk};
  if (P == 16 && N == 16)
    forward_items<T, 16, 16>(d, x, dt, w, A, B, C, D, h0, y, hlast, ckpt, i0, i1);
  else
    forward_items<T, 0, 0>(d, x, dt, w, A, B, C, D, h0, y, hlast, ckpt, i0, i1);
  return 0;
}

template <typename T>
int backward(const T* x, const T* dt, const T* w, const T* A, const T* B, const T* C, const T* D, const T* dy,
             const T* dhlast, const T* ckpt, T* dx, T* ddt, T* dw, T* dA, T* dB, T* dC, T* dD, T* dh0, int64_t batch,
             int64_t L, int64_t H, int64_t P, int64_t G, int64_t N, int64_t chunk, int64_t i0, int64_t i1) {
  DenormalGuard guard;
  const Dims d{batch, L, H, P, G, N, chunk};
  if (P == 16 && N == 16)
    backward_items<T, 16, 16>(d, x, dt, w, A, B, C, D, dy, dhlast, ckpt, dx, ddt, dw, dA, dB, dC, dD, dh0, i0, i1);
  else
    backward_items<T, 0, 0>(d, x, dt, w, A, B, C, D, dy, dhlast, ckpt, dx, ddt, dw, dA, dB, dC, dD, dh0, i0, i1);
  return 0;
}

}  // namespace

extern "C" {

int ssmad_ssd_abi_version() { return 2; }
int64_t ssmad_ssd_head_block() { return kHeadBlock; }

#define SSMAD_SSD_EXPORT(SUFFIX, T)                                                                                   \
  int ssmad_ssd_fwd_##SUFFIX(const T* x, const T* dt, const T* w, const T* A, const T* B, const T* C, const T* D,     \
                             const T* h0, T* y, T* hlast, T* ckpt, int64_t batch, int64_t L, int64_t H, int64_t P,    \
                             int64_t G, int64_t N, int64_t chunk, int64_t i0, int64_t i1) {                           \
    return forward<T>(x, dt, w, A, B, C, D, h0, y, hlast, ckpt, batch, L, H, P, G, N, chunk, i0, i1);                \
  }                                                                                                                   \
  int ssmad_ssd_bwd_##SUFFIX(const T* x, const T* dt, const T* w, const T* A, const T* B, const T* C, const T* D,     \
                             const T* dy, const T* dhlast, const T* ckpt, T* dx, T* ddt, T* dw, T* dA, T* dB, T* dC,  \
                             T* dD, T* dh0, int64_t batch, int64_t L, int64_t H, int64_t P, int64_t G, int64_t N,     \
                             int64_t chunk, int64_t i0, int64_t i1) {                                                 \
    return backward<T>(x, dt, w, A, B, C, D, dy, dhlast, ckpt, dx, ddt, dw, dA, dB, dC, dD, dh0, batch, L, H, P, G,  \
                       N, chunk, i0, i1);                                                                             \
  }

SSMAD_SSD_EXPORT(f32, float)
SSMAD_SSD_EXPORT(f64, double)

}  // extern "C"
