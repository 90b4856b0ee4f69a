// The delta rules' part of the chunked backward in one kernel a chunk (kernels/common/cuda_kernels.h,
// ChunkUtBackwardParams): the gradients through the UT transform that kernels/delta_rule/chunk_bwd.cpp's
// ATen stages form as eight batched products and about a dozen elementwise passes and reductions.
//
// The transform, per chunk of C = 64 tokens (G the within-chunk cumulative log decay, zero without g):
//   A = strict_lower(diag(beta) K K^T * decay),  T = (I + A)^-1,  W = T diag(beta e^G) K,  U = T diag(beta) V.
// Given dW and dU (= dv_new), with dk and dG holding what came through the output and the walk:
//   dT  = dW (diag(beta e^G) K)^T + dU (diag(beta) V)^T     (only its strictly lower part reaches dA)
//   dA  = strict_lower(-T^T dT T^T)
//   dkbeta = diag(e^G) T^T dW + (dA * decay) K
//   dk += (dA * decay)^T diag(beta) K + diag(beta) dkbeta
//   dv  = diag(beta) T^T dU
//   dbeta = rowsum(dkbeta * K) + rowsum((T^T dU) * V)
//   dG += beta rowsum((diag(e^G) T^T dW) * K) + rowsum(dA * A) - colsum(dA * A)
//
// One block of 16 warps a chunk, TF32 products with fp32 accumulation (16-bit inputs, as the walks).
// Shared memory holds T, dW, K and three [C x C] buffers; V is walked in slices of BV columns, which form
// dT's V part and dv as they pass. Row scalings go into the operands (staged scaled, or a [C x C] scaled in
// place) or through a per-warp scratch tile, whose layout, unlike an accumulator fragment's, is known.
// Every sum has a fixed order.

#include "kernels/common/chunk_parallel.cuh"
#include "kernels/common/cuda_common.cuh"
#include "kernels/common/wmma_tf32.cuh"

#include <cstdint>
#include <stdexcept>

namespace deltabench::cuda {
namespace {

using namespace tf32;
using chunk_parallel::kC, chunk_parallel::kThreads, chunk_parallel::kWarps;
constexpr int kPad = kTcPad;
constexpr int kLdC = kC + kPad;
constexpr int kRowTiles = kC / kTile;
// The [C x C] tiles on and below the diagonal (the rest of a lower triangular product is zero): 10.
constexpr int kLowerTiles = kRowTiles * (kRowTiles + 1) / 2;
static_assert(kLowerTiles <= kWarps, "a lower tile a warp");

// Lower tile t's first row and column: t = 0 is (0, 0), then (1, 0), (1, 1), (2, 0), ...
__device__ __forceinline__ void lower_tile(int t, int& row, int& col) {
  int r = 0;
  while ((r + 1) * (r + 2) / 2 <= t) ++r;
  row = r * kTile;
  col = (t - r * (r + 1) / 2) * kTile;
}

template <int KD, int BV>
struct UtLayout {
  static constexpr int kLdK = KD + kPad, kLdV = BV + kPad;
  static constexpr int kCC = kC * kLdC, kCK = kC * kLdK, kCV = kC * kLdV;
  static constexpr int kVTiles = kRowTiles * (BV / kTile);  // dvt's tiles of a slice
  static constexpr int kKTiles = KD / kTile;
  // T, dT (then dA), X (then A, then diag(beta) dA_d); dW; kt (then the V slices, then K).
  static constexpr int kSlices = 3 * kCV;
  static constexpr int kKBuf = kCK > kSlices ? kCK : kSlices;
  static constexpr int kScratch = kWarps * kTile * kTile;
  // G, beta, e^G, the M sums, dbeta's V part; the slices' row sums; dG's and dbeta's K row sums.
  static constexpr int kSmall = 5 * kC + (BV / kTile) * kC + 2 * kKTiles * kC;
  static constexpr size_t kBytes = sizeof(float) * (3 * kCC + kCK + kKBuf + kScratch + kSmall);
  static_assert(kCC % 8 == 0 && kCK % 8 == 0 && kCV % 8 == 0 && kKBuf % 8 == 0, "32-byte tile boundaries");
};

template <int KD, int BV>
__global__ void __launch_bounds__(kThreads, 1) chunk_ut_backward_kernel(ChunkUtBackwardParams p) {
  using L = UtLayout<KD, BV>;
  constexpr int kLdK = L::kLdK, kLdV = L::kLdV;
  extern __shared__ __align__(128) float smem[];
  float* sT = smem;                  // [C][kLdC] T (later T diag(e^G))
  float* sDT = sT + L::kCC;          // [C][kLdC] dT, then dA (then dA * decay)
  float* sX = sDT + L::kCC;          // [C][kLdC] T^T dT, then A, then diag(beta) (dA * decay)
  float* sDW = sX + L::kCC;          // [C][kLdK] dW
  float* sKB = sDW + L::kCK;         // [C][kLdK] kt = diag(beta e^G) K, then the V slices, then K
  float* sDU = sKB;                  // [C][kLdV] the dU slice
  float* sV = sDU + L::kCV;          // [C][kLdV] the V slice
  float* sVt = sV + L::kCV;          // [C][kLdV] diag(beta) V
  float* scratch = sKB + L::kKBuf;   // [kWarps][16 x 16]
  float* sG = scratch + L::kScratch;
  float* sBeta = sG + kC;
  float* sEG = sBeta + kC;
  float* sM = sEG + kC;              // rowsum(dA * A) - colsum(dA * A)
  float* sDbV = sM + kC;             // dbeta's V part, summed over the slices
  float* sPartV = sDbV + kC;         // [BV / 16][C] a slice's row sums
  float* sRowG = sPartV + (BV / kTile) * kC;  // [kKTiles][C] rowsum(P * K) per K tile
  float* sRowB = sRowG + L::kKTiles * kC;     // [kKTiles][C] rowsum(dkbeta * K) per K tile

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int r16 = lane / 2, half = 8 * (lane % 2);  // a lane's row of a scratch tile and its 8 columns
  float* mine = scratch + warp * kTile * kTile;
  const int64_t chunk = blockIdx.x, V = p.V;
  const bool gated = p.g != nullptr;
  const float* k = p.k + chunk * kC * KD;
  const float* dw = p.dw + chunk * kC * KD;

  if (threadIdx.x < kC) {
    const int i = threadIdx.x;
    const float g = gated ? p.g[chunk * kC + i] : 0.0f;
    sG[i] = g;
    sBeta[i] = p.beta[chunk * kC + i];
    sEG[i] = gated ? expf(g) : 1.0f;
    sDbV[i] = 0.0f;
  }
  for (int idx = threadIdx.x; idx < kC * kC / 4; idx += kThreads) {
    const int row = idx / (kC / 4), c = 4 * (idx % (kC / 4));
    *reinterpret_cast<float4*>(sT + row * kLdC + c) =
        __ldg(reinterpret_cast<const float4*>(p.tinv + (chunk * kC + row) * kC + c));
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < kC * KD / 4; idx += kThreads) {
    const int row = idx / (KD / 4), c = 4 * (idx % (KD / 4));
    const float4 x = __ldg(reinterpret_cast<const float4*>(k + row * KD + c));
    const float s = sBeta[row] * sEG[row];
    // kt and dW are operands only: rounded to TF32 once here (version 5b), not at each fragment load.
    *reinterpret_cast<float4*>(sKB + row * kLdK + c) = tf32x4(make_float4(x.x * s, x.y * s, x.z * s, x.w * s));
    *reinterpret_cast<float4*>(sDW + row * kLdK + c) = tf32x4(__ldg(reinterpret_cast<const float4*>(dw + row * KD + c)));
  }
  __syncthreads();

  // dT's lower tiles, a warp each (warps kLowerTiles and up hold none): the K part, then the V slices'.
  const bool has_dt = warp < kLowerTiles;
  int dt_row = 0, dt_col = 0;
  if (has_dt) lower_tile(warp, dt_row, dt_col);
  Acc dt;
  wmma::fill_fragment(dt, 0.0f);
  if (has_dt) {
#pragma unroll 4
    for (int kk = 0; kk < KD; kk += kTileK) {
      mma_step<FragA, FragBT, false, false>(dt, sDW + dt_row * kLdK + kk, kLdK, sKB + dt_col * kLdK + kk, kLdK);
    }
  }
  for (int64_t v0 = 0; v0 < V; v0 += BV) {
    __syncthreads();  // kt, or the last slice, read by every warp
    for (int idx = threadIdx.x; idx < kC * BV / 4; idx += kThreads) {
      const int row = idx / (BV / 4), c = 4 * (idx % (BV / 4));
      const int64_t at = (chunk * kC + row) * V + v0 + c;
      const float4 x = __ldg(reinterpret_cast<const float4*>(p.v + at));
      const float b = sBeta[row];
      *reinterpret_cast<float4*>(sDU + row * kLdV + c) = tf32x4(__ldg(reinterpret_cast<const float4*>(p.du + at)));
      *reinterpret_cast<float4*>(sV + row * kLdV + c) = x;
      *reinterpret_cast<float4*>(sVt + row * kLdV + c) = tf32x4(make_float4(x.x * b, x.y * b, x.z * b, x.w * b));
    }
    __syncthreads();
    if (has_dt) {
#pragma unroll
      for (int vv = 0; vv < BV; vv += kTileK) {
        mma_step<FragA, FragBT, false, false>(dt, sDU + dt_row * kLdV + vv, kLdV, sVt + dt_col * kLdV + vv, kLdV);
      }
    }
    // T^T dU's tiles of the slice: dv = diag(beta) T^T dU, and its rows' sums with V for dbeta.
    for (int t = warp; t < L::kVTiles; t += kWarps) {
      const int row = t / (BV / kTile) * kTile, col = t % (BV / kTile) * kTile;
      Acc acc;
      wmma::fill_fragment(acc, 0.0f);
      for (int jj = row; jj < kC; jj += kTileK) {  // T^T is upper triangular: from the diagonal on
        mma_step<FragAT, FragB, true, false>(acc, sT + jj * kLdC + row, kLdC, sDU + jj * kLdV + col, kLdV);
      }
      wmma::store_matrix_sync(mine, acc, kTile, wmma::mem_row_major);
      __syncwarp();
      const int i = row + r16;
      const float* x = mine + r16 * kTile + half;
      const float b = sBeta[i];
      float* dst = p.dv + (chunk * kC + i) * V + v0 + col + half;
      reinterpret_cast<float4*>(dst)[0] = make_float4(b * x[0], b * x[1], b * x[2], b * x[3]);
      reinterpret_cast<float4*>(dst)[1] = make_float4(b * x[4], b * x[5], b * x[6], b * x[7]);
      float s = 0.0f;
#pragma unroll
      for (int e = 0; e < 8; ++e) s = fmaf(x[e], sV[i * kLdV + col + half + e], s);
      s += __shfl_xor_sync(0xffffffffu, s, 1);
      if (half == 0) sPartV[col / kTile * kC + i] = s;
      __syncwarp();
    }
    __syncthreads();
    if (threadIdx.x < kC) {
      float s = sDbV[threadIdx.x];
      for (int ct = 0; ct < BV / kTile; ++ct) s += sPartV[ct * kC + threadIdx.x];
      sDbV[threadIdx.x] = s;
    }
  }

  // dT's strictly lower part into sDT (the tiles above the diagonal zero).
  if (has_dt) {
    wmma::store_matrix_sync(sDT + dt_row * kLdC + dt_col, dt, kLdC, wmma::mem_row_major);
  } else {
    for (int t = warp - kLowerTiles; t < kRowTiles * kRowTiles - kLowerTiles; t += kWarps - kLowerTiles) {
      // the upper tiles, (0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)
      int row = 0, rest = t;
      while (rest >= kRowTiles - 1 - row) rest -= kRowTiles - 1 - row++;
      Acc zero;
      wmma::fill_fragment(zero, 0.0f);
      wmma::store_matrix_sync(sDT + row * kTile * kLdC + (row + 1 + rest) * kTile, zero, kLdC, wmma::mem_row_major);
      wmma::store_matrix_sync(sX + row * kTile * kLdC + (row + 1 + rest) * kTile, zero, kLdC, wmma::mem_row_major);
    }
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < kC * kC; idx += kThreads) {
    const int i = idx / kC, j = idx % kC;
    if (j >= i) sDT[i * kLdC + j] = 0.0f;
  }
  __syncthreads();

  // X = T^T dT, its lower tiles (the upper ones meet zeros of T below): X_ij = sum over a >= i of T_ai dT_aj.
  if (has_dt) {
    Acc x;
    wmma::fill_fragment(x, 0.0f);
    for (int jj = dt_row; jj < kC; jj += kTileK) {
      mma_step<FragAT, FragB>(x, sT + jj * kLdC + dt_row, kLdC, sDT + jj * kLdC + dt_col, kLdC);
    }
    wmma::store_matrix_sync(sX + dt_row * kLdC + dt_col, x, kLdC, wmma::mem_row_major);
  }
  __syncthreads();
  // dA = -X T^T on the lower tiles, into sDT (dT read by X alone, done): sum over b <= j of X_ib T_jb.
  if (has_dt) {
    Acc a;
    wmma::fill_fragment(a, 0.0f);
    for (int jj = 0; jj < dt_col + kTile; jj += kTileK) {
      mma_step<FragA, FragBT>(a, sX + dt_row * kLdC + jj, kLdC, sT + dt_col * kLdC + jj, kLdC);
    }
#pragma unroll
    for (int e = 0; e < a.num_elements; ++e) a.x[e] = -a.x[e];
    __syncwarp();
    wmma::store_matrix_sync(sDT + dt_row * kLdC + dt_col, a, kLdC, wmma::mem_row_major);
  }
  __syncthreads();  // (the upper tiles of sDT hold zeros still)
  // A into sX; K into sKB; T's columns times e^G (T^T dW's rows times e^G, the P of dkbeta).
  for (int idx = threadIdx.x; idx < kC * kC / 4; idx += kThreads) {
    const int row = idx / (kC / 4), c = 4 * (idx % (kC / 4));
    *reinterpret_cast<float4*>(sX + row * kLdC + c) =
        __ldg(reinterpret_cast<const float4*>(p.a + (chunk * kC + row) * kC + c));
  }
  for (int idx = threadIdx.x; idx < kC * KD / 4; idx += kThreads) {
    const int row = idx / (KD / 4), c = 4 * (idx % (KD / 4));
    *reinterpret_cast<float4*>(sKB + row * kLdK + c) = __ldg(reinterpret_cast<const float4*>(k + row * KD + c));
  }
  if (gated) {
    for (int idx = threadIdx.x; idx < kC * kC; idx += kThreads) {
      const int a = idx / kC, j = idx % kC;
      sT[a * kLdC + j] *= sEG[j];
    }
  }
  __syncthreads();
  // M = dA * A on dA's strictly lower support: its rows' sums less its columns'.
  if (threadIdx.x < kC) {
    const int i = threadIdx.x;
    float rows = 0.0f, cols = 0.0f;
    for (int j = 0; j < kC; ++j) {
      if (j < i) rows = fmaf(sDT[i * kLdC + j], sX[i * kLdC + j], rows);
      if (j > i) cols = fmaf(sDT[j * kLdC + i], sX[j * kLdC + i], cols);
    }
    sM[i] = rows - cols;
  }
  __syncthreads();
  // dA_d = dA * decay (strictly lower), and diag(beta) dA_d in sX (A read by the sums, done).
  for (int idx = threadIdx.x; idx < kC * kC; idx += kThreads) {
    const int i = idx / kC, j = idx % kC;
    // Both operands only from here on (of Q and R): rounded to TF32 once, each from the fp32 dA_d.
    float& d = sDT[i * kLdC + j];
    const float full = j < i ? (gated ? d * expf(sG[i] - sG[j]) : d) : 0.0f;
    d = to_tf32(full);
    sX[i * kLdC + j] = to_tf32(sBeta[i] * full);
  }
  __syncthreads();

  // The [C x KD] tiles, one at a time a warp: P = diag(e^G) T^T dW, Q = dA_d K, R = (diag(beta) dA_d)^T K;
  // dkbeta = P + Q; dk += R + diag(beta) dkbeta.
  for (int t = warp; t < kRowTiles * L::kKTiles; t += kWarps) {
    const int row = t / L::kKTiles * kTile, col = t % L::kKTiles * kTile;
    Acc P, Q, R;
    wmma::fill_fragment(P, 0.0f);
    wmma::fill_fragment(Q, 0.0f);
    wmma::fill_fragment(R, 0.0f);
    for (int jj = row; jj < kC; jj += kTileK) {  // T^T and (dA_d)^T: from the diagonal on
      mma_step<FragAT, FragB, true, false>(P, sT + jj * kLdC + row, kLdC, sDW + jj * kLdK + col, kLdK);
      mma_step<FragAT, FragB, false, true>(R, sX + jj * kLdC + row, kLdC, sKB + jj * kLdK + col, kLdK);
    }
    for (int jj = 0; jj < row + kTile; jj += kTileK) {  // dA_d: up to the diagonal
      mma_step<FragA, FragB, false, true>(Q, sDT + row * kLdC + jj, kLdC, sKB + jj * kLdK + col, kLdK);
    }
    const int i = row + r16, c = col + half;
    const float* kr = sKB + i * kLdK + c;  // K's 8 values of this lane
    const float* x = mine + r16 * kTile + half;
    // rowsum(P * K) for dG
    wmma::store_matrix_sync(mine, P, kTile, wmma::mem_row_major);
    __syncwarp();
    float s = 0.0f;
#pragma unroll
    for (int e = 0; e < 8; ++e) s = fmaf(x[e], kr[e], s);
    s += __shfl_xor_sync(0xffffffffu, s, 1);
    if (half == 0) sRowG[col / kTile * kC + i] = s;
    __syncwarp();
    // dkbeta = P + Q: rowsum(dkbeta * K) for dbeta, then diag(beta) dkbeta back into a fragment
#pragma unroll
    for (int e = 0; e < P.num_elements; ++e) P.x[e] += Q.x[e];
    wmma::store_matrix_sync(mine, P, kTile, wmma::mem_row_major);
    __syncwarp();
    s = 0.0f;
#pragma unroll
    for (int e = 0; e < 8; ++e) s = fmaf(x[e], kr[e], s);
    s += __shfl_xor_sync(0xffffffffu, s, 1);
    if (half == 0) sRowB[col / kTile * kC + i] = s;
    const float b = sBeta[i];
    float* xw = mine + r16 * kTile + half;
#pragma unroll
    for (int e = 0; e < 8; ++e) xw[e] *= b;
    __syncwarp();
    wmma::load_matrix_sync(Q, mine, kTile, wmma::mem_row_major);
#pragma unroll
    for (int e = 0; e < R.num_elements; ++e) R.x[e] += Q.x[e];
    __syncwarp();
    wmma::store_matrix_sync(mine, R, kTile, wmma::mem_row_major);
    __syncwarp();
    float* dk = p.dk + (chunk * kC + i) * KD + c;
    float4 d0 = reinterpret_cast<float4*>(dk)[0], d1 = reinterpret_cast<float4*>(dk)[1];
    d0 = make_float4(d0.x + x[0], d0.y + x[1], d0.z + x[2], d0.w + x[3]);
    d1 = make_float4(d1.x + x[4], d1.y + x[5], d1.z + x[6], d1.w + x[7]);
    reinterpret_cast<float4*>(dk)[0] = d0;
    reinterpret_cast<float4*>(dk)[1] = d1;
    __syncwarp();
  }
  __syncthreads();
  if (threadIdx.x < kC) {
    const int i = threadIdx.x;
    float db = sDbV[i], dg = 0.0f;
#pragma unroll
    for (int kt = 0; kt < L::kKTiles; ++kt) {
      db += sRowB[kt * kC + i];
      dg += sRowG[kt * kC + i];
    }
    p.dbeta[chunk * kC + i] = db;
    if (gated) p.dg[chunk * kC + i] += sBeta[i] * dg + sM[i];
  }
}

}  // namespace

bool chunk_ut_backward_supports(int64_t K, int64_t V) { return chunk_parallel::supports(K, V); }

void chunk_ut_backward(const ChunkUtBackwardParams& p, void* stream) {
  if (!p.k || !p.v || !p.beta || !p.a || !p.tinv || !p.dw || !p.du || !p.dk || !p.dv || !p.dbeta) {
    throw std::runtime_error("chunk_ut_backward: k, v, beta, a, tinv, dw, du, dk, dv and dbeta are required");
  }
  if ((p.g == nullptr) != (p.dg == nullptr)) {
    throw std::runtime_error("chunk_ut_backward: dg is updated where g is given, and only there");
  }
  if (!chunk_parallel::check("chunk_ut_backward", p.BH, p.NT, p.K, p.V,
                             {p.k, p.v, p.a, p.tinv, p.dw, p.du, p.dk, p.dv})) {
    return;
  }
  const auto kernel_of = [](auto kd, auto bv) { return chunk_ut_backward_kernel<decltype(kd)::value, decltype(bv)::value>; };
  const auto bytes_of = [](auto kd, auto bv) { return UtLayout<decltype(kd)::value, decltype(bv)::value>::kBytes; };
  chunk_parallel::launch("chunk_ut_backward", p, kThreads, kernel_of, bytes_of, static_cast<cudaStream_t>(stream));
}

}  // namespace deltabench::cuda
