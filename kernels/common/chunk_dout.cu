// What the chunked backward's walk reads of dout besides the state (kernels/common/cuda_kernels.h,
// ChunkDoutParams), one block a chunk: dout's gradient of v_new within the chunk and the walk's q^T dout
// term,
//   dv_local = ((q k^T) * decay)^T dout    [C x V]    decay_ij = exp(G_i - G_j) for j <= i, else 0
//   qdo      = (q e^G)^T dout              [K x V]
// which kernels/common/chunk_train.cpp computes with ATen as three batched products and three
// elementwise passes (q e^G, the mask, a copy of the transposed product). q and k are staged in shared
// memory once by asynchronous copies, the masked attention [C x C] formed there and q scaled to q e^G in
// place; then dout is walked in slices of BV columns, double-buffered over k's memory (slice s + 1
// lands while slice s's products run), each slice's output tiles written straight from the
// accumulators. TF32 products with fp32 accumulation, as the walks take them for 16-bit inputs; 16
// warps, two blocks an SM (version 5: 85 KB of shared memory at K 128, at most 64 registers).

#include "kernels/common/chunk_parallel.cuh"
#include "kernels/common/cp_async.cuh"
#include "kernels/common/cuda_common.cuh"
#include "kernels/common/wmma_tf32.cuh"

#include <cstdint>
#include <stdexcept>

namespace deltabench::cuda {
namespace {

using namespace tf32;
using chunk_parallel::kC, chunk_parallel::kThreads, chunk_parallel::kWarps;
constexpr int kPad = kTcPad;

template <int KD, int BV>
struct DoutLayout {
  static constexpr int kLdK = KD + kPad, kLdC = kC + kPad, kLdV = BV + kPad;
  static constexpr int kColTiles = BV / kTile;
  static constexpr int kDvTiles = kC / kTile * kColTiles, kQdoTiles = KD / kTile * kColTiles;
  // q (then q e^G) [C x KD]; k [C x KD], whose memory then holds two dout slices [C x BV]; the masked
  // attention [C x C]; G.
  static constexpr int kKOrDout = kC * kLdK > 2 * kC * kLdV ? kC * kLdK : 2 * kC * kLdV;
  static constexpr int kFloats = kC * kLdK + kKOrDout + kC * kLdC + kC;
  static constexpr size_t kBytes = sizeof(float) * kFloats;
  static_assert((kC * kLdK) % 8 == 0 && kKOrDout % 8 == 0 && (kC * kLdC) % 8 == 0 && (kC * kLdV) % 8 == 0,
                "WMMA's shared tiles must start on 32-byte boundaries");
  static_assert(kC / kTile * kC / kTile <= kWarps, "an attention tile a warp");
  static_assert(2 * kBytes <= 227 * 1024, "two blocks an SM");
};

template <int KD, int BV>
__global__ void __launch_bounds__(kThreads, 2) chunk_dout_kernel(ChunkDoutParams p) {
  using L = DoutLayout<KD, BV>;
  constexpr int kLdK = L::kLdK, kLdC = L::kLdC, kLdV = L::kLdV;
  extern __shared__ __align__(128) float smem[];
  float* sQ = smem;                   // [C][kLdK] q, then q e^G
  float* sK = sQ + kC * kLdK;         // [C][kLdK] k, then the dout slices
  float* sA = sK + L::kKOrDout;       // [C][kLdC] (q k^T) * decay
  float* sG = sA + kC * kLdC;         // [C]
  const auto sDo = [&](int b) { return sK + b * kC * kLdV; };  // [C][kLdV] dout slice b of two

  const int warp = threadIdx.x / 32;
  const int64_t chunk = blockIdx.x, V = p.V;
  const bool gated = p.g != nullptr;
  chunk_parallel::request_slice<KD>(sQ, kLdK, p.q + chunk * kC * KD, kC, KD, 0);
  chunk_parallel::request_slice<KD>(sK, kLdK, p.k + chunk * kC * KD, kC, KD, 0);
  commit_copies();
  if (threadIdx.x < kC) sG[threadIdx.x] = gated ? p.g[chunk * kC + threadIdx.x] : 0.0f;
  wait_copies<0>();
  __syncthreads();

  {  // q k^T, a tile a warp; tiles above the diagonal are masked whole, stored as zeros
    const int row = warp / (kC / kTile) * kTile, col = warp % (kC / kTile) * kTile;
    Acc acc;
    wmma::fill_fragment(acc, 0.0f);
    if (col <= row) {
#pragma unroll 4
      for (int kk = 0; kk < KD; kk += kTileK) {
        mma_step<FragA, FragBT>(acc, sQ + row * kLdK + kk, kLdK, sK + col * kLdK + kk, kLdK);
      }
    }
    wmma::store_matrix_sync(sA + row * kLdC + col, acc, kLdC, wmma::mem_row_major);
  }
  __syncthreads();  // k and the unscaled q read

  // Slice v0 of dout into buffer b, one commit group.
  const auto request = [&](int b, int64_t v0) {
    chunk_parallel::request_slice<BV>(sDo(b), kLdV, p.dout + chunk * kC * V, kC, V, v0);
    commit_copies();
  };
  request(0, 0);
  // The mask, and q e^G; both are operands only from here on, so they are rounded to TF32 once (version
  // 5b), as the dout slices are when they land, and the products convert none of them.
  for (int idx = threadIdx.x; idx < kC * kC; idx += kThreads) {
    const int i = idx / kC, j = idx % kC;
    float& x = sA[i * kLdC + j];
    x = j > i ? 0.0f : to_tf32(gated ? x * expf(sG[i] - sG[j]) : x);
  }
  for (int idx = threadIdx.x; idx < kC * KD / 4; idx += kThreads) {
    const int row = idx / (KD / 4), c = 4 * (idx % (KD / 4));
    float4& q = *reinterpret_cast<float4*>(sQ + row * kLdK + c);
    const float e = gated ? expf(sG[row]) : 1.0f;
    q = make_float4(to_tf32(q.x * e), to_tf32(q.y * e), to_tf32(q.z * e), to_tf32(q.w * e));
  }

  int b = 0;
  for (int64_t v0 = 0; v0 < V; v0 += BV, b ^= 1) {
    wait_copies<0>();
    chunk_parallel::round_own_slice<BV>(sDo(b), kLdV, kC);  // this thread's copies, visible to it now
    // Slice v0 landed and rounded for every thread, the mask and q's scaling done; every warp is done
    // with the other buffer (the last slice's products), which the next slice's copies now take.
    __syncthreads();
    if (v0 + BV < V) request(b ^ 1, v0 + BV);
    const float* sD = sDo(b);
    for (int t = warp; t < L::kDvTiles + L::kQdoTiles; t += kWarps) {
      Acc acc;
      wmma::fill_fragment(acc, 0.0f);
      if (t < L::kDvTiles) {  // dv_local = attn^T dout: attn's column block, from the diagonal down
        const int row = t / L::kColTiles * kTile, col = t % L::kColTiles * kTile;
        for (int jj = row; jj < kC; jj += kTileK) {
          mma_step<FragAT, FragB, false, false>(acc, sA + jj * kLdC + row, kLdC, sD + jj * kLdV + col, kLdV);
        }
        wmma::store_matrix_sync(p.dv_local + (chunk * kC + row) * V + v0 + col, acc, static_cast<unsigned>(V),
                                wmma::mem_row_major);
      } else {  // qdo = (q e^G)^T dout
        const int u = t - L::kDvTiles, row = u / L::kColTiles * kTile, col = u % L::kColTiles * kTile;
#pragma unroll 4
        for (int jj = 0; jj < kC; jj += kTileK) {
          mma_step<FragAT, FragB, false, false>(acc, sQ + jj * kLdK + row, kLdK, sD + jj * kLdV + col, kLdV);
        }
        wmma::store_matrix_sync(p.qdo + (chunk * KD + row) * V + v0 + col, acc, static_cast<unsigned>(V),
                                wmma::mem_row_major);
      }
    }
  }
}

}  // namespace

bool chunk_dout_supports(int64_t K, int64_t V) { return chunk_parallel::supports(K, V); }

void chunk_dout(const ChunkDoutParams& p, void* stream) {
  if (!p.q || !p.k || !p.dout || !p.dv_local || !p.qdo) {
    throw std::runtime_error("chunk_dout: q, k, dout, dv_local and qdo are required");
  }
  if (!chunk_parallel::check("chunk_dout", p.BH, p.NT, p.K, p.V, {p.q, p.k, p.dout, p.dv_local, p.qdo})) return;
  const auto kernel_of = [](auto kd, auto bv) { return chunk_dout_kernel<decltype(kd)::value, decltype(bv)::value>; };
  const auto bytes_of = [](auto kd, auto bv) { return DoutLayout<decltype(kd)::value, decltype(bv)::value>::kBytes; };
  chunk_parallel::launch("chunk_dout", p, kThreads, kernel_of, bytes_of, static_cast<cudaStream_t>(stream));
}

}  // namespace deltabench::cuda
