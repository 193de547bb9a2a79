// @brief Blocked GEMM on a range of output rows (fallback kernel; no BLAS).
#pragma once

#include <algorithm>
#include <cstdint>

namespace dagrad::kernels {

/// C[i0:i1, :] = A[i0:i1, :] @ B, with A (M x K), B (K x N), C (M x N), all row-major.
/// Each C element sums over k in increasing order whatever the row range, so splitting
/// rows across threads never changes a bit of the result.
template <class T>
void gemm_rows(int64_t i0, int64_t i1, int64_t N, int64_t K, const T* A, const T* B, T* C) {
  constexpr int64_t kKc = 256;
  constexpr int64_t kNc = 2048 / sizeof(T) * 2;
  for (int64_t i = i0; i < i1; ++i) std::fill(C + i * N, C + (i + 1) * N, T(0));
  for (int64_t k0 = 0; k0 < K; k0 += kKc) {
    const int64_t k1 = std::min(K, k0 + kKc);
    for (int64_t j0 = 0; j0 < N; j0 += kNc) {
      const int64_t nj = std::min(N, j0 + kNc) - j0;
      int64_t i = i0;
      for (; i + 4 <= i1; i += 4) {
        T* __restrict c0 = C + i * N + j0;
        T* __restrict c1 = c0 + N;
        T* __restrict c2 = c1 + N;
        T* __restrict c3 = c2 + N;
        for (int64_t k = k0; k < k1; ++k) {
          const T a0 = A[i * K + k], a1 = A[(i + 1) * K + k], a2 = A[(i + 2) * K + k], a3 = A[(i + 3) * K + k];
          const T* __restrict b = B + k * N + j0;
          for (int64_t j = 0; j < nj; ++j) {
            const T bj = b[j];
            c0[j] += a0 * bj;
            c1[j] += a1 * bj;
            c2[j] += a2 * bj;
            c3[j] += a3 * bj;
          }
        }
      }
      for (; i < i1; ++i) {
        T* __restrict c = C + i * N + j0;
        for (int64_t k = k0; k < k1; ++k) {
          const T a = A[i * K + k];
          const T* __restrict b = B + k * N + j0;
          for (int64_t j = 0; j < nj; ++j) c[j] += a * b[j];
        }
      }
    }
  }
}

}  // namespace dagrad::kernels
