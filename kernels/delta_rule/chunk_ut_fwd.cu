// The delta rules' UT transform in one kernel a chunk (kernels/common/cuda_kernels.h, ChunkUtForwardParams):
// what kernels/delta_rule/chunk_bwd.cpp's ATen stages form as three batched products, the inverse kernel
// and five elementwise passes. Per chunk of C = 64 tokens (G the within-chunk cumulative log decay, zero
// without g):
//   A = strict_lower(diag(beta) K K^T * decay),  T = (I + A)^-1,
//   W = T diag(beta e^G) K,  U = T diag(beta) V.
// One block of 8 warps a chunk: K staged once in shared memory; K K^T's tiles on and below the diagonal
// on tensor cores (TF32, fp32 accumulation), masked and scaled into A; T by forward substitution in fp32
// (a column a thread, as kernels/common/chunk_state.cu's unit_lower_inverse), exact zeros above the
// diagonal; then K's rows scaled in place by beta e^G for W, and V walked in slices of BV columns,
// staged times beta, for U. 78 KB of shared memory at K 128: two blocks an SM, so that one block's
// substitution overlaps the other's products.

#include "kernels/common/chunk_parallel.cuh"
#include "kernels/common/cuda_common.cuh"
#include "kernels/common/wmma_tf32.cuh"

#include <cstdint>
#include <stdexcept>

namespace deltabench::cuda {
namespace {

using namespace tf32;
using chunk_parallel::kC;
constexpr int kUtWarps = 8, kUtThreads = 32 * kUtWarps;
constexpr int kPad = kTcPad;
constexpr int kLdC = kC + kPad;
constexpr int kRowTiles = kC / kTile;

template <int KD, int BV>
struct UtForwardLayout {
  static constexpr int kLdK = KD + kPad, kLdV = BV + kPad;
  static constexpr int kCK = kC * kLdK, kCC = kC * kLdC, kCV = kC * kLdV;
  // K (then diag(beta e^G) K), A, T, the V slice; G and beta.
  static constexpr size_t kBytes = sizeof(float) * (kCK + 2 * kCC + kCV + 2 * kC);
  static_assert(kCK % 8 == 0 && kCC % 8 == 0 && kCV % 8 == 0, "32-byte tile boundaries");
};

template <int KD, int BV>
__global__ void __launch_bounds__(kUtThreads, 2) chunk_ut_forward_kernel(ChunkUtForwardParams p) {
  using L = UtForwardLayout<KD, BV>;
  constexpr int kLdK = L::kLdK, kLdV = L::kLdV;
  extern __shared__ __align__(128) float smem[];
  float* sK = smem;             // [C][kLdK] K, then diag(beta e^G) K
  float* sA = sK + L::kCK;      // [C][kLdC] A
  float* sT = sA + L::kCC;      // [C][kLdC] T
  float* sV = sT + L::kCC;      // [C][kLdV] diag(beta) V's slice
  float* sG = sV + L::kCV;      // [C]
  float* sBeta = sG + kC;       // [C]

  const int warp = threadIdx.x / 32;
  const int64_t chunk = blockIdx.x, V = p.V;
  const bool gated = p.g != nullptr;
  if (threadIdx.x < kC) {
    sG[threadIdx.x] = gated ? p.g[chunk * kC + threadIdx.x] : 0.0f;
    sBeta[threadIdx.x] = p.beta[chunk * kC + threadIdx.x];
  }
  for (int idx = threadIdx.x; idx < kC * KD / 4; idx += kUtThreads) {
    const int row = idx / (KD / 4), c = 4 * (idx % (KD / 4));
    *reinterpret_cast<float4*>(sK + row * kLdK + c) =
        __ldg(reinterpret_cast<const float4*>(p.k + (chunk * kC + row) * KD + c));
  }
  __syncthreads();

  // K K^T, two tiles a warp; the tiles above the diagonal are stored as zeros.
  for (int t = warp; t < kRowTiles * kRowTiles; t += kUtWarps) {
    const int row = t / kRowTiles * kTile, col = t % kRowTiles * kTile;
    Acc acc;
    wmma::fill_fragment(acc, 0.0f);
    if (col <= row) {
#pragma unroll 4
      for (int kk = 0; kk < KD; kk += kTileK) {
        mma_step<FragA, FragBT>(acc, sK + row * kLdK + kk, kLdK, sK + col * kLdK + kk, kLdK);
      }
    }
    wmma::store_matrix_sync(sA + row * kLdC + col, acc, kLdC, wmma::mem_row_major);
  }
  __syncthreads();
  // A = strict_lower(beta_i (K K^T)_ij exp(G_i - G_j)), to shared and global memory; K's rows times
  // beta e^G in place (K K^T done with them).
  for (int idx = threadIdx.x; idx < kC * kC; idx += kUtThreads) {
    const int i = idx / kC, j = idx % kC;
    float& a = sA[i * kLdC + j];
    a = j < i ? sBeta[i] * (gated ? a * expf(sG[i] - sG[j]) : a) : 0.0f;
    p.a[(chunk * kC + i) * kC + j] = a;
  }
  for (int idx = threadIdx.x; idx < kC * KD; idx += kUtThreads) {
    const int i = idx / KD, c = idx % KD;
    // An operand only from here: rounded once, the product as before (x (beta e^G)), so the same bits.
    sK[i * kLdK + c] = to_tf32(sK[i * kLdK + c] * (sBeta[i] * (gated ? expf(sG[i]) : 1.0f)));
  }
  __syncthreads();

  // T = (I + A)^-1 by forward substitution: thread j < C owns column j, x_i = e_ij - sum over m < i of
  // A_im x_m, reading A's row i as a broadcast (rows above j come out exactly zero).
  if (threadIdx.x < kC) {
    const int j = threadIdx.x;
    chunk_parallel::unit_lower_inverse_column<kC>(sA, kLdC, j, [&](int i, float x) {
      sT[i * kLdC + j] = to_tf32(x);  // an operand only here; the backward takes T in fp32
      p.tinv[(chunk * kC + i) * kC + j] = x;
    });
  }
  __syncthreads();

  // dst [C x cols] (row stride ldd) = T src (src in shared memory, row stride ld), the warps taking its
  // tiles in turn: T is lower triangular, so each sum runs up to the tile's diagonal. T and src hold
  // TF32 values already (rounded once where formed, version 5b), so no fragment is converted.
  const auto times_t = [&](const float* src, int ld, int cols, float* dst, int64_t ldd) {
    for (int t = warp; t < kRowTiles * (cols / kTile); t += kUtWarps) {
      const int row = t / (cols / kTile) * kTile, col = t % (cols / kTile) * kTile;
      Acc acc;
      wmma::fill_fragment(acc, 0.0f);
      for (int jj = 0; jj < row + kTile; jj += kTileK) {
        mma_step<FragA, FragB, false, false>(acc, sT + row * kLdC + jj, kLdC, src + jj * ld + col, static_cast<unsigned>(ld));
      }
      wmma::store_matrix_sync(dst + row * ldd + col, acc, static_cast<unsigned>(ldd), wmma::mem_row_major);
    }
  };
  times_t(sK, kLdK, KD, p.w + chunk * kC * KD, KD);  // W = T diag(beta e^G) K
  // U = T diag(beta) V, a slice at a time.
  for (int64_t v0 = 0; v0 < V; v0 += BV) {
    __syncthreads();  // the last slice's products done with sV
    for (int idx = threadIdx.x; idx < kC * BV / 4; idx += kUtThreads) {
      const int row = idx / (BV / 4), c = 4 * (idx % (BV / 4));
      const float4 x = __ldg(reinterpret_cast<const float4*>(p.v + (chunk * kC + row) * V + v0 + c));
      const float b = sBeta[row];
      *reinterpret_cast<float4*>(sV + row * kLdV + c) = tf32x4(make_float4(x.x * b, x.y * b, x.z * b, x.w * b));
    }
    __syncthreads();
    times_t(sV, kLdV, BV, p.u + chunk * kC * V + v0, V);
  }
}

}  // namespace

bool chunk_ut_forward_supports(int64_t K, int64_t V) { return chunk_parallel::supports(K, V); }

void chunk_ut_forward(const ChunkUtForwardParams& p, void* stream) {
  if (!p.k || !p.v || !p.beta || !p.a || !p.tinv || !p.w || !p.u) {
    throw std::runtime_error("chunk_ut_forward: k, v, beta, a, tinv, w and u are required");
  }
  if (!chunk_parallel::check("chunk_ut_forward", p.BH, p.NT, p.K, p.V, {p.k, p.v, p.a, p.tinv, p.w, p.u})) return;
  const auto kernel_of = [](auto kd, auto bv) { return chunk_ut_forward_kernel<decltype(kd)::value, decltype(bv)::value>; };
  const auto bytes_of = [](auto kd, auto bv) { return UtForwardLayout<decltype(kd)::value, decltype(bv)::value>::kBytes; };
  chunk_parallel::launch("chunk_ut_forward", p, kUtThreads, kernel_of, bytes_of, static_cast<cudaStream_t>(stream));
}

}  // namespace deltabench::cuda
