// @brief GEMM tiles (Note [GEMM tiles]): the tiling each kind of product gets, and tiled products
// against a plain triple loop, bitwise equal across thread counts.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "check.h"
#include "dagrad/kernels/gemm.h"
#include "dagrad/kernels/parallel.h"

namespace {

using dagrad::kernels::gemm_tiles;

void test_tile_shapes() {
  // Small: one call.
  auto t = gemm_tiles(64, 128, 784);
  CHECK(t.row_blocks == 1 && t.col_blocks == 1 && t.cols == 128);
  // More than 128 rows: row blocks of max(128, M/8), columns whole.
  t = gemm_tiles(512, 784, 256);
  CHECK(t.rows == 128 && t.row_blocks == 4 && t.col_blocks == 1);
  t = gemm_tiles(4096, 2048, 128);
  CHECK(t.rows == 512 && t.row_blocks == 8 && t.col_blocks == 1);
  t = gemm_tiles(130, 1100, 300);
  CHECK(t.rows == 128 && t.row_blocks == 2 && t.col_blocks == 1);
  // One row block and a large product: up to 8 column blocks of >= 512, multiples of 64.
  t = gemm_tiles(128, 4096, 2048);
  CHECK(t.row_blocks == 1 && t.cols == 512 && t.col_blocks == 8);
  t = gemm_tiles(128, 1536, 256);
  CHECK(t.row_blocks == 1 && t.cols == 512 && t.col_blocks == 3);
  t = gemm_tiles(100, 1100, 400);
  CHECK(t.row_blocks == 1 && t.cols == 512 && t.col_blocks == 3);
  t = gemm_tiles(64, 20000, 4096);
  CHECK(t.row_blocks == 1 && t.cols == 2560 && t.col_blocks == 8);
  // One row block but under 2^25 multiply-adds: one call.
  t = gemm_tiles(128, 4096, 32);
  CHECK(t.col_blocks == 1 && t.count() == 1);
  // Degenerate sizes never give zero blocks.
  t = gemm_tiles(1, 1, 1);
  CHECK(t.count() == 1 && t.rows >= 1 && t.cols >= 1);
}

void test_tiled_products_bitwise_across_threads() {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  struct Case {
    int64_t m, n, k;
    bool ta, tb;
  };
  for (const Case& c : {Case{128, 1536, 256, false, true}, Case{100, 1100, 400, true, false},
                        Case{130, 700, 64, false, false}, Case{96, 2000, 300, true, true}}) {
    std::vector<float> a(c.m * c.k), b(c.k * c.n);
    for (float& v : a) v = nd(rng);
    for (float& v : b) v = nd(rng);
    const int64_t lda = c.ta ? c.m : c.k, ldb = c.tb ? c.k : c.n;
    std::vector<float> ref;
    for (int threads : {1, 2, 4, 8}) {
      dagrad::set_num_threads(threads);
      std::vector<float> out(c.m * c.n);
      dagrad::kernels::gemm(c.ta, c.tb, c.m, c.n, c.k, a.data(), lda, b.data(), ldb, out.data());
      if (threads == 1) {
        ref = out;
        double worst = 0;
        for (int64_t i = 0; i < c.m; ++i)
          for (int64_t j = 0; j < c.n; ++j) {
            double s = 0;
            for (int64_t p = 0; p < c.k; ++p)
              s += static_cast<double>(c.ta ? a[p * lda + i] : a[i * lda + p]) *
                   static_cast<double>(c.tb ? b[j * ldb + p] : b[p * ldb + j]);
            worst = std::max(worst, std::fabs(s - out[i * c.n + j]) / (1.0 + std::fabs(s)));
          }
        CHECK_MSG(worst < 1e-4, c.m << "x" << c.n << "x" << c.k << ": relative error " << worst);
      } else {
        CHECK_MSG(out == ref, c.m << "x" << c.n << "x" << c.k << ": " << threads << " threads differ from 1");
      }
    }
  }
  dagrad::set_num_threads(1);
}

}  // namespace

int main() {
  check::start_watchdog();
  const check::Test tests[] = {
      {"gemm_tiles: row blocks, column blocks for single-block large products, one call otherwise", test_tile_shapes,
       10},
      {"tiled products match float64 and are bitwise equal at 1, 2, 4 and 8 threads",
       test_tiled_products_bitwise_across_threads, 60},
  };
  for (const check::Test& t : tests) check::run_test(t);
  check::print_summary();
  return check::state().failed.load() == 0 ? 0 : 1;
}
