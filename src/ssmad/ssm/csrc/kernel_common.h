// Pieces shared by the CPU kernels (selective_scan_cpu.cpp, ssd_scan_cpu.cpp): the vector width, lane sums, denormal
// flushing and the split of work items over threads. Each kernel includes this file into its own library; the build
// cache key (ssmad/ssm/cpu.py) hashes the headers next to a source together with the source.

#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__SSE__) || defined(__x86_64__)
#include <immintrin.h>
#endif

namespace ssmad_kernels {

// Vectors (GCC/Clang vector extensions) of 64 bytes where the CPU has AVX-512, else 32 bytes; -DSSMAD_NO_AVX512
// forces 32 bytes.
#if defined(__AVX512F__) && !defined(SSMAD_NO_AVX512)
#define SSMAD_VEC512 1
constexpr int kVecBytes = 64;
#else
constexpr int kVecBytes = 32;
#endif

template <typename T>
struct VecOf {
  typedef T V __attribute__((vector_size(kVecBytes)));
  static constexpr int W = kVecBytes / int(sizeof(T));
};

// 2^y for a vector of floats: y = k + f with integer k and |f| <= 1/2, 2^f = 1 + f*q(f) with q of degree 4 (fitted for
// relative error, at most 1.2e-7 over the interval), and 2^k written into the exponent bits. Adding 1.5*2^23 + 127
// rounds y to an integer whose low mantissa bits are k + 127, so one shift turns them into the exponent field.
// y is clamped to [-126, 126]: very negative arguments give 2^-126 ~ 1e-38 instead of 0 (harmless for a decay).
// Callers fold log2(e) into their constants (exp(x) = 2^(x log2 e)).
inline VecOf<float>::V vexp2(VecOf<float>::V y) {
  typedef VecOf<float>::V vf;
  typedef int32_t vi __attribute__((vector_size(kVecBytes)));
#ifdef SSMAD_VEC512
  y = (vf)_mm512_min_ps(_mm512_max_ps((__m512)y, _mm512_set1_ps(-126.0f)), _mm512_set1_ps(126.0f));
#elif defined(__AVX__)
  y = (vf)_mm256_min_ps(_mm256_max_ps((__m256)y, _mm256_set1_ps(-126.0f)), _mm256_set1_ps(126.0f));
#else
  const vf lo = vf{} - 126.0f, hi = vf{} + 126.0f;
  y = y < lo ? lo : y;
  y = y > hi ? hi : y;
#endif
  const float magic = 12582912.0f + 127.0f;
  const vf t = y + magic;
  const vf f = y - (t - magic);
  vf p = vf{} + 1.33022e-3f;
  p = p * f + 9.67293e-3f;
  p = p * f + 5.550615e-2f;
  p = p * f + 2.4022217e-1f;
  p = p * f + 6.9314706e-1f;
  p = p * f + 1.0f;
  vi e;
  std::memcpy(&e, &t, sizeof(e));
  e = e << 23;
  vf scale;
  std::memcpy(&scale, &e, sizeof(scale));
  return p * scale;
}

// float64 path (gradcheck, users who want double precision): libm per lane.
inline VecOf<double>::V vexp2(VecOf<double>::V y) {
  VecOf<double>::V out = y;
  for (int i = 0; i < VecOf<double>::W; ++i) out[i] = std::exp2(y[i]);
  return out;
}

constexpr double kLog2e = 1.4426950408889634;

// sum_lanes(v): out[i] = sum of the lanes of v[i], for the W vectors v[0..W-1] (a transposed horizontal sum).
#ifdef SSMAD_VEC512
// With 64-byte vectors, log2(W) folds: each adds the two halves of every block of s lanes of a pair of vectors, a's
// sums in the lower half of each block, b's in the upper; after the last fold lane j holds the sum of input
// bitrev(j), so the inputs are taken in bit-reversed order. The permutations of the folds, as tables built at
// compile time: level l folds blocks of W >> l lanes.
template <int W>
struct FoldTables {
  int bitrev[W] = {};
  long long lo[5][W] = {}, hi[5][W] = {};
  constexpr FoldTables() {
    for (int i = 0; i < W; ++i)
      for (int bit = 1, j = i; bit < W; bit <<= 1, j >>= 1) bitrev[i] = (bitrev[i] << 1) | (j & 1);
    int level = 0;
    for (int s = W; s > 1; s >>= 1, ++level)
      for (int k = 0; k < W; ++k) {
        const int b = k / s, o = k % s, h = s / 2;
        lo[level][k] = o < h ? b * s + o : W + b * s + o - h;
        hi[level][k] = o < h ? b * s + o + h : W + b * s + o;
      }
  }
};

template <int W, typename V, typename I, typename Perm>
inline V fold_lanes(const V* v, Perm perm) {
  static constexpr FoldTables<W> tab{};
  V w[W];
#pragma GCC unroll 16
  for (int i = 0; i < W; ++i) w[i] = v[tab.bitrev[i]];
  int n = W, level = 0;
#pragma GCC unroll 4
  for (int s = W; s > 1; s >>= 1, ++level) {
    I lo, hi;
    for (int k = 0; k < W; ++k) lo[k] = tab.lo[level][k], hi[k] = tab.hi[level][k];
#pragma GCC unroll 8
    for (int i = 0; i < n / 2; ++i) w[i] = perm(w[2 * i], lo, w[2 * i + 1]) + perm(w[2 * i], hi, w[2 * i + 1]);
    n /= 2;
  }
  return w[0];
}

inline VecOf<float>::V sum_lanes(const VecOf<float>::V* v) {
  typedef int I __attribute__((vector_size(64)));
  return fold_lanes<16, VecOf<float>::V, I>(v, [](VecOf<float>::V a, I idx, VecOf<float>::V b) {
    return (VecOf<float>::V)_mm512_permutex2var_ps((__m512)a, (__m512i)idx, (__m512)b);
  });
}

inline VecOf<double>::V sum_lanes(const VecOf<double>::V* v) {
  typedef long long I __attribute__((vector_size(64)));
  return fold_lanes<8, VecOf<double>::V, I>(v, [](VecOf<double>::V a, I idx, VecOf<double>::V b) {
    return (VecOf<double>::V)_mm512_permutex2var_pd((__m512d)a, (__m512i)idx, (__m512d)b);
  });
}
#else
inline VecOf<float>::V sum_lanes(const VecOf<float>::V* v) {
#if defined(__AVX__)
  const __m256 t0 = _mm256_hadd_ps((__m256)v[0], (__m256)v[1]), t1 = _mm256_hadd_ps((__m256)v[2], (__m256)v[3]);
  const __m256 t2 = _mm256_hadd_ps((__m256)v[4], (__m256)v[5]), t3 = _mm256_hadd_ps((__m256)v[6], (__m256)v[7]);
  const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
  return (VecOf<float>::V)_mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
#else
  VecOf<float>::V out{};
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 8; ++j) out[i] += v[i][j];
  return out;
#endif
}

inline VecOf<double>::V sum_lanes(const VecOf<double>::V* v) {
#if defined(__AVX__)
  const __m256d t0 = _mm256_hadd_pd((__m256d)v[0], (__m256d)v[1]), t1 = _mm256_hadd_pd((__m256d)v[2], (__m256d)v[3]);
  return (VecOf<double>::V)_mm256_add_pd(_mm256_permute2f128_pd(t0, t1, 0x20), _mm256_permute2f128_pd(t0, t1, 0x31));
#else
  VecOf<double>::V out{};
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) out[i] += v[i][j];
  return out;
#endif
}
#endif

// The sum of the lanes of one vector, as a tree of halvings.
inline float sum_one(VecOf<float>::V v) {
#ifdef SSMAD_VEC512
  return _mm512_reduce_add_ps((__m512)v);
#elif defined(__AVX__)
  __m128 s = _mm_add_ps(_mm256_castps256_ps128((__m256)v), _mm256_extractf128_ps((__m256)v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
#else
  float s = 0;
  for (int i = 0; i < VecOf<float>::W; ++i) s += v[i];
  return s;
#endif
}

inline double sum_one(VecOf<double>::V v) {
#ifdef SSMAD_VEC512
  return _mm512_reduce_add_pd((__m512d)v);
#elif defined(__AVX__)
  const __m128d s = _mm_add_pd(_mm256_castpd256_pd128((__m256d)v), _mm256_extractf128_pd((__m256d)v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
#else
  double s = 0;
  for (int i = 0; i < VecOf<double>::W; ++i) s += v[i];
  return s;
#endif
}

// sum_lanes over any number of vectors: out[i] = sum of the lanes of v[i] for i < count, W at a time; a last group of
// fewer than W vectors through sum_one each.
template <typename V, typename T>
inline void sum_lanes_n(const V* const* v, int64_t count, T* out) {
  constexpr int W = int(sizeof(V) / sizeof(T));
  int64_t i0 = 0;
  for (; i0 + W <= count; i0 += W) {
    V group[W];
#pragma GCC unroll 16
    for (int i = 0; i < W; ++i) group[i] = *v[i0 + i];
    const V s = sum_lanes(group);
    std::memcpy(out + i0, &s, sizeof(V));
  }
  for (; i0 < count; ++i0) out[i0] = sum_one(*v[i0]);
}

// The same for `count` consecutive vectors v[0 .. count) (no table of pointers).
template <typename V, typename T>
inline void sum_lanes_run(const V* v, int64_t count, T* out) {
  constexpr int W = int(sizeof(V) / sizeof(T));
  int64_t i = 0;
  for (; i + W <= count; i += W) {
    const V s = sum_lanes(v + i);
    std::memcpy(out + i, &s, sizeof(V));
  }
  for (; i < count; ++i) out[i] = sum_one(v[i]);
}

// Flush denormals to zero (and read them as zero) for the duration of a kernel call, restoring the caller's mode.
// Decaying states underflow into the denormal range in long sequences, where x86 arithmetic on them is ~100x
// slower; values below 1e-38 make no difference to any output.
struct DenormalGuard {
#if defined(__SSE__) || defined(__x86_64__)
  unsigned int saved;
  DenormalGuard() : saved(_mm_getcsr()) { _mm_setcsr(saved | 0x8040); }
  ~DenormalGuard() { _mm_setcsr(saved); }
#endif
};

// Items [0, items) split into `threads` equal ranges. Built with -fopenmp, the ranges run in one OpenMP region:
// loaded after torch, a kernel library's libgomp.so.1 is the one torch loaded, so the region runs on torch's own
// worker threads (no second pool competing with them for the cores). Without OpenMP the caller splits the items.
template <typename Body>
void run_items(int64_t items, int64_t threads, const Body& body) {
#ifdef _OPENMP
  if (threads > 1) {
#pragma omp parallel num_threads(int(threads))
    {
      const int64_t t = omp_get_thread_num(), n = omp_get_num_threads();
      body(items * t / n, items * (t + 1) / n);
    }
    return;
  }
#endif
  body(int64_t(0), items);
}

}  // namespace ssmad_kernels
