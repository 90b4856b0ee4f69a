#pragma once
// WMMA's TF32 tiles as the chunked training kernels use them (chunk_state.cu, chunk_grads.cu,
// chunk_dout.cu): m = n = kTile, k = kTileK; fp32 operands rounded to TF32 (10 significant bits) before
// each product, fp32 accumulation. Shared rows are padded by kTcPad floats so that the 16 rows a fragment
// load touches start in different banks. A fragment's start, in shared or global memory, must lie on a
// 32-byte boundary and its leading dimension be a multiple of 4 floats.

#include <mma.h>

namespace deltabench::cuda::tf32 {

namespace wmma = nvcuda::wmma;

inline constexpr int kTile = 16;
inline constexpr int kTileK = 8;
inline constexpr int kTcPad = 4;

using FragA = wmma::fragment<wmma::matrix_a, kTile, kTile, kTileK, wmma::precision::tf32, wmma::row_major>;
// FragAT: a transposed operand (column-major).
using FragAT = wmma::fragment<wmma::matrix_a, kTile, kTile, kTileK, wmma::precision::tf32, wmma::col_major>;
using FragB = wmma::fragment<wmma::matrix_b, kTile, kTile, kTileK, wmma::precision::tf32, wmma::row_major>;
// FragBT: B = X^T for a row-major X, read column-major.
using FragBT = wmma::fragment<wmma::matrix_b, kTile, kTile, kTileK, wmma::precision::tf32, wmma::col_major>;
using Acc = wmma::fragment<wmma::accumulator, kTile, kTile, kTileK, float>;

template <typename Frag>
__device__ __forceinline__ void round_tf32(Frag& f, float sign = 1.0f) {
#pragma unroll
  for (int e = 0; e < f.num_elements; ++e) f.x[e] = wmma::__float_to_tf32(sign * f.x[e]);
}

// acc += a b for one k step: a's 16 x 8 tile at pa (ld lda), b's 8 x 16 tile at pb (ldb), both rounded
// to TF32. FragA/FragAT and FragB/FragBT say how each is laid out.
template <typename A, typename B>
__device__ __forceinline__ void mma_step(Acc& acc, const float* pa, unsigned lda, const float* pb, unsigned ldb) {
  A a;
  B b;
  wmma::load_matrix_sync(a, pa, lda);
  wmma::load_matrix_sync(b, pb, ldb);
  round_tf32(a);
  round_tf32(b);
  wmma::mma_sync(acc, a, b, acc);
}

}  // namespace deltabench::cuda::tf32
