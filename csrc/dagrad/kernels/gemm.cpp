#include "dagrad/kernels/gemm.h"

#include <omp.h>

#include <climits>
#include <vector>

#include "dagrad/kernels/matmul.h"
#include "dagrad/kernels/parallel.h"

#ifdef DAGRAD_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace dagrad::kernels {

namespace {

// The blocked fallback: transposed operands are copied to row-major first, then rows of C are
// split over the thread budget.
template <class T>
void gemm_fallback(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb,
                   T* C) {
  std::vector<T> at, bt;
  const T* a = A;
  const T* b = B;
  if (ta || lda != K) {
    at.resize(static_cast<size_t>(M * K));
    for (int64_t i = 0; i < M; ++i)
      for (int64_t k = 0; k < K; ++k) at[i * K + k] = ta ? A[k * lda + i] : A[i * lda + k];
    a = at.data();
  }
  if (tb || ldb != N) {
    bt.resize(static_cast<size_t>(K * N));
    for (int64_t k = 0; k < K; ++k)
      for (int64_t j = 0; j < N; ++j) bt[k * N + j] = tb ? B[j * ldb + k] : B[k * ldb + j];
    b = bt.data();
  }
  const int64_t grain = std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, N * K));
  parallel_for(M, grain, [&](int64_t r0, int64_t r1) { gemm_rows<T>(r0, r1, N, K, a, b, C); });
}

#ifdef DAGRAD_HAVE_OPENBLAS
// Note [BLAS threads]: OpenBLAS runs single-threaded, always, and dagrad parallelises a GEMM
// itself by splitting the rows of C into blocks whose size depends only on the shape. BLAS
// results are not bitwise stable across its own thread counts (its partitioning changes with
// them), but each block here is the same BLAS call whatever the number of threads and whether
// the GEMM runs alone (blocks spread over the budget, Note [Thread budget]) or beside other
// nodes (blocks run in turn): same bits at any thread count.
struct BlasInit {
  BlasInit() { scipy_openblas_set_num_threads(1); }
} g_blas_init;

inline int64_t row_block(int64_t M) { return std::max<int64_t>(128, (M + 7) / 8); }

template <class T, class F>
void blocked_rows(bool ta, int64_t M, int64_t lda, int64_t N, const T* A, T* C, const F& call) {
  const int64_t rows = row_block(M), blocks = (M + rows - 1) / rows;
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t m0 = b * rows, m = std::min(rows, M - m0);
      call(int(m), ta ? A + m0 : A + m0 * lda, C + m0 * N);
    }
  });
}
bool fits_int(int64_t v) { return v <= INT_MAX; }
#endif

}  // namespace

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
          float* C) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    std::fill(C, C + M * N, 0.0f);
    return;
  }
#ifdef DAGRAD_HAVE_OPENBLAS
  if (fits_int(M) && fits_int(N) && fits_int(K) && fits_int(lda) && fits_int(ldb)) {
    blocked_rows<float>(ta, M, lda, N, A, C, [&](int m, const float* a, float* c) {
      scipy_cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, int(N),
                        int(K), 1.0f, a, int(lda), B, int(ldb), 0.0f, c, int(N));
    });
    return;
  }
#endif
  gemm_fallback<float>(ta, tb, M, N, K, A, lda, B, ldb, C);
}

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const double* A, int64_t lda, const double* B, int64_t ldb,
          double* C) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    std::fill(C, C + M * N, 0.0);
    return;
  }
#ifdef DAGRAD_HAVE_OPENBLAS
  if (fits_int(M) && fits_int(N) && fits_int(K) && fits_int(lda) && fits_int(ldb)) {
    blocked_rows<double>(ta, M, lda, N, A, C, [&](int m, const double* a, double* c) {
      scipy_cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, int(N),
                        int(K), 1.0, a, int(lda), B, int(ldb), 0.0, c, int(N));
    });
    return;
  }
#endif
  gemm_fallback<double>(ta, tb, M, N, K, A, lda, B, ldb, C);
}

const char* gemm_backend() {
#ifdef DAGRAD_HAVE_OPENBLAS
  return "OpenBLAS (scipy-openblas32)";
#else
  return "built-in blocked kernel (no BLAS)";
#endif
}

}  // namespace dagrad::kernels
