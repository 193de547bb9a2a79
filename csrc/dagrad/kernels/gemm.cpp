#include "dagrad/kernels/gemm.h"

#include <omp.h>

#include <atomic>
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
// itself by splitting C into tiles whose sizes depend only on the shape (gemm_tiles, Note [GEMM
// tiles]). BLAS results are not bitwise stable across its own thread counts (its partitioning
// changes with them), but each tile here is the same BLAS call whatever the number of threads
// and whether the GEMM runs alone (tiles spread over the budget, Note [Thread budget]) or
// beside other nodes (tiles run in turn): same bits at any thread count.
struct BlasInit {
  BlasInit() { scipy_openblas_set_num_threads(1); }
} g_blas_init;

template <class T, class F>
void blocked_tiles(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb,
                   T* C, const F& call) {
  const GemmTiles t = gemm_tiles(M, N, K);
  const int64_t count = t.count();
  // Each thread of the split claims the next tile until none is left (Note [GEMM tiles]): a
  // thread that the OS takes away for a while, or a ragged last tile, does not hold up the
  // others. Which thread computes a tile changes nothing in its bits. Relaxed: the counter only
  // hands out indices; the region's join orders the tiles' writes before the caller's reads.
  std::atomic<int64_t> next{0};
  parallel_for(count, 1, [&](int64_t, int64_t) {
    for (int64_t b; (b = next.fetch_add(1, std::memory_order_relaxed)) < count;) {
      const int64_t m0 = (b / t.col_blocks) * t.rows, n0 = (b % t.col_blocks) * t.cols;
      const int64_t m = std::min(t.rows, M - m0), n = std::min(t.cols, N - n0);
      call(int(m), int(n), m0, n0, ta ? A + m0 : A + m0 * lda, tb ? B + n0 * ldb : B + n0, C + m0 * N + n0);
    }
  });
}
bool fits_int(int64_t v) { return v <= INT_MAX; }
#endif

}  // namespace

// Note [GEMM tiles]
// ~~~~~~~~~~~~~~~~~
// Every tile repacks the operand it shares with its neighbours: a block of rows repacks B, a
// block of columns repacks A. Packing is vectorised but still costs far more per element than
// a multiply-add, so a tile of r rows and c columns loses a share proportional to 1/r + 1/c of
// its time to it (a few % at 128 rows: benchmarks/bench_gemm_shapes.py measures dagrad against
// one whole call). Tiles are therefore few and large: rows in blocks of max(128, M/8), at most 8
// row blocks (the largest thread budget the tests check), as before. A product of at most 128
// rows is then a single block, i.e. single-threaded at any budget: every forward product and
// every dX of an MLP step with batch <= 128 (issue #14: the 2048-4096-4096-2048 step at 2
// threads ran its forward and dX chain, 36% of its work, on one core). So when such a product
// is large (>= kSplitColsFmas multiply-adds) its columns are split instead, into up to 8 blocks
// of at least kMinCols (a multiple of 64, OpenBLAS's widest column unroll). Products that
// already have 2 or more row blocks keep them alone: columns on top would add repacking at one
// thread for parallelism that only budgets above their row count could use. Small products stay
// one call: on one thread that is the fastest, and a split would not pay for its region. The
// threads of a split claim tiles one at a time from a counter, so a thread descheduled by a
// busy host (or a short last tile) leaves its share to the others instead of holding up the
// join; the tiles themselves, and so the bits, are the same whoever runs them.
GemmTiles gemm_tiles(int64_t M, int64_t N, int64_t K) {
  constexpr int64_t kMaxTiles = 8, kMinRows = 128, kMinCols = 512;
  constexpr double kSplitColsFmas = 1 << 25;
  GemmTiles t;
  t.rows = std::max<int64_t>(kMinRows, (M + kMaxTiles - 1) / kMaxTiles);
  t.row_blocks = std::max<int64_t>(1, (M + t.rows - 1) / t.rows);
  t.cols = std::max<int64_t>(N, 1);
  t.col_blocks = 1;
  const double fmas = static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  if (t.row_blocks == 1 && fmas >= kSplitColsFmas) {
    const int64_t cols = ((N + kMaxTiles - 1) / kMaxTiles + 63) / 64 * 64;
    t.cols = std::max(kMinCols, cols);
    t.col_blocks = (N + t.cols - 1) / t.cols;
    if (t.col_blocks <= 1) t.cols = std::max<int64_t>(N, 1), t.col_blocks = 1;
  }
  return t;
}

namespace {

#ifdef DAGRAD_HAVE_OPENBLAS
void blas_call(bool ta, bool tb, int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c,
               int ldc) {
  scipy_cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a,
                    lda, b, ldb, 0.0f, c, ldc);
}
void blas_call(bool ta, bool tb, int m, int n, int k, const double* a, int lda, const double* b, int ldb, double* c,
               int ldc) {
  scipy_cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0, a, lda,
                    b, ldb, 0.0, c, ldc);
}
#endif

// c (m x n, row stride ldc) += bias[0:n] on every row: the epilogue of a tile, run while the
// tile is still in cache. The product is rounded first and the bias added after, as a separate
// add would do, so the fused result is the same bits as gemm followed by an add.
template <class T>
void add_bias(int64_t m, int64_t n, const T* __restrict bias, T* __restrict c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    T* __restrict row = c + i * ldc;
    for (int64_t j = 0; j < n; ++j) row[j] += bias[j];
  }
}

template <class T>
void gemm_impl(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb,
               const T* bias, T* C, TileEpilogue epilogue = nullptr, void* ctx = nullptr) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * N + j] = bias ? bias[j] : T(0);
    if (epilogue) epilogue(ctx, 0, 0, M, N, C);
    return;
  }
#ifdef DAGRAD_HAVE_OPENBLAS
  if (fits_int(M) && fits_int(N) && fits_int(K) && fits_int(lda) && fits_int(ldb)) {
    blocked_tiles<T>(ta, tb, M, N, K, A, lda, B, ldb, C,
                     [&](int m, int n, int64_t m0, int64_t n0, const T* a, const T* b, T* c) {
                       blas_call(ta, tb, m, n, int(K), a, int(lda), b, int(ldb), c, int(N));
                       if (bias) add_bias<T>(m, n, bias + n0, c, N);
                       if (epilogue) epilogue(ctx, m0, n0, m, n, c);
                     });
    return;
  }
#endif
  gemm_fallback<T>(ta, tb, M, N, K, A, lda, B, ldb, C);
  if (bias || epilogue) {
    const int64_t grain = std::max<int64_t>(1, (1 << 15) / N);
    parallel_for(M, grain, [&](int64_t r0, int64_t r1) {
      if (bias) add_bias<T>(r1 - r0, N, bias, C + r0 * N, N);
      if (epilogue) epilogue(ctx, r0, 0, r1 - r0, N, C + r0 * N);
    });
  }
}

}  // namespace

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
          float* C) {
  gemm_impl<float>(ta, tb, M, N, K, A, lda, B, ldb, nullptr, C);
}
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const double* A, int64_t lda, const double* B, int64_t ldb,
          double* C) {
  gemm_impl<double>(ta, tb, M, N, K, A, lda, B, ldb, nullptr, C);
}
void gemm_bias(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
               int64_t ldb, const float* bias, float* C) {
  gemm_impl<float>(ta, tb, M, N, K, A, lda, B, ldb, bias, C);
}
void gemm_bias(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const double* A, int64_t lda, const double* B,
               int64_t ldb, const double* bias, double* C) {
  gemm_impl<double>(ta, tb, M, N, K, A, lda, B, ldb, bias, C);
}

void gemm_epilogue(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                   int64_t ldb, float* C, TileEpilogue epilogue, void* ctx) {
  gemm_impl<float>(ta, tb, M, N, K, A, lda, B, ldb, nullptr, C, epilogue, ctx);
}
void gemm_epilogue(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const double* A, int64_t lda, const double* B,
                   int64_t ldb, double* C, TileEpilogue epilogue, void* ctx) {
  gemm_impl<double>(ta, tb, M, N, K, A, lda, B, ldb, nullptr, C, epilogue, ctx);
}

const char* gemm_backend() {
#ifdef DAGRAD_HAVE_OPENBLAS
  return "OpenBLAS (scipy-openblas32)";
#else
  return "built-in blocked kernel (no BLAS)";
#endif
}

}  // namespace dagrad::kernels
