#pragma once
// The fused chunked forward of the family (kernels/common/cuda_kernels.h), version 2: tensor cores.
// The shared kernel, a template over the family's switches (the delta rule's update, the decay);
// each family's kernels/<family>/chunk_fwd.cu instantiates its own through chunk_forward_tc below,
// and kernels/common/chunk_forward.cu is the entry that checks the call and picks the family.
//
// One thread block of 16 warps per (sequence, head) walks the sequence's chunks of 64 tokens in
// order. The fp32 state S [K x V] lives in the warps' accumulator registers for the whole sequence
// (each warp owns K V / 4096 tiles of 16 x 16) and a bf16/fp16 copy of it sits in shared memory as
// an operand. Everything of a chunk stays in shared memory: q, k, v, the UT-transform inverse, the
// attention block P, w and v_new. Global memory sees q, k, v, beta, g in and o (and the final state)
// out, as in version 1; FLA's five kernels write and re-read A, w, u, v_new and a state per chunk.
//
// Per chunk (G: the chunk's cumulative log decay, 0 without g; products on tensor cores through WMMA,
// 16-bit operands and fp32 accumulation, the rest in fp32 on the SIMT cores):
//   P = lower(Q K^T * scale * exp(G_i - G_j))                                        tensor cores
//   A = strict_lower(diag(beta) K K^T * exp(G_i - G_j))                             tensor cores
//   Tinv = (I + A)^-1: the four 16 x 16 diagonal blocks by substitution (16 steps, not 64), then the
//          off-diagonal blocks one block row at a time                                 SIMT, fp32
//   W = Tinv diag(beta exp(G)) K,  v_new = Tinv diag(beta) V - W S                     tensor cores
//          (linear attention: v_new = V)
//   O = scale diag(exp(G)) Q S + P v_new                                             tensor cores
//   S = exp(G_last) S + K^T diag(exp(G_last - G)) v_new                   tensor cores, S in registers
// 16-bit operands round S, Tinv and P as FLA's kernels do; accumulation is fp32 throughout.
//
// Two more kinds of block serve the segment-parallel pass over long sequences (kernels/common/segments.h):
// with o null a block skips everything that only the output needs (q, Q K^T, P, O); a block with
// blockIdx.z = z > 0 computes column slice z - 1 of its sequence's transition M (S_end = M S_start +
// S_end(S_start = 0)) by running the recurrence from identity columns with v = 0.
//
// fp32 inputs go to version 1 (chunk_forward_simt.cu). See kernels/delta_rule/NOTES.md for speed.

#include "kernels/common/cuda_common.cuh"

#include <mma.h>

#include <cstdint>

namespace deltabench::cuda {
namespace {

namespace wmma = nvcuda::wmma;

constexpr int kC = 64;  // chunk
constexpr int kTile = 16;  // WMMA's m = n = k for 16-bit operands, and the inverse's diagonal blocks
constexpr int kWarps = 16;
constexpr int kThreads = kWarps * 32;
constexpr int kPad = 8;  // 16-bit elements of padding per row: consecutive rows start 16 bytes apart in
                         // the bank cycle, so the 8 rows of a tensor-core operand load hit distinct banks
constexpr int kLdF = kC + 4;  // fp32 C x C buffers
constexpr int kLdScratch = 24;  // fp32 16 x 16 scratch tiles: rows 96 bytes apart, so that a fragment
                                // store touches each bank at most twice (16 floats a row: four times)

// Byte offsets into dynamic shared memory; every buffer starts 32-byte aligned, as WMMA requires.
template <int KD, int VD>
struct Layout {
  static constexpr int kLdK = KD + kPad, kLdV = VD + kPad, kLdC = kC + kPad;
  static constexpr size_t kQ = 0;                                  // [C][kLdK]  q (exp(G)-scaled when gated)
  static constexpr size_t kK = kQ + 2 * kC * kLdK;                 // [C][kLdK]  k (tail-scaled for S)
  static constexpr size_t kV = kK + 2 * kC * kLdK;                 // [C][kLdV]  v, then v_new
  static constexpr size_t kW = kV + 2 * kC * kLdV;                 // [C][kLdK]  -W
  static constexpr size_t kS = kW + 2 * kC * kLdK;                 // [KD][kLdV] S as an operand
  static constexpr size_t kT1 = kS + 2 * KD * kLdV;                // [C][kLdC]  Tinv diag(beta exp(G))
  static constexpr size_t kT2 = kT1 + 2 * kC * kLdC;               // [C][kLdC]  Tinv diag(beta)
  static constexpr size_t kP = kT2 + 2 * kC * kLdC;                // [C][kLdC]  P
  static constexpr size_t kA = kP + 2 * kC * kLdC;                 // fp32 [C][kLdF]  K K^T, then A
  static constexpr size_t kF = kA + 4 * kC * kLdF;                 // fp32 [C][kLdF]  Q K^T, then Tinv
  static constexpr size_t kScratch = kF + 4 * kC * kLdF;           // fp32 [kWarps][kTile][kLdScratch]
  static constexpr size_t kVec = kScratch + 4 * kWarps * kTile * kLdScratch;  // fp32 [4][C]: beta, G, exp(G), tail
  static constexpr size_t kBytes = kVec + 4 * 4 * kC;
};

// The delta rules compute with fp16 operands even for bf16 inputs: 11 significant bits instead of 8 make
// each rounding of S, v_new, P, W and Tinv 8 times finer, which brings the output's relative RMS error
// from 0.0031-0.0043 (bf16 operands, H100, the GPU tests) under FLA's 0.003. Their state is bounded for
// unit-norm keys and beta in [0, 2]; inputs beyond fp16's range (|x| > 65504) overflow to inf.
// Linear attention's state grows with T, so it keeps the input's bf16 range.
template <bool kDelta, typename IO>
using Operand = std::conditional_t<kDelta, __half, IO>;

template <typename E>
using FragA = wmma::fragment<wmma::matrix_a, kTile, kTile, kTile, E, wmma::row_major>;
template <typename E>
using FragAT = wmma::fragment<wmma::matrix_a, kTile, kTile, kTile, E, wmma::col_major>;  // a transposed operand
template <typename E>
using FragB = wmma::fragment<wmma::matrix_b, kTile, kTile, kTile, E, wmma::row_major>;
template <typename E>
using FragBT = wmma::fragment<wmma::matrix_b, kTile, kTile, kTile, E, wmma::col_major>;
using Acc = wmma::fragment<wmma::accumulator, kTile, kTile, kTile, float>;

// acc += a[16 x 16k] b[16k x 16] over k blocks [k0, k1), a and b row-major 16-bit in shared memory.
template <typename E, typename FragBType = FragB<E>>
__device__ __forceinline__ void mma_rows(Acc& acc, const E* a, int lda, const E* b, int ldb, int k0, int k1,
                                         int b_step) {
  for (int kk = k0; kk < k1; ++kk) {
    FragA<E> fa;
    FragBType fb;
    wmma::load_matrix_sync(fa, a + kk * kTile, lda);
    wmma::load_matrix_sync(fb, b + kk * b_step, ldb);
    wmma::mma_sync(acc, fa, fb, acc);
  }
}

// acc[m] += A_m B for m < M over k blocks [0, k_end[m]). A_m is an operand of type FragAType at a[m] whose
// next k block starts a_step elements on; B (b, row-major, next k block b_step elements on) is shared by
// every m, so each of its fragments is loaded once for the M products: a warp's tiles share a column.
template <typename E, typename FragAType, int M>
__device__ __forceinline__ void mma_shared_b(Acc (&acc)[M], const E* const (&a)[M], int lda, int a_step,
                                             const int (&k_end)[M], const E* b, int ldb, int b_step) {
  int k_max = 0;
#pragma unroll
  for (int m = 0; m < M; ++m) k_max = k_end[m] > k_max ? k_end[m] : k_max;
  for (int kk = 0; kk < k_max; ++kk) {
    FragB<E> fb;
    wmma::load_matrix_sync(fb, b + kk * b_step, ldb);
#pragma unroll
    for (int m = 0; m < M; ++m) {
      if (kk < k_end[m]) {
        FragAType fa;
        wmma::load_matrix_sync(fa, a[m] + kk * a_step, lda);
        wmma::mma_sync(acc[m], fa, fb, acc[m]);
      }
    }
  }
}

// Writes a warp's accumulator tile, times `mul`, as 16-bit values at dst (row stride ld, even), straight
// from the fragment's registers: four 32-bit stores a lane, conflict-free for the padded operand rows.
// (Version 2 went through an fp32 scratch tile: a fragment store, a read back and a 16-byte store.) It
// relies on the sm_80+ layout of WMMA's m16n16k16 fp32 accumulator, two mma.m16n8k16 accumulators
// side by side (PTX ISA, "Matrix Fragments for mma.m16n8k16"): x[2j] and x[2j + 1] sit at row
// lane / 4 (+ 8 for odd j) and columns 2 (lane % 4) and one more (+ 8 for j >= 2). Any other layout
// scrambles S, W and v_new, which the GPU tests against the reference would show at once.
template <typename E>
__device__ __forceinline__ void store_tile(const Acc& acc, E* dst, int ld, int lane, float mul) {
  const int row = lane / 4, col = 2 * (lane % 4);
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    alignas(4) E pair[2] = {from_float<E>(acc.x[2 * j] * mul), from_float<E>(acc.x[2 * j + 1] * mul)};
    *reinterpret_cast<uint32_t*>(dst + (row + 8 * (j % 2)) * ld + col + 8 * (j / 2)) =
        *reinterpret_cast<const uint32_t*>(pair);
  }
}

// Eight 16-bit values from one type to another (a plain copy when they agree).
template <typename To, typename From>
__device__ __forceinline__ uint4 convert8(uint4 x) {
  if constexpr (std::is_same_v<To, From>) {
    return x;
  } else {
    const From* in = reinterpret_cast<const From*>(&x);
    alignas(16) To out[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) out[e] = from_float<To>(to_float(in[e]));
    return *reinterpret_cast<const uint4*>(out);
  }
}

// IO: the dtype of q, k, v and o. The tensor-core operands are fp16 for the delta rules whatever IO
// is (see Operand below), IO for linear attention.
template <int KD, int VD, bool kDelta, bool kGated, typename IO>
__global__ void __launch_bounds__(kThreads, 1) chunk_forward_tc_kernel(ChunkParams p) {
  using E = Operand<kDelta, IO>;
  using L = Layout<KD, VD>;
  constexpr int kLdK = L::kLdK, kLdV = L::kLdV, kLdC = L::kLdC;
  constexpr int kColTilesK = KD / kTile, kColTilesV = VD / kTile;
  constexpr int kStateTiles = kColTilesK * kColTilesV / kWarps;  // per warp
  constexpr int kVTiles = (kC / kTile) * kColTilesV / kWarps;       // of a [C x VD] result, per warp
  constexpr int kKTiles = (kC / kTile) * kColTilesK / kWarps;       // of a [C x KD] result, per warp
  static_assert(kStateTiles >= 1 && kVTiles >= 1 && kKTiles >= 1, "16 warps need K, V >= 64");

  extern __shared__ __align__(128) unsigned char smem[];
  E* sQ = reinterpret_cast<E*>(smem + L::kQ);
  E* sK = reinterpret_cast<E*>(smem + L::kK);
  E* sV = reinterpret_cast<E*>(smem + L::kV);
  E* sW = reinterpret_cast<E*>(smem + L::kW);
  E* sS = reinterpret_cast<E*>(smem + L::kS);
  E* sT1 = reinterpret_cast<E*>(smem + L::kT1);
  E* sT2 = reinterpret_cast<E*>(smem + L::kT2);
  E* sP = reinterpret_cast<E*>(smem + L::kP);
  float* sA = reinterpret_cast<float*>(smem + L::kA);
  float* sF = reinterpret_cast<float*>(smem + L::kF);
  float* scratch_all = reinterpret_cast<float*>(smem + L::kScratch);
  float* sBeta = reinterpret_cast<float*>(smem + L::kVec);
  float* sG = sBeta + kC;
  float* sEG = sG + kC;
  float* sTail = sEG + kC;

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  float* scratch = scratch_all + warp * kTile * kLdScratch;
  const int64_t h = blockIdx.x, n = blockIdx.y, H = p.H;
  const int z = static_cast<int>(blockIdx.z);  // 0: the sequence itself; z > 0: transition slice z - 1
  const bool output = p.o != nullptr, transition = z > 0;
  const int64_t start = p.seq_starts[n], length = p.seq_starts[n + 1] - start;
  const IO* q = static_cast<const IO*>(p.q);
  const IO* k = static_cast<const IO*>(p.k);
  const IO* v = static_cast<const IO*>(p.v);
  IO* o = static_cast<IO*>(p.o);
  const int64_t state_offset = (n * H + h) * KD * VD;
  const int64_t final_offset = ((z * p.N + n) * H + h) * KD * VD;

  // The state: warp w owns tiles w, w + 16, ... of the [KD/16 x VD/16] grid of 16 x 16 tiles. A
  // transition block starts from columns (z - 1) VD ... z VD - 1 of the KD x KD identity.
  Acc state[kStateTiles];
#pragma unroll
  for (int m = 0; m < kStateTiles; ++m) {
    const int t = warp + kWarps * m, r = (t / kColTilesV) * kTile, c = (t % kColTilesV) * kTile;
    if (transition) {
      for (int e = lane; e < kTile * kTile; e += 32) {
        scratch[e / kTile * kLdScratch + e % kTile] = r + e / kTile == (z - 1) * VD + c + e % kTile ? 1.0f : 0.0f;
      }
      __syncwarp();
      wmma::load_matrix_sync(state[m], scratch, kLdScratch, wmma::mem_row_major);
      __syncwarp();
    } else if (p.h0) {
      wmma::load_matrix_sync(state[m], p.h0 + state_offset + int64_t{r} * VD + c, VD, wmma::mem_row_major);
    } else {
      wmma::fill_fragment(state[m], 0.0f);
    }
    store_tile(state[m], sS + r * kLdV + c, kLdV, lane, 1.0f);
  }

  for (int64_t t0 = 0; t0 < length; t0 += kC) {
    const int rows = static_cast<int>(length - t0 < kC ? length - t0 : kC);
    const int64_t tok0 = start + t0;
    __syncthreads();  // the previous chunk is done with sQ, sK, sV and the vectors

    // Load q, k, v (16-byte vectors; rows past the sequence are zero; q only for an output, v zero for
    // a transition) and beta, G, exp(G), the tail.
    for (int idx = tid; idx < kC * (KD / 8); idx += kThreads) {
      const int i = idx / (KD / 8), c = (idx % (KD / 8)) * 8;
      uint4 qv = make_uint4(0, 0, 0, 0), kv = qv;
      if (i < rows) {
        const int64_t at = ((tok0 + i) * H + h) * KD + c;
        if (output) qv = convert8<E, IO>(*reinterpret_cast<const uint4*>(q + at));
        kv = convert8<E, IO>(*reinterpret_cast<const uint4*>(k + at));
      }
      *reinterpret_cast<uint4*>(sQ + i * kLdK + c) = qv;
      *reinterpret_cast<uint4*>(sK + i * kLdK + c) = kv;
    }
    for (int idx = tid; idx < kC * (VD / 8); idx += kThreads) {
      const int i = idx / (VD / 8), c = (idx % (VD / 8)) * 8;
      uint4 vv = make_uint4(0, 0, 0, 0);
      if (i < rows && !transition) {
        vv = convert8<E, IO>(*reinterpret_cast<const uint4*>(v + ((tok0 + i) * H + h) * VD + c));
      }
      *reinterpret_cast<uint4*>(sV + i * kLdV + c) = vv;
    }
    if (warp == 0) {  // two rows per lane; an inclusive scan of the log decay across the warp
      const int i0 = 2 * lane, i1 = i0 + 1;
      float g0 = 0.0f, g1 = 0.0f;
      if (kDelta) {
        sBeta[i0] = i0 < rows ? p.beta[(tok0 + i0) * H + h] : 0.0f;
        sBeta[i1] = i1 < rows ? p.beta[(tok0 + i1) * H + h] : 0.0f;
      }
      if (kGated) {
        g0 = i0 < rows ? p.g[(tok0 + i0) * H + h] : 0.0f;
        g1 = i1 < rows ? p.g[(tok0 + i1) * H + h] : 0.0f;
        g1 += g0;
        float x = g1;
#pragma unroll
        for (int off = 1; off < 32; off <<= 1) {
          const float y = __shfl_up_sync(0xffffffffu, x, off);
          if (lane >= off) x += y;
        }
        g0 += x - g1;
        g1 = x;
        const float g_last = __shfl_sync(0xffffffffu, (rows - 1) % 2 ? g1 : g0, (rows - 1) / 2);
        sG[i0] = g0;
        sG[i1] = g1;
        sEG[i0] = expf(g0);
        sEG[i1] = expf(g1);
        sTail[i0] = i0 < rows ? expf(g_last - g0) : 0.0f;
        sTail[i1] = i1 < rows ? expf(g_last - g1) : 0.0f;
      }
    }
    __syncthreads();

    // Q K^T (for an output) and K K^T (delta rules) on the ten lower-triangular 16 x 16 tiles of the chunk.
    constexpr int kTri = 10;
    for (int job = (output ? 0 : kTri) + warp; job < (kDelta ? 2 * kTri : kTri); job += kWarps) {
      const bool kk = job >= kTri;
      const int tri = kk ? job - kTri : job;
      int ti = 0;
      while ((ti + 1) * (ti + 2) / 2 <= tri) ++ti;
      const int tj = tri - ti * (ti + 1) / 2;
      Acc acc;
      wmma::fill_fragment(acc, 0.0f);
      // B = K^T: element (c, j) at sK[j][c], a column-major operand.
      mma_rows<E, FragBT<E>>(acc, (kk ? sK : sQ) + ti * kTile * kLdK, kLdK, sK + tj * kTile * kLdK, kLdK, 0,
                             kColTilesK, kTile);
      wmma::store_matrix_sync((kk ? sA : sF) + ti * kTile * kLdF + tj * kTile, acc, kLdF, wmma::mem_row_major);
    }
    __syncthreads();

    // P and A elementwise (masks, decay, beta, scale); q rows take exp(G) for the inter-chunk term.
    for (int idx = tid; idx < kC * kC; idx += kThreads) {
      const int i = idx / kC, j = idx % kC;
      const bool lower = j <= i && i < rows;
      const float decay = kGated && lower ? expf(sG[i] - sG[j]) : 1.0f;
      if (output) sP[i * kLdC + j] = from_float<E>(lower ? sF[i * kLdF + j] * p.scale * decay : 0.0f);
      if (kDelta) sA[i * kLdF + j] = lower && j < i ? sBeta[i] * sA[i * kLdF + j] * decay : 0.0f;
    }
    if (kGated && output) {
      for (int idx = tid; idx < kC * KD; idx += kThreads) {
        const int i = idx / KD, c = idx % KD;
        sQ[i * kLdK + c] = from_float<E>(to_float(sQ[i * kLdK + c]) * sEG[i]);
      }
    }
    __syncthreads();

    if constexpr (kDelta) {
      // Tinv = (I + A)^-1 into sF. First the four diagonal blocks, one thread per column of one block.
      if (tid < kC) {
        const int base = (tid / kTile) * kTile, c = tid % kTile;
        float x[kTile];
#pragma unroll
        for (int i = 0; i < kTile; ++i) {
          float acc = i == c ? 1.0f : 0.0f;
#pragma unroll
          for (int j = 0; j < i; ++j) acc = fmaf(-sA[(base + i) * kLdF + base + j], x[j], acc);
          x[i] = i < c ? 0.0f : acc;
        }
#pragma unroll
        for (int i = 0; i < kTile; ++i) sF[(base + i) * kLdF + base + c] = x[i];
      }
      __syncthreads();
      // Then block row bi from the rows above it: Tinv[bi][bj] = -Tinv[bi][bi] sum_k A[bi][k] Tinv[k][bj].
      float* X = scratch_all;  // [bi][16][16]
      for (int bi = 1; bi < 4; ++bi) {
        for (int idx = tid; idx < bi * kTile * kTile; idx += kThreads) {
          const int bj = idx / (kTile * kTile), r = (idx / kTile) % kTile, c = idx % kTile;
          const float* a = sA + (bi * kTile + r) * kLdF;
          float acc = 0.0f;
          for (int kx = bj * kTile; kx < bi * kTile; ++kx) acc = fmaf(a[kx], sF[kx * kLdF + bj * kTile + c], acc);
          X[idx] = acc;
        }
        __syncthreads();
        for (int idx = tid; idx < bi * kTile * kTile; idx += kThreads) {
          const int bj = idx / (kTile * kTile), r = (idx / kTile) % kTile, c = idx % kTile;
          const float* t = sF + (bi * kTile + r) * kLdF + bi * kTile;
          float acc = 0.0f;
          for (int kx = 0; kx <= r; ++kx) acc = fmaf(t[kx], X[bj * kTile * kTile + kx * kTile + c], acc);
          sF[(bi * kTile + r) * kLdF + bj * kTile + c] = -acc;
        }
        __syncthreads();
      }
      for (int idx = tid; idx < kC * kC; idx += kThreads) {
        const int i = idx / kC, j = idx % kC;
        const float t = j <= i ? sF[i * kLdF + j] * sBeta[j] : 0.0f;
        sT2[i * kLdC + j] = from_float<E>(t);
        sT1[i * kLdC + j] = from_float<E>(kGated ? t * sEG[j] : t);
      }
      __syncthreads();

      // -W = -T1 K (T1 lower triangular: block row ti needs k blocks 0..ti). A warp's tiles share a
      // column tile (tc = warp % column tiles), hence their B fragments.
      {
        Acc w[kKTiles];
        const E* a[kKTiles];
        int k_end[kKTiles];
#pragma unroll
        for (int m = 0; m < kKTiles; ++m) {
          const int ti = (warp + kWarps * m) / kColTilesK;
          wmma::fill_fragment(w[m], 0.0f);
          a[m] = sT1 + ti * kTile * kLdC;
          k_end[m] = ti + 1;
        }
        const int tc = warp % kColTilesK;
        mma_shared_b<E, FragA<E>>(w, a, kLdC, kTile, k_end, sK + tc * kTile, kLdK, kTile * kLdK);
#pragma unroll
        for (int m = 0; m < kKTiles; ++m) {
          const int ti = (warp + kWarps * m) / kColTilesK;
          store_tile(w[m], sW + ti * kTile * kLdK + tc * kTile, kLdK, lane, -1.0f);
        }
      }
      __syncthreads();
      // v_new = T2 V + (-W) S, kept in registers until every warp is done reading V.
      Acc u[kVTiles];
      {
        const E* a[kVTiles];
        int k_end[kVTiles];
        const int tc = warp % kColTilesV;
#pragma unroll
        for (int m = 0; m < kVTiles; ++m) {
          const int ti = (warp + kWarps * m) / kColTilesV;
          wmma::fill_fragment(u[m], 0.0f);
          a[m] = sT2 + ti * kTile * kLdC;
          k_end[m] = ti + 1;
        }
        if (!transition) {  // V = 0
          mma_shared_b<E, FragA<E>>(u, a, kLdC, kTile, k_end, sV + tc * kTile, kLdV, kTile * kLdV);
        }
#pragma unroll
        for (int m = 0; m < kVTiles; ++m) {
          a[m] = sW + ((warp + kWarps * m) / kColTilesV) * kTile * kLdK;
          k_end[m] = kColTilesK;
        }
        mma_shared_b<E, FragA<E>>(u, a, kLdK, kTile, k_end, sS + tc * kTile, kLdV, kTile * kLdV);
      }
      __syncthreads();
#pragma unroll
      for (int m = 0; m < kVTiles; ++m) {
        const int t = warp + kWarps * m, ti = t / kColTilesV, tc = t % kColTilesV;
        store_tile(u[m], sV + ti * kTile * kLdV + tc * kTile, kLdV, lane, 1.0f);
      }
      __syncthreads();
    }

    // O = scale (diag(exp(G)) Q) S + P v_new, written to global memory through the warp's scratch.
    if (output) {
      Acc acc[kVTiles];
      const E* a[kVTiles];
      int k_end[kVTiles];
      const int tc = warp % kColTilesV;
#pragma unroll
      for (int m = 0; m < kVTiles; ++m) {
        wmma::fill_fragment(acc[m], 0.0f);
        a[m] = sQ + ((warp + kWarps * m) / kColTilesV) * kTile * kLdK;
        k_end[m] = kColTilesK;
      }
      mma_shared_b<E, FragA<E>>(acc, a, kLdK, kTile, k_end, sS + tc * kTile, kLdV, kTile * kLdV);
#pragma unroll
      for (int m = 0; m < kVTiles; ++m) {
        const int ti = (warp + kWarps * m) / kColTilesV;
#pragma unroll
        for (int e = 0; e < acc[m].num_elements; ++e) acc[m].x[e] *= p.scale;
        a[m] = sP + ti * kTile * kLdC;
        k_end[m] = ti + 1;
      }
      mma_shared_b<E, FragA<E>>(acc, a, kLdC, kTile, k_end, sV + tc * kTile, kLdV, kTile * kLdV);
#pragma unroll
      for (int m = 0; m < kVTiles; ++m) {
        const int ti = (warp + kWarps * m) / kColTilesV;
        wmma::store_matrix_sync(scratch, acc[m], kLdScratch, wmma::mem_row_major);
        __syncwarp();
        const int r = lane / 2, c0 = (lane % 2) * 8, row = ti * kTile + r;
        if (row < rows) {
          alignas(16) IO out[8];
#pragma unroll
          for (int e = 0; e < 8; ++e) out[e] = from_float<IO>(scratch[r * kLdScratch + c0 + e]);
          *reinterpret_cast<uint4*>(o + ((tok0 + row) * H + h) * VD + tc * kTile + c0) =
              *reinterpret_cast<const uint4*>(out);
        }
        __syncwarp();
      }
    }
    if (kGated) {  // k rows take the tail decay for the state update (nothing above reads k any more)
      for (int idx = tid; idx < kC * KD; idx += kThreads) {
        const int i = idx / KD, c = idx % KD;
        sK[i * kLdK + c] = from_float<E>(to_float(sK[i * kLdK + c]) * sTail[i]);
      }
    }
    __syncthreads();

    // S = exp(G_last) S + K^T v_new, in registers; then its operand copy. A = K^T: element (r, j) at
    // sK[j][r], a column-major operand whose next k block is 16 rows of sK on.
    {
      const float carry = kGated ? expf(sG[rows - 1]) : 1.0f;
      const E* a[kStateTiles];
      int k_end[kStateTiles];
      const int tc = warp % kColTilesV;
#pragma unroll
      for (int m = 0; m < kStateTiles; ++m) {
        if (kGated) {
#pragma unroll
          for (int e = 0; e < state[m].num_elements; ++e) state[m].x[e] *= carry;
        }
        a[m] = sK + ((warp + kWarps * m) / kColTilesV) * kTile;
        k_end[m] = kC / kTile;
      }
      mma_shared_b<E, FragAT<E>>(state, a, kLdK, kTile * kLdK, k_end, sV + tc * kTile, kLdV, kTile * kLdV);
#pragma unroll
      for (int m = 0; m < kStateTiles; ++m) {
        const int tr = (warp + kWarps * m) / kColTilesV;
        store_tile(state[m], sS + tr * kTile * kLdV + tc * kTile, kLdV, lane, 1.0f);
      }
    }
  }

  if (p.ht) {
#pragma unroll
    for (int m = 0; m < kStateTiles; ++m) {
      const int t = warp + kWarps * m, r = (t / kColTilesV) * kTile, c = (t % kColTilesV) * kTile;
      wmma::store_matrix_sync(p.ht + final_offset + int64_t{r} * VD + c, state[m], VD, wmma::mem_row_major);
    }
  }
}

template <int KD, int VD, bool kDelta, bool kGated, typename IO>
void launch_tc(const ChunkParams& p, cudaStream_t stream) {
  auto kernel = chunk_forward_tc_kernel<KD, VD, kDelta, kGated, IO>;
  constexpr size_t bytes = Layout<KD, VD>::kBytes;
  static const bool reserved = (reserve_shared_memory(kernel, bytes, "chunk_forward"), true);
  (void)reserved;
  const dim3 grid(static_cast<unsigned>(p.H), static_cast<unsigned>(p.N), static_cast<unsigned>(1 + p.transitions));
  kernel<<<grid, kThreads, bytes, stream>>>(p);
  check_launch("chunk_forward");
}

template <bool kDelta, bool kGated, typename E>
void launch_tc_dims(const ChunkParams& p, cudaStream_t stream) {
  if (p.K == 64) {
    p.V == 64 ? launch_tc<64, 64, kDelta, kGated, E>(p, stream) : launch_tc<64, 128, kDelta, kGated, E>(p, stream);
  } else {
    p.V == 64 ? launch_tc<128, 64, kDelta, kGated, E>(p, stream) : launch_tc<128, 128, kDelta, kGated, E>(p, stream);
  }
}

// The tensor-core forward with one family's switches, for bf16 and fp16 inputs (the entry has checked
// the call): what kernels/<family>/chunk_fwd.cu instantiates.
template <bool kDelta, bool kGated>
void chunk_forward_tc(const ChunkParams& p, cudaStream_t stream) {
  if (p.dtype == Dtype::kBF16) {
    launch_tc_dims<kDelta, kGated, __nv_bfloat16>(p, stream);
  } else {
    launch_tc_dims<kDelta, kGated, __half>(p, stream);
  }
}

}  // namespace
}  // namespace deltabench::cuda
