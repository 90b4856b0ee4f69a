// The chunked backward's sequential passes (kernels/common/cuda_kernels.h, ChunkStateParams): the
// state at every chunk's start and v_new (forward, recomputed by the backward as FLA does), then the
// gradient of the state at every chunk's end and of v_new (backward). Everything else of the chunked
// backward is parallel over chunks: the gradients through the output and the walk in chunk_grads.cu, the
// rest as batched ATen products (kernels/common/chunk_train.cpp).
//
// Version 1: SIMT fp32. One block of kThreads per (sequence and head, slice of BV columns of V) walks
// the sequence's chunks; the fp32 state slice [K x BV] lives in registers (kRowsK rows of one column a
// thread) with a copy in shared memory as the operand of the next chunk's product. Columns of the
// state evolve independently, so blocks never talk to each other. Per chunk of C = 64 tokens:
//   forward:  v_new = U - W S          [C x BV], a sum over K  (rows_times_state)
//             S = gamma S + K^T v_new  [K x BV], a sum over C  (state_add)
//   backward: dv_new = dv_local + K dS
//             dS = gamma dS + Q^T dout - W^T dv_new   (Q^T dout given, one batched product before the walk)
// BV is 32, or 16 where 32-column slices would leave most SMs idle (few sequences and heads: 1 x 32K
// over 16 heads is 64 blocks of 32 columns, 128 of 16). The slices of one head are consecutive blocks
// (block_slice), so that the blocks that read the same chunk's K and W run together and share them
// through L2.

#include "kernels/common/chunk_parallel.cuh"
#include "kernels/common/cp_async.cuh"
#include "kernels/common/cuda_common.cuh"
#include "kernels/common/wmma_tf32.cuh"

#include <cstdint>
#include <limits>

namespace deltabench::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kC = kChunkTrainSize;
constexpr int kWide = 32, kNarrow = 16;  // the column slices BV of a block; V must be a multiple of kNarrow

// How a block's threads cover a [C x BV] block (rows kGroup + kGroups m of column j) and a [KD x BV]
// state slice (kRowsK consecutive rows of column j), thread t having column t % BV and group t / BV.
template <int KD, int BV>
struct Tiling {
  static constexpr int kGroups = kThreads / BV;
  static constexpr int kRowsV = kC / kGroups;
  static constexpr int kRowsK = KD / kGroups;
  static_assert(kRowsV >= 1 && kRowsK >= 2 && kRowsK % 2 == 0, "unsupported K or BV");
};

// The block's sequence and head, and the first column of its slice of V: blocks bh * slices + s.
template <int BV>
__device__ __forceinline__ void block_slice(int64_t V, int64_t& bh, int64_t& col0) {
  const int64_t slices = V / BV;
  bh = blockIdx.x / slices;
  col0 = blockIdx.x % slices * BV;
}

// Copies `floats` contiguous floats (a multiple of 4, 16-byte aligned) from global to shared memory.
__device__ __forceinline__ void copy_block(float* dst, const float* src, int floats) {
  for (int i = threadIdx.x; i < floats / 4; i += kThreads) {
    reinterpret_cast<float4*>(dst)[i] = __ldg(reinterpret_cast<const float4*>(src) + i);
  }
}

// acc[m] = sum over k of a[row m][k] s[k][j], rows group + kGroups m of a [C x KD] and s [KD x BV].
template <int KD, int BV>
__device__ __forceinline__ void rows_times_state(float (&acc)[Tiling<KD, BV>::kRowsV], const float* a,
                                                 const float* s, int group, int j) {
  using Tl = Tiling<KD, BV>;
#pragma unroll
  for (int m = 0; m < Tl::kRowsV; ++m) acc[m] = 0.0f;
#pragma unroll 4
  for (int kk = 0; kk < KD; kk += 4) {
    const float s0 = s[(kk + 0) * BV + j], s1 = s[(kk + 1) * BV + j];
    const float s2 = s[(kk + 2) * BV + j], s3 = s[(kk + 3) * BV + j];
#pragma unroll
    for (int m = 0; m < Tl::kRowsV; ++m) {
      const float4 x = *reinterpret_cast<const float4*>(a + (group + Tl::kGroups * m) * KD + kk);
      acc[m] = fmaf(x.x, s0, fmaf(x.y, s1, fmaf(x.z, s2, fmaf(x.w, s3, acc[m]))));
    }
  }
}

// state[r] += sign * sum over i < C of a[i][k0 + r] b[i][j], a [C x KD] and b [C x BV].
template <int KD, int BV>
__device__ __forceinline__ void state_add(float (&state)[Tiling<KD, BV>::kRowsK], const float* a, const float* b,
                                          int k0, int j, float sign) {
  constexpr int kR = Tiling<KD, BV>::kRowsK;
#pragma unroll 4
  for (int i = 0; i < kC; ++i) {
    const float x = sign * b[i * BV + j];
    const float* row = a + i * KD + k0;
    if constexpr (kR % 4 == 0) {
#pragma unroll
      for (int r = 0; r < kR; r += 4) {
        const float4 y = *reinterpret_cast<const float4*>(row + r);
        state[r] = fmaf(y.x, x, state[r]);
        state[r + 1] = fmaf(y.y, x, state[r + 1]);
        state[r + 2] = fmaf(y.z, x, state[r + 2]);
        state[r + 3] = fmaf(y.w, x, state[r + 3]);
      }
    } else {
#pragma unroll
      for (int r = 0; r < kR; r += 2) {
        const float2 y = *reinterpret_cast<const float2*>(row + r);
        state[r] = fmaf(y.x, x, state[r]);
        state[r + 1] = fmaf(y.y, x, state[r + 1]);
      }
    }
  }
}

template <int KD, int BV>
__global__ void __launch_bounds__(kThreads) chunk_state_forward_kernel(ChunkStateParams p) {
  using Tl = Tiling<KD, BV>;
  extern __shared__ __align__(16) float smem[];
  float* sS = smem;                // [KD][BV]
  float* sW = sS + KD * BV;        // [C][KD]
  float* sK = sW + kC * KD;        // [C][KD]
  float* sVn = sK + kC * KD;       // [C][BV]

  const int j = threadIdx.x % BV, group = threadIdx.x / BV, k0 = group * Tl::kRowsK;
  const int64_t V = p.V, NT = p.NT;
  int64_t bh = 0, col0 = 0;
  block_slice<BV>(V, bh, col0);
  const int64_t col = col0 + j;

  float state[Tl::kRowsK];
#pragma unroll
  for (int r = 0; r < Tl::kRowsK; ++r) state[r] = p.h0 ? p.h0[(bh * KD + k0 + r) * V + col] : 0.0f;

  for (int64_t c = 0; c < NT; ++c) {
    const int64_t chunk = bh * NT + c;
#pragma unroll
    for (int r = 0; r < Tl::kRowsK; ++r) {
      sS[(k0 + r) * BV + j] = state[r];
      p.h[(chunk * KD + k0 + r) * V + col] = state[r];
    }
    if (p.w) copy_block(sW, p.w + chunk * kC * KD, kC * KD);
    copy_block(sK, p.k + chunk * kC * KD, kC * KD);
    __syncthreads();

    float vn[Tl::kRowsV];
    if (p.w) {
      rows_times_state<KD, BV>(vn, sW, sS, group, j);
    } else {
#pragma unroll
      for (int m = 0; m < Tl::kRowsV; ++m) vn[m] = 0.0f;
    }
#pragma unroll
    for (int m = 0; m < Tl::kRowsV; ++m) {
      const int i = group + Tl::kGroups * m;
      const int64_t at = (chunk * kC + i) * V + col;
      const float x = p.u[at] - vn[m];
      sVn[i * BV + j] = x;
      p.v_new[at] = x;
    }
    __syncthreads();

    const float gamma = p.gamma ? p.gamma[chunk] : 1.0f;
#pragma unroll
    for (int r = 0; r < Tl::kRowsK; ++r) state[r] *= gamma;
    state_add<KD, BV>(state, sK, sVn, k0, j, 1.0f);
    __syncthreads();  // the next chunk overwrites sS, sW, sK and sVn
  }
  if (p.ht) {
#pragma unroll
    for (int r = 0; r < Tl::kRowsK; ++r) p.ht[(bh * KD + k0 + r) * V + col] = state[r];
  }
}

template <int KD, int BV>
__global__ void __launch_bounds__(kThreads) chunk_state_backward_kernel(ChunkStateParams p) {
  using Tl = Tiling<KD, BV>;
  extern __shared__ __align__(16) float smem[];
  float* sS = smem;                // [KD][BV] dS
  float* sK = sS + KD * BV;        // [C][KD]
  float* sW = sK + kC * KD;        // [C][KD]
  float* sDv = sW + kC * KD;       // [C][BV]

  const int j = threadIdx.x % BV, group = threadIdx.x / BV, k0 = group * Tl::kRowsK;
  const int64_t V = p.V, NT = p.NT;
  int64_t bh = 0, col0 = 0;
  block_slice<BV>(V, bh, col0);
  const int64_t col = col0 + j;

  float ds[Tl::kRowsK];
#pragma unroll
  for (int r = 0; r < Tl::kRowsK; ++r) ds[r] = p.dht ? p.dht[(bh * KD + k0 + r) * V + col] : 0.0f;

  for (int64_t c = NT - 1; c >= 0; --c) {
    const int64_t chunk = bh * NT + c;
#pragma unroll
    for (int r = 0; r < Tl::kRowsK; ++r) {
      sS[(k0 + r) * BV + j] = ds[r];
      p.dh[(chunk * KD + k0 + r) * V + col] = ds[r];
    }
    copy_block(sK, p.k + chunk * kC * KD, kC * KD);
    if (p.w) copy_block(sW, p.w + chunk * kC * KD, kC * KD);
    __syncthreads();

    float dv[Tl::kRowsV];
    rows_times_state<KD, BV>(dv, sK, sS, group, j);
#pragma unroll
    for (int m = 0; m < Tl::kRowsV; ++m) {
      const int i = group + Tl::kGroups * m;
      const int64_t at = (chunk * kC + i) * V + col;
      const float x = p.dv_local[at] + dv[m];
      sDv[i * BV + j] = x;
      p.dv_new[at] = x;
    }
    __syncthreads();

    const float gamma = p.gamma ? p.gamma[chunk] : 1.0f;
#pragma unroll
    for (int r = 0; r < Tl::kRowsK; ++r) ds[r] = fmaf(ds[r], gamma, p.qdo[(chunk * KD + k0 + r) * V + col]);
    if (p.w) state_add<KD, BV>(ds, sW, sDv, k0, j, -1.0f);
    __syncthreads();  // the next chunk overwrites the shared buffers
  }
  if (p.dh0) {
#pragma unroll
    for (int r = 0; r < Tl::kRowsK; ++r) p.dh0[(bh * KD + k0 + r) * V + col] = ds[r];
  }
}

// Version 2 (tf32): the same passes with the products on tensor cores, TF32 operands (10 significant
// bits) and fp32 accumulation, for 16-bit inputs (fp32 inputs keep the SIMT version's fp32 products).
// 8 warps; the state slice [KD x BV] lives in WMMA accumulator tiles of 16 x 16 (kStateTiles a warp)
// across the chunks, a copy in shared memory as the next product's operand; each [C x BV] product
// (v_new, dv_new) is one 16 x 16 tile a warp. Shared rows are padded by 4 floats so that the 16 rows a
// fragment load touches start in different banks. Loads and stores of WMMA tiles in global memory need
// 32-byte aligned starts: V a multiple of 16 and 16-column tiles give 64-byte ones.
using namespace tf32;  // the tile shape, the fragments, load_shared and round_tf32 (kernels/common/wmma_tf32.cuh)
constexpr int kTcWarps = kThreads / 32;

template <int KD, int BV>
struct TcTiling {
  static constexpr int kLdK = KD + kTcPad, kLdV = BV + kTcPad;
  static constexpr int kColTiles = BV / kTile;
  static constexpr int kStateTiles = KD / kTile * kColTiles / kTcWarps;  // a warp's tiles of the state slice
  static constexpr int kOutTiles = kC / kTile * kColTiles;                // tiles of a [C x BV] product
  static_assert(kStateTiles >= 1 && KD / kTile * kColTiles % kTcWarps == 0 && kOutTiles <= kTcWarps,
                "unsupported K or BV for the tensor-core passes");
};

// A chunk's [C x KD] fp32 tile (contiguous in global memory) is requested into shared rows of ld floats
// with sm_80's asynchronous copies (kernels/common/cp_async.cuh), one commit group a tile, and
// waited for where it is first read. Each walk requests a tile as soon as the step that reads it is
// done with the last one: in the forward walk W while the state update runs and K while v_new is
// formed, in the backward walk the reverse. Every thread commits the same groups (an empty one where
// the tile does not exist), so that wait_group's count means the same tile in every thread.
// Requests the tile at src (null: none, an empty group) as one group.
template <int KD>
__device__ __forceinline__ void request_tile(float* dst, int ld, const float* src) {
  if (src != nullptr) {
    for (int idx = threadIdx.x; idx < kC * KD / 4; idx += kThreads) {
      const int row = idx / (KD / 4), c4 = idx % (KD / 4);
      copy_async16(dst + row * ld + 4 * c4, src + 4 * idx);
    }
  }
  commit_copies();
}

template <int KD, int BV>
__global__ void __launch_bounds__(kThreads, 2) chunk_state_forward_tc_kernel(ChunkStateParams p) {
  using Tl = TcTiling<KD, BV>;
  constexpr int kLdK = Tl::kLdK, kLdV = Tl::kLdV;
  extern __shared__ __align__(128) float smem[];
  float* sS = smem;              // [KD][kLdV]
  float* sW = sS + KD * kLdV;    // [C][kLdK]
  float* sK = sW + kC * kLdK;    // [C][kLdK]
  float* sVn = sK + kC * kLdK;   // [C][kLdV]

  const int warp = threadIdx.x / 32;
  const int64_t V = p.V, NT = p.NT;
  int64_t bh = 0, col0 = 0;
  block_slice<BV>(V, bh, col0);
  const auto tile_of = [&](const float* base, int64_t chunk) { return base ? base + chunk * kC * KD : nullptr; };

  Acc state[Tl::kStateTiles];
#pragma unroll
  for (int m = 0; m < Tl::kStateTiles; ++m) {
    const int t = warp + kTcWarps * m, r = t / Tl::kColTiles * kTile, c = t % Tl::kColTiles * kTile;
    if (p.h0) {
      wmma::load_matrix_sync(state[m], p.h0 + (bh * KD + r) * V + col0 + c, static_cast<unsigned>(V),
                             wmma::mem_row_major);
    } else {
      wmma::fill_fragment(state[m], 0.0f);
    }
  }
  request_tile<KD>(sW, kLdK, tile_of(p.w, bh * NT));
  request_tile<KD>(sK, kLdK, tile_of(p.k, bh * NT));
  for (int64_t ci = 0; ci < NT; ++ci) {
    const int64_t chunk = bh * NT + ci;
    const bool out_tile = warp < Tl::kOutTiles;
    const int i0 = warp / Tl::kColTiles * kTile, j0 = warp % Tl::kColTiles * kTile;
    const int64_t at = (chunk * kC + i0) * V + col0 + j0;
    Acc u;  // requested before the waits below, so that its latency overlaps them
    if (out_tile) wmma::load_matrix_sync(u, p.u + at, static_cast<unsigned>(V), wmma::mem_row_major);
#pragma unroll
    for (int m = 0; m < Tl::kStateTiles; ++m) {
      const int t = warp + kTcWarps * m, r = t / Tl::kColTiles * kTile, c = t % Tl::kColTiles * kTile;
      wmma::store_matrix_sync(sS + r * kLdV + c, state[m], kLdV, wmma::mem_row_major);
      wmma::store_matrix_sync(p.h + (chunk * KD + r) * V + col0 + c, state[m], static_cast<unsigned>(V),
                              wmma::mem_row_major);
    }
    wait_copies<1>();  // W of this chunk (its K may still be in flight)
    __syncthreads();

    if (out_tile) {  // v_new = U - W S, one tile a warp
      Acc ws;
      wmma::fill_fragment(ws, 0.0f);
      if (p.w) {
#pragma unroll 4
        for (int kk = 0; kk < KD; kk += kTileK) {
          FragA a;
          FragB b;
          load_shared(a, sW + i0 * kLdK + kk, kLdK);
          load_shared(b, sS + kk * kLdV + j0, kLdV);
          round_tf32(a);
          round_tf32(b);
          wmma::mma_sync(ws, a, b, ws);
        }
      }
#pragma unroll
      for (int e = 0; e < u.num_elements; ++e) u.x[e] -= ws.x[e];
      wmma::store_matrix_sync(sVn + i0 * kLdV + j0, u, kLdV, wmma::mem_row_major);
      wmma::store_matrix_sync(p.v_new + at, u, static_cast<unsigned>(V), wmma::mem_row_major);
    }
    wait_copies<0>();  // K of this chunk
    __syncthreads();   // v_new whole, K visible, sW free
    request_tile<KD>(sW, kLdK, ci + 1 < NT ? tile_of(p.w, chunk + 1) : nullptr);

    const float gamma = p.gamma ? p.gamma[chunk] : 1.0f;
#pragma unroll
    for (int m = 0; m < Tl::kStateTiles; ++m) {  // S = gamma S + K^T v_new
      const int t = warp + kTcWarps * m, r = t / Tl::kColTiles * kTile, c = t % Tl::kColTiles * kTile;
#pragma unroll
      for (int e = 0; e < state[m].num_elements; ++e) state[m].x[e] *= gamma;
#pragma unroll
      for (int ii = 0; ii < kC; ii += kTileK) {
        FragAT a;
        FragB b;
        load_shared(a, sK + ii * kLdK + r, kLdK);
        load_shared(b, sVn + ii * kLdV + c, kLdV);
        round_tf32(a);
        round_tf32(b);
        wmma::mma_sync(state[m], a, b, state[m]);
      }
    }
    __syncthreads();  // sS, sK and sVn free for the next chunk
    request_tile<KD>(sK, kLdK, ci + 1 < NT ? tile_of(p.k, chunk + 1) : nullptr);
  }
  wait_copies<0>();  // no copy outlives the block (the last requests are empty groups)
  if (p.ht) {
#pragma unroll
    for (int m = 0; m < Tl::kStateTiles; ++m) {
      const int t = warp + kTcWarps * m, r = t / Tl::kColTiles * kTile, c = t % Tl::kColTiles * kTile;
      wmma::store_matrix_sync(p.ht + (bh * KD + r) * V + col0 + c, state[m], static_cast<unsigned>(V),
                              wmma::mem_row_major);
    }
  }
}

template <int KD, int BV>
__global__ void __launch_bounds__(kThreads, 2) chunk_state_backward_tc_kernel(ChunkStateParams p) {
  using Tl = TcTiling<KD, BV>;
  constexpr int kLdK = Tl::kLdK, kLdV = Tl::kLdV;
  extern __shared__ __align__(128) float smem[];
  float* sS = smem;              // [KD][kLdV] dS
  float* sK = sS + KD * kLdV;    // [C][kLdK]
  float* sW = sK + kC * kLdK;    // [C][kLdK]
  float* sDv = sW + kC * kLdK;   // [C][kLdV]

  const int warp = threadIdx.x / 32;
  const int64_t V = p.V, NT = p.NT;
  int64_t bh = 0, col0 = 0;
  block_slice<BV>(V, bh, col0);
  const auto tile_of = [&](const float* base, int64_t chunk) { return base ? base + chunk * kC * KD : nullptr; };

  Acc ds[Tl::kStateTiles];
#pragma unroll
  for (int m = 0; m < Tl::kStateTiles; ++m) {
    const int t = warp + kTcWarps * m, r = t / Tl::kColTiles * kTile, c = t % Tl::kColTiles * kTile;
    if (p.dht) {
      wmma::load_matrix_sync(ds[m], p.dht + (bh * KD + r) * V + col0 + c, static_cast<unsigned>(V),
                             wmma::mem_row_major);
    } else {
      wmma::fill_fragment(ds[m], 0.0f);
    }
  }
  request_tile<KD>(sK, kLdK, tile_of(p.k, bh * NT + NT - 1));
  request_tile<KD>(sW, kLdK, tile_of(p.w, bh * NT + NT - 1));
  for (int64_t ci = NT - 1; ci >= 0; --ci) {
    const int64_t chunk = bh * NT + ci;
    const bool out_tile = warp < Tl::kOutTiles;
    const int i0 = warp / Tl::kColTiles * kTile, j0 = warp % Tl::kColTiles * kTile;
    const int64_t at = (chunk * kC + i0) * V + col0 + j0;
    // The global operands of this chunk, requested before the waits below so that their latency
    // overlaps them: dv_local's tile of this warp and this warp's tiles of q^T dout.
    Acc d, qdo[Tl::kStateTiles];
    if (out_tile) wmma::load_matrix_sync(d, p.dv_local + at, static_cast<unsigned>(V), wmma::mem_row_major);
#pragma unroll
    for (int m = 0; m < Tl::kStateTiles; ++m) {
      const int t = warp + kTcWarps * m, r = t / Tl::kColTiles * kTile, c = t % Tl::kColTiles * kTile;
      wmma::load_matrix_sync(qdo[m], p.qdo + (chunk * KD + r) * V + col0 + c, static_cast<unsigned>(V),
                             wmma::mem_row_major);
      wmma::store_matrix_sync(sS + r * kLdV + c, ds[m], kLdV, wmma::mem_row_major);
      wmma::store_matrix_sync(p.dh + (chunk * KD + r) * V + col0 + c, ds[m], static_cast<unsigned>(V),
                              wmma::mem_row_major);
    }
    wait_copies<1>();  // K of this chunk (its W may still be in flight)
    __syncthreads();

    if (out_tile) {  // dv_new = dv_local + K dS, one tile a warp
#pragma unroll 4
      for (int kk = 0; kk < KD; kk += kTileK) {
        FragA a;
        FragB b;
        load_shared(a, sK + i0 * kLdK + kk, kLdK);
        load_shared(b, sS + kk * kLdV + j0, kLdV);
        round_tf32(a);
        round_tf32(b);
        wmma::mma_sync(d, a, b, d);
      }
      wmma::store_matrix_sync(sDv + i0 * kLdV + j0, d, kLdV, wmma::mem_row_major);
      wmma::store_matrix_sync(p.dv_new + at, d, static_cast<unsigned>(V), wmma::mem_row_major);
    }
    wait_copies<0>();  // W of this chunk
    __syncthreads();   // dv_new whole, W visible, sK free
    request_tile<KD>(sK, kLdK, ci > 0 ? tile_of(p.k, chunk - 1) : nullptr);

    const float gamma = p.gamma ? p.gamma[chunk] : 1.0f;
#pragma unroll
    for (int m = 0; m < Tl::kStateTiles; ++m) {  // dS = gamma dS + Q^T dout - W^T dv_new
      const int t = warp + kTcWarps * m, r = t / Tl::kColTiles * kTile, c = t % Tl::kColTiles * kTile;
#pragma unroll
      for (int e = 0; e < ds[m].num_elements; ++e) ds[m].x[e] = fmaf(ds[m].x[e], gamma, qdo[m].x[e]);
      if (p.w) {
#pragma unroll
        for (int ii = 0; ii < kC; ii += kTileK) {
          FragAT a;
          FragB b;
          load_shared(a, sW + ii * kLdK + r, kLdK);
          load_shared(b, sDv + ii * kLdV + c, kLdV);
          round_tf32(a, -1.0f);
          round_tf32(b);
          wmma::mma_sync(ds[m], a, b, ds[m]);
        }
      }
    }
    __syncthreads();  // sS, sW and sDv free for the next chunk
    request_tile<KD>(sW, kLdK, ci > 0 ? tile_of(p.w, chunk - 1) : nullptr);
  }
  wait_copies<0>();  // no copy outlives the block (the last requests are empty groups)
  if (p.dh0) {
#pragma unroll
    for (int m = 0; m < Tl::kStateTiles; ++m) {
      const int t = warp + kTcWarps * m, r = t / Tl::kColTiles * kTile, c = t % Tl::kColTiles * kTile;
      wmma::store_matrix_sync(p.dh0 + (bh * KD + r) * V + col0 + c, ds[m], static_cast<unsigned>(V),
                              wmma::mem_row_major);
    }
  }
}

template <int KD, int BV>
void launch_tc(const ChunkStateParams& p, bool backward, cudaStream_t stream) {
  using Tl = TcTiling<KD, BV>;
  const dim3 grid(static_cast<unsigned>(p.BH * (p.V / BV)));
  // Both walks hold the state slice, two chunk tiles (W and K) and one [C x BV] block: 93 KB at K = 128
  // and BV = 32, two blocks an SM.
  const size_t bytes = sizeof(float) * (KD * Tl::kLdV + 2 * kC * Tl::kLdK + kC * Tl::kLdV);
  if (backward) {
    reserve_shared_memory(chunk_state_backward_tc_kernel<KD, BV>, bytes, "chunk_state_backward");
    chunk_state_backward_tc_kernel<KD, BV><<<grid, kThreads, bytes, stream>>>(p);
    check_launch("chunk_state_backward");
  } else {
    reserve_shared_memory(chunk_state_forward_tc_kernel<KD, BV>, bytes, "chunk_state_forward");
    chunk_state_forward_tc_kernel<KD, BV><<<grid, kThreads, bytes, stream>>>(p);
    check_launch("chunk_state_forward");
  }
}

// (I + A)^-1 for a strictly lower triangular A of C x C, one block of C threads a matrix: thread j
// owns column j of the inverse in registers and walks the rows in order, x_i = e_ij - sum_{m<i} A_im x_m
// (forward substitution; rows above j come out zero by themselves), reading A's row i from shared
// memory as a broadcast. No thread reads another's column, so the walk needs no barrier.
__global__ void __launch_bounds__(kC) unit_lower_inverse_kernel(const float* a, float* out) {
  __shared__ float sA[kC][kC + 1];
  const int j = threadIdx.x;
  const float* src = a + int64_t{blockIdx.x} * kC * kC;
  for (int i = 0; i < kC; ++i) sA[i][j] = src[i * kC + j];
  __syncthreads();
  float* dst = out + int64_t{blockIdx.x} * kC * kC;
  chunk_parallel::unit_lower_inverse_column<kC>(&sA[0][0], kC + 1, j, [&](int i, float x) { dst[i * kC + j] = x; });
}

template <int KD, int BV>
void launch(const ChunkStateParams& p, bool backward, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(p.BH * (p.V / BV)));
  if (backward) {
    const size_t bytes = sizeof(float) * (KD * BV + 2 * kC * KD + kC * BV);
    reserve_shared_memory(chunk_state_backward_kernel<KD, BV>, bytes, "chunk_state_backward");
    chunk_state_backward_kernel<KD, BV><<<grid, kThreads, bytes, stream>>>(p);
    check_launch("chunk_state_backward");
  } else {
    const size_t bytes = sizeof(float) * (KD * BV + 2 * kC * KD + kC * BV);
    reserve_shared_memory(chunk_state_forward_kernel<KD, BV>, bytes, "chunk_state_forward");
    chunk_state_forward_kernel<KD, BV><<<grid, kThreads, bytes, stream>>>(p);
    check_launch("chunk_state_forward");
  }
}

bool aligned32(const void* ptr) { return ptr == nullptr || reinterpret_cast<std::uintptr_t>(ptr) % 32 == 0; }

void run(const ChunkStateParams& p, bool backward, void* stream) {
  const char* what = backward ? "chunk_state_backward" : "chunk_state_forward";
  if (!chunk_state_supports(p.K, p.V)) {
    throw std::runtime_error(std::string(what) + ": K must be 32, 64, 128 or 256 and V a multiple of 16, got K=" +
                             std::to_string(p.K) + " V=" + std::to_string(p.V));
  }
  if (!aligned32(p.w) || !aligned32(p.k) || !aligned32(p.u) || !aligned32(p.h0) || !aligned32(p.h) ||
      !aligned32(p.v_new) || !aligned32(p.ht) || !aligned32(p.qdo) || !aligned32(p.dv_local) || !aligned32(p.dht) ||
      !aligned32(p.dh) || !aligned32(p.dv_new) || !aligned32(p.dh0)) {
    throw std::runtime_error(std::string(what) + ": every buffer must start on a 32-byte boundary");
  }
  if (p.BH == 0 || p.NT == 0) return;
  // One block a (sequence and head, slice of V), on the grid's x axis.
  if (p.BH * (p.V / kNarrow) > std::numeric_limits<int32_t>::max()) {
    throw std::runtime_error(std::string(what) + ": at most 2^31 - 1 blocks of " + std::to_string(kNarrow) +
                             " columns, got " + std::to_string(p.BH) + " sequences and heads with V=" +
                             std::to_string(p.V));
  }
  int device = 0, sms = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  // 32-column slices unless they would leave SMs without a block.
  const bool narrow = p.V % kWide != 0 || p.BH * (p.V / kWide) < sms;
  auto s = static_cast<cudaStream_t>(stream);
  if (p.tf32 && p.K == 128) {
    narrow ? launch_tc<128, kNarrow>(p, backward, s) : launch_tc<128, kWide>(p, backward, s);
    return;
  }
  if (p.tf32 && p.K == 64 && !narrow) {
    launch_tc<64, kWide>(p, backward, s);
    return;
  }
  switch (p.K) {
    case 32: narrow ? launch<32, kNarrow>(p, backward, s) : launch<32, kWide>(p, backward, s); break;
    case 64: narrow ? launch<64, kNarrow>(p, backward, s) : launch<64, kWide>(p, backward, s); break;
    case 128: narrow ? launch<128, kNarrow>(p, backward, s) : launch<128, kWide>(p, backward, s); break;
    // Head dim 256 in 16-column slices: its K and W tiles take 128 KB of shared memory, and with 16 columns
    // the block's 152 KB fit the A100's 163 KB as well as Hopper's 227 (32 columns would need 172).
    default: launch<256, kNarrow>(p, backward, s); break;
  }
}

}  // namespace

void unit_lower_inverse(const float* a, float* out, int64_t batch, void* stream) {
  if (batch == 0) return;
  unit_lower_inverse_kernel<<<static_cast<unsigned>(batch), kC, 0, static_cast<cudaStream_t>(stream)>>>(a, out);
  check_launch("unit_lower_inverse");
}

bool chunk_state_supports(int64_t K, int64_t V) {
  return (K == 32 || K == 64 || K == 128 || K == 256) && V > 0 && V % kNarrow == 0;
}

void chunk_state_forward(const ChunkStateParams& p, void* stream) { run(p, false, stream); }

void chunk_state_backward(const ChunkStateParams& p, void* stream) { run(p, true, stream); }

}  // namespace deltabench::cuda
