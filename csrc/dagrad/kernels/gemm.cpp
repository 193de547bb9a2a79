#include "dagrad/kernels/gemm.h"

#include <omp.h>

#include <atomic>
#include <climits>
#include <vector>

#include "dagrad/kernels/matmul.h"
#include "dagrad/kernels/parallel.h"
#include "dagrad/scheduler.h"

#ifdef DAGRAD_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace dagrad::kernels {

namespace {

// The blocked fallback: transposed operands are copied to row-major first, then rows of C are
// split over the thread budget.
template <class T>
void gemm_fallback(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda,
                   const T* B, int64_t ldb, T* C) {
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
// Note [BLAS threads]: OpenBLAS runs its own thread pool. Under Note [Thread budget], a GEMM
// called from a scheduler worker (several nodes running) gets one thread; a GEMM on the
// calling thread of a serial run gets the whole budget. OpenBLAS's count is process-wide; it
// is changed only when the wanted count differs from the last one set. Inside a parallel run
// every worker wants 1, so concurrent workers never set different values, and only a serial
// run (one calling thread) raises it. OpenBLAS splits M and N, never K, so results do not
// depend on the count.
std::atomic<int> g_blas_threads{-1};
// OpenBLAS starts with one thread per core, and idle OpenBLAS threads spin. Start at one: the
// pool grows only for a lone large GEMM (set_blas_threads below).
struct BlasInit {
  BlasInit() {
    scipy_openblas_set_num_threads(1);
    g_blas_threads.store(1, std::memory_order_relaxed);
  }
} g_blas_init;
void set_blas_threads(int64_t M, int64_t N, int64_t K) {
  int want = 1;
  if (!omp_in_parallel()) {
    const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
    want = flops < 4e6 ? 1 : get_num_threads();
  }
  if (g_blas_threads.load(std::memory_order_relaxed) != want) {
    scipy_openblas_set_num_threads(want);
    g_blas_threads.store(want, std::memory_order_relaxed);
  }
}
bool fits_int(int64_t v) { return v <= INT_MAX; }
#endif

}  // namespace

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
          const float* B, int64_t ldb, float* C) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    std::fill(C, C + M * N, 0.0f);
    return;
  }
#ifdef DAGRAD_HAVE_OPENBLAS
  if (fits_int(M) && fits_int(N) && fits_int(K) && fits_int(lda) && fits_int(ldb)) {
    set_blas_threads(M, N, K);
    scipy_cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                      int(M), int(N), int(K), 1.0f, A, int(lda), B, int(ldb), 0.0f, C, int(N));
    return;
  }
#endif
  gemm_fallback<float>(ta, tb, M, N, K, A, lda, B, ldb, C);
}

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const double* A, int64_t lda,
          const double* B, int64_t ldb, double* C) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    std::fill(C, C + M * N, 0.0);
    return;
  }
#ifdef DAGRAD_HAVE_OPENBLAS
  if (fits_int(M) && fits_int(N) && fits_int(K) && fits_int(lda) && fits_int(ldb)) {
    set_blas_threads(M, N, K);
    scipy_cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                      int(M), int(N), int(K), 1.0, A, int(lda), B, int(ldb), 0.0, C, int(N));
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
