// @brief C = op(A) @ op(B) for one matrix: OpenBLAS (scipy-openblas32) when built with it,
// else the blocked fallback kernel. Obeys Note [Thread budget].
#pragma once

#include <cstdint>

namespace dagrad::kernels {

/// Row-major C (M x N) = op(A) (M x K) @ op(B) (K x N), op = transpose when ta / tb.
/// lda / ldb are the row strides of A and B as stored.
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
          float* C);
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const double* A, int64_t lda, const double* B, int64_t ldb,
          double* C);

/// C = op(A) @ op(B) + bias (bias: N values added to every row), the bias added to each tile
/// right after its product while the tile is in cache; the same bits as gemm, then an add.
void gemm_bias(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
               int64_t ldb, const float* bias, float* C);
void gemm_bias(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const double* A, int64_t lda, const double* B,
               int64_t ldb, const double* bias, double* C);

/// A tile's epilogue: called once per tile of C right after its product, while it is in cache,
/// with the tile's first row and column, its size and its first element (row stride N). Tiles
/// may run on several threads at once; each element belongs to exactly one tile.
using TileEpilogue = void (*)(void* ctx, int64_t m0, int64_t n0, int64_t m, int64_t n, void* c);

/// C = op(A) @ op(B), then `epilogue` on each tile (see TileEpilogue).
void gemm_epilogue(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                   int64_t ldb, float* C, TileEpilogue epilogue, void* ctx);
void gemm_epilogue(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const double* A, int64_t lda, const double* B,
                   int64_t ldb, double* C, TileEpilogue epilogue, void* ctx);

/// How gemm splits C (M x N): row blocks of `rows` rows by column blocks of `cols` columns, fixed
/// by the shape alone (Note [GEMM tiles] in gemm.cpp); the tiles are what a thread budget shares.
struct GemmTiles {
  int64_t rows, cols, row_blocks, col_blocks;
  int64_t count() const { return row_blocks * col_blocks; }
};
GemmTiles gemm_tiles(int64_t M, int64_t N, int64_t K);

/// Name of the GEMM backend in use ("OpenBLAS 0.3.x (scipy-openblas32)" or the fallback).
const char* gemm_backend();

}  // namespace dagrad::kernels
