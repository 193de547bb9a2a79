// @brief Elementwise loops over raw arrays, compiled for several ISAs (Note [SIMD at run time]).
// The drivers that run them for a graph Node are in ops/drivers.h.
#pragma once

#include <algorithm>

#include "dagrad/kernels/parallel.h"
#include "dagrad/kernels/strided.h"

namespace dagrad {

// Note [SIMD at run time]: the installed build targets the baseline ISA (no -march=native).
// The hot elementwise loops are compiled three times (AVX-512, AVX2, baseline) and the loader
// picks the best the CPU has (GCC target_clones, resolved once through an ifunc). Each element
// is still computed independently, so thread count never changes a result. ifunc is glibc's:
// musl (the musllinux wheels) has none, and GCC refuses target_clones there, so those builds
// run the baseline loops (Note [Platforms] in CMakeLists.txt).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__)
#define DAGRAD_SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DAGRAD_SIMD_CLONES
#endif

template <class T, class O, class F>
DAGRAD_SIMD_CLONES void map1(const T* __restrict x, O* __restrict y, int64_t n, const F& f) {
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
}
template <class T, class O, class F>
DAGRAD_SIMD_CLONES void map2(const T* __restrict a, const T* __restrict b, O* __restrict y, int64_t n, const F& f) {
  for (int64_t i = 0; i < n; ++i) y[i] = f(a[i], b[i]);
}
template <class T, class F>
DAGRAD_SIMD_CLONES void map2_inplace(T* __restrict acc, const T* __restrict b, int64_t n, const F& f) {
  for (int64_t i = 0; i < n; ++i) acc[i] = f(acc[i], b[i]);
}
template <class T, class O, class F>
DAGRAD_SIMD_CLONES void map2_scalar_b(const T* __restrict a, T b, O* __restrict y, int64_t n, const F& f) {
  for (int64_t i = 0; i < n; ++i) y[i] = f(a[i], b);
}
template <class T, class O, class F>
DAGRAD_SIMD_CLONES void map2_scalar_a(T a, const T* __restrict b, O* __restrict y, int64_t n, const F& f) {
  for (int64_t i = 0; i < n; ++i) y[i] = f(a, b[i]);
}

// Note [Element grain]: an element kernel splits only from two grains (256k elements, the
// planner's threshold in Note [Serial or parallel run]). A parallel region wakes threads that
// sleep (OMP_WAIT_POLICY=PASSIVE, python/dagrad/__init__.py): ~40 us on the 2-vCPU host, where
// a 16x32x128 float permute took 7 us on one thread and 47 us split in two at the old grain
// (32k elements); char_rnn's step at 2 threads went from 2.01 to 1.52 ms with this grain.
constexpr int64_t kElementGrain = 1 << 17;

}  // namespace dagrad
