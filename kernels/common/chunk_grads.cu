// The chunked backward's gradients through the output and the state walk (kernels/common/cuda_kernels.h,
// ChunkGradsParams): what kernels/common/chunk_train.cpp's `walk_grads` computes with ATen as six
// batched products and a dozen elementwise passes over [N, H, NT, C, *] fp32 tensors, here one block a
// chunk that reads the chunk's h, dh, dout, v_new, dv_new, q and k once and writes dq, dk, dW and dG once.
//
// Per chunk of C = 64 tokens (G the within-chunk cumulative log decay; zero, so every exp 1, without one):
//   d_attn = (dout v_new^T) * decay          decay_ij = exp(G_i - G_j) for j <= i, else 0
//   dq     = diag(e^G) dout h^T + d_attn k
//   dk     = d_attn^T q + diag(e^(G_C - G)) v_new dh^T
//   dW     = -dv_new h^T                     (where the family has a W)
//   dG_i   = sum over K of (dq q - dk k)_i,  and dG_C += sum of (diag(e^(G_C - G)) v_new dh^T) k + e^G_C sum(h dh)
// (the last two terms are the chunk's end: the keys decayed to it and the state's decay).
//
// Products on tensor cores, TF32 operands (10 significant bits) and fp32 accumulation, as the walks take
// them for 16-bit inputs (kernels/common/chunk_state.cu); fp32 inputs keep the ATen stages' fp32 products.
// 16 warps; every output tile of 16 x 16 (d_attn's [C x C], dq's, dk's and dW's [C x K]) stays in one
// warp's accumulators while the block walks V in slices of BV columns, staged in shared memory by
// asynchronous copies into two buffers (version 5): slice s + 1 is in flight while slice s's products
// run. The row scales e^G (dq's term dout h^T) and e^(G_C - G) (dk's v_new dh^T) are applied to those
// accumulators once, after the walk, through a per-warp scratch tile. Then d_attn is masked in shared
// memory and its two products with k and q are added; the row sums of dG go through the scratch tile,
// whose layout, unlike an accumulator fragment's, is known. Every sum has a fixed order: the same
// inputs give the same bits.

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

// What a block's output tiles are and where its shared memory goes, for head dim KD and V slices of BV.
template <int KD, int BV>
struct Layout {
  static constexpr int kLdV = BV + kPad, kLdK = KD + kPad, kLdC = kC + kPad;
  static constexpr int kRowTiles = kC / kTile, kKTiles = KD / kTile;
  // The tiles, in this order: d_attn [C x C], then dq, dk and dW [C x KD]; tile t is warp t % kWarps's.
  static constexpr int kAttnTiles = kRowTiles * kRowTiles, kOutTiles = kRowTiles * kKTiles;
  static constexpr int kTiles = kAttnTiles + 3 * kOutTiles;
  static constexpr int kPerWarp = (kTiles + kWarps - 1) / kWarps;
  // Shared memory in floats. A V slice's staging (dout, v_new, dv_new [C x BV]; h and dh [KD x BV]), two
  // such buffers, which the second phase reuses for d_attn [C x C], q and k [C x KD].
  static constexpr int kStage = 3 * kC * kLdV + 2 * KD * kLdV;
  static constexpr int kPhase2 = kC * kLdC + 2 * kC * kLdK;
  static constexpr int kUnion = 2 * kStage > kPhase2 ? 2 * kStage : kPhase2;
  static constexpr int kScratch = kWarps * kTile * kTile;  // a tile a warp
  // G, e^G, e^(G_C - G); dG's row sums of dq q and dk k per K tile; the warps' sums of the end term and h dh.
  static constexpr int kSmall = 3 * kC + 2 * kKTiles * kC + 2 * kWarps;
  static constexpr size_t kBytes = sizeof(float) * (kUnion + kScratch + kSmall);
  static_assert(kStage % 8 == 0 && kPhase2 % 8 == 0 && kScratch % 8 == 0 && kC * kLdV % 8 == 0,
                "WMMA's shared tiles must start on 32-byte boundaries");
  static_assert(kBytes <= 163 * 1024, "more shared memory than an A100's block may have");
  static_assert(kPerWarp * 8 <= 64, "a warp's accumulators would not fit its registers");
};

enum TileKind { kAttn = 0, kDq = 1, kDk = 2, kDw = 3 };

struct TileId {
  int kind, row, col;  // the tile's kind and its first row and column
};

template <int KD, int BV>
__device__ __forceinline__ TileId tile_id(int t) {
  using L = Layout<KD, BV>;
  if (t < L::kAttnTiles) return {kAttn, t / L::kRowTiles * kTile, t % L::kRowTiles * kTile};
  t -= L::kAttnTiles;
  const int kind = kDq + t / L::kOutTiles;
  t %= L::kOutTiles;
  return {kind, t / L::kKTiles * kTile, t % L::kKTiles * kTile};
}

// acc's rows times scale[row0 + row], through the warp's scratch tile `mine` (free before and after).
__device__ __forceinline__ void scale_rows(Acc& acc, float* mine, const float* scale, int row0, int lane) {
  wmma::store_matrix_sync(mine, acc, kTile, wmma::mem_row_major);
  __syncwarp();
  const int r = lane / 2, half = 8 * (lane % 2);
  const float s = scale[row0 + r];
#pragma unroll
  for (int e = 0; e < 8; ++e) mine[r * kTile + half + e] *= s;
  __syncwarp();
  wmma::load_matrix_sync(acc, mine, kTile, wmma::mem_row_major);
  __syncwarp();
}

template <int KD, int BV>
__global__ void __launch_bounds__(kThreads, 1) chunk_grads_kernel(ChunkGradsParams p) {
  using L = Layout<KD, BV>;
  constexpr int kLdV = L::kLdV, kLdK = L::kLdK, kLdC = L::kLdC;
  extern __shared__ __align__(128) float smem[];
  // Phase 1: the V slices, buffer b of two at smem + b * kStage.
  const auto sDo = [&](int b) { return smem + b * L::kStage; };  // [C][kLdV] dout
  const auto sVn = [&](int b) { return sDo(b) + kC * kLdV; };    // [C][kLdV] v_new
  const auto sDvn = [&](int b) { return sVn(b) + kC * kLdV; };   // [C][kLdV] dv_new
  const auto sH = [&](int b) { return sDvn(b) + kC * kLdV; };    // [KD][kLdV] h
  const auto sDh = [&](int b) { return sH(b) + KD * kLdV; };     // [KD][kLdV] dh
  // Phase 2, over the same memory.
  float* sDA = smem;                  // [C][kLdC] d_attn
  float* sQ = sDA + kC * kLdC;        // [C][kLdK]
  float* sK = sQ + kC * kLdK;         // [C][kLdK]
  float* scratch = smem + L::kUnion;  // [kWarps][16 x 16]
  float* sG = scratch + L::kScratch;  // [C]
  float* sEG = sG + kC;               // [C] e^G
  float* sTail = sEG + kC;            // [C] e^(G_C - G)
  float* sRowQ = sTail + kC;          // [kKTiles][C] row sums of dq q over each K tile
  float* sRowK = sRowQ + L::kKTiles * kC;  // [kKTiles][C] of dk k
  float* sEnd = sRowK + L::kKTiles * kC;   // [kWarps] the end term's sums
  float* sHdh = sEnd + kWarps;             // [kWarps] h dh's sums

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t chunk = blockIdx.x, V = p.V;
  const bool gated = p.g != nullptr, has_w = p.dw != nullptr;
  const float* dout = p.dout + chunk * kC * V;
  const float* v_new = p.v_new + chunk * kC * V;
  const float* dv_new = p.dv_new + chunk * kC * V;
  const float* h = p.h + chunk * KD * V;
  const float* dh = p.dh + chunk * KD * V;
  float* mine = scratch + warp * kTile * kTile;

  // Slice v0 into buffer b, one commit group (dv_new only where there is a W to take its product).
  const auto request = [&](int b, int64_t v0) {
    chunk_parallel::request_slice<BV>(sDo(b), kLdV, dout, kC, V, v0);
    chunk_parallel::request_slice<BV>(sVn(b), kLdV, v_new, kC, V, v0);
    if (has_w) chunk_parallel::request_slice<BV>(sDvn(b), kLdV, dv_new, kC, V, v0);
    chunk_parallel::request_slice<BV>(sH(b), kLdV, h, KD, V, v0);
    chunk_parallel::request_slice<BV>(sDh(b), kLdV, dh, KD, V, v0);
    commit_copies();
  };
  request(0, 0);

  if (threadIdx.x < kC) sG[threadIdx.x] = gated ? p.g[chunk * kC + threadIdx.x] : 0.0f;
  __syncthreads();
  if (threadIdx.x < kC) {
    const float g = sG[threadIdx.x];
    sEG[threadIdx.x] = gated ? expf(g) : 1.0f;
    sTail[threadIdx.x] = gated ? expf(sG[kC - 1] - g) : 1.0f;
  }
  // (the first slice's barrier below makes these visible)

  Acc acc[L::kPerWarp];
#pragma unroll
  for (int m = 0; m < L::kPerWarp; ++m) wmma::fill_fragment(acc[m], 0.0f);
  float hdh = 0.0f;  // this thread's part of sum(h dh)

  int b = 0;
  for (int64_t v0 = 0; v0 < V; v0 += BV, b ^= 1) {
    wait_copies<0>();
    // This thread's copies of the slice are here: the gated rule's part of sum(h dh) from them in fp32,
    // then each rounded to TF32 once (version 5b), as every product reads them.
    if (gated) {
      for (int idx = threadIdx.x; idx < KD * BV / 4; idx += kThreads) {
        const int at = idx / (BV / 4) * kLdV + 4 * (idx % (BV / 4));
        const float4 x = *reinterpret_cast<const float4*>(sH(b) + at);
        const float4 d = *reinterpret_cast<const float4*>(sDh(b) + at);
        hdh = fmaf(x.x, d.x, fmaf(x.y, d.y, fmaf(x.z, d.z, fmaf(x.w, d.w, hdh))));
      }
    }
    chunk_parallel::round_own_slice<BV>(sDo(b), kLdV, kC);
    chunk_parallel::round_own_slice<BV>(sVn(b), kLdV, kC);
    if (has_w) chunk_parallel::round_own_slice<BV>(sDvn(b), kLdV, kC);
    chunk_parallel::round_own_slice<BV>(sH(b), kLdV, KD);
    chunk_parallel::round_own_slice<BV>(sDh(b), kLdV, KD);
    // Slice v0 landed and rounded for every thread, and every warp is done with the other buffer (the
    // last slice's products), which the next slice's copies now take.
    __syncthreads();
    if (v0 + BV < V) {
      request(b ^ 1, v0 + BV);
    }
    const float* do_s = sDo(b);
    const float* vn_s = sVn(b);
    const float* dvn_s = sDvn(b);
    const float* h_s = sH(b);
    const float* dh_s = sDh(b);

#pragma unroll
    for (int m = 0; m < L::kPerWarp; ++m) {
      const int t = warp + kWarps * m;
      if (t >= L::kTiles) continue;
      const TileId id = tile_id<KD, BV>(t);
      // Each product: A's rows are the tile's rows of a [C x BV] slice; B^T's rows the tile's columns of
      // a [C x BV] or [KD x BV] slice, read column-major.
      const float* a = nullptr;
      const float* bt = nullptr;
      switch (id.kind) {
        case kAttn:  // dout v_new^T; tiles above the diagonal are masked whole, not computed
          if (id.col <= id.row) {
            a = do_s;
            bt = vn_s;
          }
          break;
        case kDq: a = do_s, bt = h_s; break;   // dout h^T (times e^G after the walk)
        case kDk: a = vn_s, bt = dh_s; break;  // v_new dh^T (times e^(G_C - G) after the walk)
        default:  // dv_new h^T (negated at the end)
          if (has_w) {
            a = dvn_s;
            bt = h_s;
          }
          break;
      }
      if (a == nullptr) continue;
#pragma unroll
      for (int vv = 0; vv < BV; vv += kTileK) {
        mma_step<FragA, FragBT, false, false>(acc[m], a + id.row * kLdV + vv, kLdV, bt + id.col * kLdV + vv, kLdV);
      }
    }
  }
  __syncthreads();  // the staging buffers free for phase 2 (no copy is in flight: the last slice requested none)

  // Phase 2: q and k requested beside d_attn, which goes into shared memory (masked below); meanwhile
  // the gated rule's dq and dk terms take their row scales.
  chunk_parallel::request_slice<KD>(sQ, kLdK, p.q + chunk * kC * KD, kC, KD, 0);
  chunk_parallel::request_slice<KD>(sK, kLdK, p.k + chunk * kC * KD, kC, KD, 0);
  commit_copies();
#pragma unroll
  for (int m = 0; m < L::kPerWarp; ++m) {
    const int t = warp + kWarps * m;
    if (t >= L::kTiles) continue;
    const TileId id = tile_id<KD, BV>(t);
    if (id.kind == kAttn) wmma::store_matrix_sync(sDA + id.row * kLdC + id.col, acc[m], kLdC, wmma::mem_row_major);
    if (gated && id.kind == kDq) scale_rows(acc[m], mine, sEG, id.row, lane);
    if (gated && id.kind == kDk) scale_rows(acc[m], mine, sTail, id.row, lane);
  }
  wait_copies<0>();
  __syncthreads();
  for (int idx = threadIdx.x; idx < kC * kC; idx += kThreads) {
    const int i = idx / kC, j = idx % kC;
    float& x = sDA[i * kLdC + j];
    x = j > i ? 0.0f : to_tf32(gated ? x * expf(sG[i] - sG[j]) : x);  // an operand only: rounded once
  }
  __syncthreads();

  const int r = lane / 2, half = 8 * (lane % 2);  // a lane's row of the scratch tile and its 8 columns
  float end = 0.0f;                               // this lane's part of the end term
  // Writes acc, a finished tile of dq or dk, to out's rows (ld KD) through the scratch tile, and each of
  // its rows' sums with `with` (ld kLdK) to rows[K tile][row]. A lane takes 8 columns of one row.
  const auto finish = [&](const TileId& id, const Acc& tile, float* out, const float* with, float* rows) {
    wmma::store_matrix_sync(mine, tile, kTile, wmma::mem_row_major);
    __syncwarp();
    const float* x = mine + r * kTile + half;
    const int col = id.col + half;
    float* dst = out + (chunk * kC + id.row + r) * KD + col;
    reinterpret_cast<float4*>(dst)[0] = make_float4(x[0], x[1], x[2], x[3]);
    reinterpret_cast<float4*>(dst)[1] = make_float4(x[4], x[5], x[6], x[7]);
    float s = 0.0f;
#pragma unroll
    for (int e = 0; e < 8; ++e) s = fmaf(x[e], with[(id.row + r) * kLdK + col + e], s);
    s += __shfl_xor_sync(0xffffffffu, s, 1);
    if (half == 0) rows[id.col / kTile * kC + id.row + r] = s;
    __syncwarp();  // the scratch tile free again
  };
#pragma unroll
  for (int m = 0; m < L::kPerWarp; ++m) {
    const int t = warp + kWarps * m;
    if (t >= L::kTiles) continue;
    const TileId id = tile_id<KD, BV>(t);
    if (id.kind == kDq) {  // + d_attn k: d_attn's row block, up to the diagonal
      for (int jj = 0; jj < id.row + kTile; jj += kTileK) {
        mma_step<FragA, FragB, false>(acc[m], sDA + id.row * kLdC + jj, kLdC, sK + jj * kLdK + id.col, kLdK);
      }
      finish(id, acc[m], p.dq, sQ, sRowQ);
    } else if (id.kind == kDk) {
      if (gated) {  // the end term, before d_attn's part joins
        wmma::store_matrix_sync(mine, acc[m], kTile, wmma::mem_row_major);
        __syncwarp();
        const float* x = mine + r * kTile + half;
#pragma unroll
        for (int e = 0; e < 8; ++e) end = fmaf(x[e], sK[(id.row + r) * kLdK + id.col + half + e], end);
        __syncwarp();
      }
      // + d_attn^T q: d_attn's column block, from the diagonal down.
      for (int jj = id.row; jj < kC; jj += kTileK) {
        mma_step<FragAT, FragB, false>(acc[m], sDA + jj * kLdC + id.row, kLdC, sQ + jj * kLdK + id.col, kLdK);
      }
      finish(id, acc[m], p.dk, sK, sRowK);
    } else if (id.kind == kDw && has_w) {
#pragma unroll
      for (int e = 0; e < acc[m].num_elements; ++e) acc[m].x[e] = -acc[m].x[e];
      wmma::store_matrix_sync(p.dw + (chunk * kC + id.row) * KD + id.col, acc[m], KD, wmma::mem_row_major);
    }
  }
  if (!gated) return;
  end = warp_sum(end);
  hdh = warp_sum(hdh);
  if (lane == 0) {
    sEnd[warp] = end;
    sHdh[warp] = hdh;
  }
  __syncthreads();
  if (threadIdx.x < kC) {
    const int i = threadIdx.x;
    float dg = 0.0f;
#pragma unroll
    for (int kt = 0; kt < L::kKTiles; ++kt) dg += sRowQ[kt * kC + i] - sRowK[kt * kC + i];
    if (i == kC - 1) {
      float e = 0.0f, s = 0.0f;
      for (int w = 0; w < kWarps; ++w) {
        e += sEnd[w];
        s += sHdh[w];
      }
      dg += e + expf(sG[kC - 1]) * s;
    }
    p.dg[chunk * kC + i] = dg;
  }
}

}  // namespace

bool chunk_grads_supports(int64_t K, int64_t V) { return chunk_parallel::supports(K, V); }

void chunk_grads(const ChunkGradsParams& p, void* stream) {
  if (!p.q || !p.k || !p.h || !p.dh || !p.v_new || !p.dv_new || !p.dout || !p.dq || !p.dk) {
    throw std::runtime_error("chunk_grads: q, k, h, dh, v_new, dv_new, dout, dq and dk are required");
  }
  if ((p.g == nullptr) != (p.dg == nullptr)) {
    throw std::runtime_error("chunk_grads: dg is written where g is given, and only there");
  }
  if (!chunk_parallel::check("chunk_grads", p.BH, p.NT, p.K, p.V,
                             {p.q, p.k, p.h, p.dh, p.v_new, p.dv_new, p.dout, p.dq, p.dk, p.dw})) {
    return;
  }
  const auto kernel_of = [](auto kd, auto bv) { return chunk_grads_kernel<decltype(kd)::value, decltype(bv)::value>; };
  const auto bytes_of = [](auto kd, auto bv) { return Layout<decltype(kd)::value, decltype(bv)::value>::kBytes; };
  chunk_parallel::launch("chunk_grads", p, kThreads, kernel_of, bytes_of, static_cast<cudaStream_t>(stream));
}

}  // namespace deltabench::cuda
