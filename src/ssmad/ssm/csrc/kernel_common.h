// Pieces shared by the CPU kernels (selective_scan_cpu.cpp, ssd_scan_cpu.cpp): denormal flushing and the split of
// work items over threads. Each kernel includes this file into its own library; the build cache key (ssmad/ssm/cpu.py)
// hashes the headers next to a source together with the source.

#pragma once

#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__SSE__) || defined(__x86_64__)
#include <immintrin.h>
#endif

namespace ssmad_kernels {

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
