#pragma once
// The CUDA kernels of the family, behind plain structs of raw pointers (no ATen in the .cu files, so
// nvcc compiles them in seconds). The public ops in <family>/op.cpp validate, then call these for
// CUDA tensors when no gradient is needed.
//
// Layout as FLA's: q, k [tokens, H, K], v and o [tokens, H, V], beta and g [tokens, H], tokens being
// b * T + t (or the packed index with cu_seqlens); states [N, H, K, V] fp32.

#include "kernels/family_id.h"

#include <cstdint>

namespace deltabench::cuda {

enum class Dtype { kBF16, kFP16, kFP32 };

struct ChunkParams {
  Family family = Family::kDeltaRule;  // the gated delta rule is the delta rule with g
  Dtype dtype = Dtype::kBF16;       // of q, k, v and o
  const void *q = nullptr, *k = nullptr, *v = nullptr;
  const float* beta = nullptr;      // [tokens, H] fp32; delta rule only
  const float* g = nullptr;         // [tokens, H] fp32 per-step log decay, or null
  const float* h0 = nullptr;        // [N, H, K, V] or null
  void* o = nullptr;                // null: a state-only pass (nothing that only the output needs)
  float* ht = nullptr;              // [1 + transitions, N, H, K, V] or null
  const int64_t* seq_starts = nullptr;  // device [N + 1]: token offsets of the sequences
  int64_t N = 0, H = 0, K = 0, V = 0;
  float scale = 1.0f;
  // With o null, 1 to ceil(K / V) more passes, in the same launch, write the sequences' transitions:
  // ht[z] (z >= 1) is M E_z, M [K x K] being the map S_start -> S_end - S_end(S_start = 0) of the
  // sequence and E_z columns (z - 1) V ... z V - 1 of the K x K identity (zero past K). The
  // segment-parallel pass (kernels/common/segments.h) joins segments with them. bf16 and fp16 only.
  int64_t transitions = 0;
};

// The fused chunked forward (chunk 64): one pass over each sequence's chunks, intermediates on chip.
// Supports K, V in {64, 128}. bf16 and fp16 inputs run on tensor cores with fp32 accumulation; the delta
// rules round their operands to fp16 (finer than bf16; inputs beyond fp16's +-65504 overflow to inf and
// the output turns non-finite), linear attention to the input's dtype. fp32 inputs run version 1 on
// the SIMT cores in fp32. Throws std::runtime_error on a launch failure or misaligned pointers.
void chunk_forward(const ChunkParams& p, void* stream);
bool chunk_forward_supports(int64_t K, int64_t V);

struct DecodeParams {
  Family family = Family::kDeltaRule;  // the gated delta rule is the delta rule with g
  Dtype dtype = Dtype::kBF16;
  const void *q = nullptr, *k = nullptr, *v = nullptr;
  const float *beta = nullptr, *g = nullptr;  // [B, T, H] fp32 (g: null without decay)
  float* state = nullptr;           // [B, H, K, V], updated in place
  void* o = nullptr;                // [B, T, H, V]
  int64_t B = 0, T = 0, H = 0, K = 0, V = 0;
  float scale = 1.0f;
};

// The recurrent kernels' block (decode and the training pair below): kRecurrentWarps warps over
// kRecurrentColumns columns of V.
inline constexpr int kRecurrentWarps = 8, kRecurrentColumns = 32;

// T recurrent steps for B sequences, the state kept in registers across the steps. No allocation,
// no host synchronisation: capturable in a CUDA graph.
void recurrent_decode(const DecodeParams& p, void* stream);
bool recurrent_decode_supports(int64_t K, int64_t V);

// Training, version 1 (recurrent_train.cuh): the recurrent forward that saves the state every
// kRecurrentSegment steps, and the backward that recomputes each segment from its checkpoint and
// walks it in reverse. fp32 state and arithmetic whatever the inputs' dtype. One block per
// (sequence, head, 32 columns of V), so the backward's sums over V come back as partial sums per
// slice of 32 columns (recurrent_train_slices(V) of them; dg's per slice and warp), which the
// caller adds up. Linear attention (with or without decay), the delta rule and the gated delta rule.
inline constexpr int kRecurrentSegment = 16;

struct RecurrentTrainParams {
  Family family = Family::kDeltaRule;  // the gated delta rule is the delta rule with g
  Dtype dtype = Dtype::kBF16;       // of q, k, v, o and dout
  const void *q = nullptr, *k = nullptr, *v = nullptr;
  const float* beta = nullptr;      // [tokens, H] (delta rule)
  const float* g = nullptr;         // [tokens, H] per-step log decay, or null
  const float* h0 = nullptr;        // [N, H, K, V] or null (zeros)
  const int64_t* seq_starts = nullptr;  // device [N + 1]
  int64_t N = 0, H = 0, K = 0, V = 0;
  int64_t tokens = 0;               // the packed token count (seq_starts[N])
  int64_t max_segments = 0;         // ceil(longest sequence / kRecurrentSegment)
  float scale = 1.0f;
  float* checkpoints = nullptr;     // [N, H, max_segments, K, V]: written by the forward, read by the backward
  // Forward:
  void* o = nullptr;                // [tokens, H, V]
  float* ht = nullptr;              // [N, H, K, V] or null
  // Backward:
  const void* dout = nullptr;       // [tokens, H, V]
  const float* dht = nullptr;       // [N, H, K, V] or null (zeros)
  float* dq_partial = nullptr;      // [slices, tokens, H, K]
  float* dk_partial = nullptr;      // [slices, tokens, H, K]
  float* dv = nullptr;              // [tokens, H, V]
  float* dbeta_partial = nullptr;   // [slices, tokens, H] (delta rule)
  float* dg_partial = nullptr;      // [dg rows, tokens, H] (with g)
  float* dh0 = nullptr;             // [N, H, K, V] or null
};

bool recurrent_train_supports(int64_t K, int64_t V);
int64_t recurrent_train_slices(int64_t V);   // slices of 32 columns
int64_t recurrent_train_dg_rows(int64_t V);  // slices x warps
void recurrent_train_forward(const RecurrentTrainParams& p, void* stream);
void recurrent_train_backward(const RecurrentTrainParams& p, void* stream);

// The chunked backward's two sequential passes (chunk_state.cu; the parallel stages around them are
// chunk_grads below and ATen products in kernels/common/chunk_train.cpp). fp32 throughout, SIMT. Chunked tensors are
// [BH, NT, C, D] contiguous (BH = sequences x heads, NT chunks of kChunkTrainSize tokens per
// sequence), states [BH, K, V]; one block per (sequence and head, slice of V columns) walks the chunks.
inline constexpr int kChunkTrainSize = 64;

struct ChunkStateParams {
  int64_t BH = 0, NT = 0, K = 0, V = 0;
  const float* w = nullptr;      // [BH, NT, C, K] the UT transform's W, or null (linear attention)
  const float* k = nullptr;      // [BH, NT, C, K] keys decayed to their chunk's end, k exp(G_C - G)
  const float* gamma = nullptr;  // [BH, NT] the chunk's whole decay exp(G_C), or null (none)
  // Forward: S_0 = h0, v_new = U - W S_c, S_{c+1} = gamma S_c + k^T v_new.
  const float* u = nullptr;      // [BH, NT, C, V]
  const float* h0 = nullptr;     // [BH, K, V] or null (zeros)
  float* h = nullptr;            // [BH, NT, K, V] S_c, the state at each chunk's start
  float* v_new = nullptr;        // [BH, NT, C, V]
  float* ht = nullptr;           // [BH, K, V] or null
  // Backward, c from last to first, dS the gradient of S_{c+1} (dht at the end):
  // dv_new = dv_local + k dS;  dS <- gamma dS + q^T dout - W^T dv_new;  dh0 = dS at the end.
  // q^T dout needs no state, so it comes in whole, one batched product before the walk.
  const float* qdo = nullptr;       // [BH, NT, K, V] (scale q exp(G))^T dout of each chunk
  const float* dv_local = nullptr;  // [BH, NT, C, V] the gradient of v_new within its chunk
  const float* dht = nullptr;       // [BH, K, V] or null (zeros)
  float* dh = nullptr;              // [BH, NT, K, V] the gradient of S_{c+1}
  float* dv_new = nullptr;          // [BH, NT, C, V]
  float* dh0 = nullptr;             // [BH, K, V] or null
  // The products on tensor cores in TF32 (10 significant bits) where K is 128 (or 64 with 32-column
  // slices): for 16-bit inputs, whose own rounding is coarser. Else fp32 on the SIMT cores.
  bool tf32 = false;
};

// dst [N, B, A, D] (contiguous) = scale * src [N, A, B, D] (rows of D contiguous elements, the other
// strides given), converting between the dtypes: the chunked training pair's [N, T, H, D] <-> [N, H, T, D]
// layout changes (kernels/common/chunk_layout.cu).
struct SwapRows {
  const void* src = nullptr;
  Dtype src_dtype = Dtype::kBF16;
  int64_t stride_n = 0, stride_a = 0, stride_b = 0;  // in elements
  void* dst = nullptr;
  Dtype dst_dtype = Dtype::kFP32;
  int64_t N = 0, A = 0, B = 0, D = 0;
  float scale = 1.0f;
};
// Whether swap_rows serves s: D and the strides multiples of 4, both buffers aligned to 4 elements.
bool swap_rows_supports(const SwapRows& s);
void swap_rows(const SwapRows& s, void* stream);

bool chunk_state_supports(int64_t K, int64_t V);  // K of 32, 64, 128 or 256, V a multiple of 16
// (I + A)^-1 of `batch` strictly lower triangular fp32 matrices A [kChunkTrainSize x kChunkTrainSize]
// (what lies on and above the diagonal is never read), by forward substitution in fp32.
void unit_lower_inverse(const float* a, float* out, int64_t batch, void* stream);
void chunk_state_forward(const ChunkStateParams& p, void* stream);
void chunk_state_backward(const ChunkStateParams& p, void* stream);

// The chunked backward's gradients through the output and the state walk, one block a chunk
// (chunk_grads.cu), TF32 products with fp32 accumulation; every buffer fp32, contiguous, on a 32-byte
// boundary. With G the within-chunk cumulative log decay (zero without g):
//   d_attn = (dout v_new^T) * exp(G_i - G_j) [j <= i],  dq = e^G dout h^T + d_attn k,
//   dk = d_attn^T q + e^(G_C - G) v_new dh^T,  dW = -dv_new h^T,
//   dG = rowsum(dq q - dk k), its last entry plus sum((e^(G_C - G) v_new dh^T) k) + e^G_C sum(h dh).
struct ChunkGradsParams {
  int64_t BH = 0, NT = 0, K = 0, V = 0;
  const float* q = nullptr;       // [BH, NT, C, K] q times the scale
  const float* k = nullptr;       // [BH, NT, C, K]
  const float* g = nullptr;       // [BH, NT, C] G, or null (no decay)
  const float* h = nullptr;       // [BH, NT, K, V] the state at each chunk's start
  const float* dh = nullptr;      // [BH, NT, K, V] the gradient of the state at each chunk's end
  const float* v_new = nullptr;   // [BH, NT, C, V]
  const float* dv_new = nullptr;  // [BH, NT, C, V]
  const float* dout = nullptr;    // [BH, NT, C, V]
  float* dq = nullptr;            // [BH, NT, C, K] the gradient of q times the scale
  float* dk = nullptr;            // [BH, NT, C, K]
  float* dw = nullptr;            // [BH, NT, C, K], or null (a family without W)
  float* dg = nullptr;            // [BH, NT, C], with g only
};

bool chunk_grads_supports(int64_t K, int64_t V);  // K of 32, 64 or 128, V a multiple of 16
void chunk_grads(const ChunkGradsParams& p, void* stream);

// What the backward walk reads of dout (chunk_dout.cu), one block a chunk, TF32 products with fp32
// accumulation; fp32 buffers, contiguous, on a 32-byte boundary:
//   dv_local = ((q k^T) * exp(G_i - G_j) [j <= i])^T dout,  qdo = (q e^G)^T dout.
struct ChunkDoutParams {
  int64_t BH = 0, NT = 0, K = 0, V = 0;
  const float* q = nullptr;     // [BH, NT, C, K] q times the scale
  const float* k = nullptr;     // [BH, NT, C, K]
  const float* g = nullptr;     // [BH, NT, C] G, or null (no decay)
  const float* dout = nullptr;  // [BH, NT, C, V]
  float* dv_local = nullptr;    // [BH, NT, C, V]
  float* qdo = nullptr;         // [BH, NT, K, V]
};

bool chunk_dout_supports(int64_t K, int64_t V);  // K of 32, 64 or 128, V a multiple of 16
void chunk_dout(const ChunkDoutParams& p, void* stream);

// The delta rules' gradients through the UT transform (kernels/delta_rule/chunk_ut_bwd.cu), one block a
// chunk, TF32 products with fp32 accumulation; fp32 buffers, contiguous, on a 32-byte boundary. With
// A = strict_lower(diag(beta) K K^T * decay), T = (I + A)^-1, W = T diag(beta e^G) K, U = T diag(beta) V
// and dW, dU given, it adds the transform's terms to dk (and dG), and writes dv and dbeta.
struct ChunkUtBackwardParams {
  int64_t BH = 0, NT = 0, K = 0, V = 0;
  const float* k = nullptr;     // [BH, NT, C, K]
  const float* v = nullptr;     // [BH, NT, C, V]
  const float* beta = nullptr;  // [BH, NT, C]
  const float* g = nullptr;     // [BH, NT, C] G, or null (no decay)
  const float* a = nullptr;     // [BH, NT, C, C] A
  const float* tinv = nullptr;  // [BH, NT, C, C] T, zero above the diagonal
  const float* dw = nullptr;    // [BH, NT, C, K]
  const float* du = nullptr;    // [BH, NT, C, V]
  float* dk = nullptr;          // [BH, NT, C, K] added to
  float* dv = nullptr;          // [BH, NT, C, V]
  float* dbeta = nullptr;       // [BH, NT, C]
  float* dg = nullptr;          // [BH, NT, C] added to, with g only
};

bool chunk_ut_backward_supports(int64_t K, int64_t V);  // K of 32, 64 or 128, V a multiple of 16
void chunk_ut_backward(const ChunkUtBackwardParams& p, void* stream);

// The delta rules' UT transform (kernels/delta_rule/chunk_ut_fwd.cu), one block a chunk: A and W's and
// U's products in TF32 with fp32 accumulation, T = (I + A)^-1 by substitution in fp32 (zero above the
// diagonal); fp32 buffers, contiguous, on a 32-byte boundary.
struct ChunkUtForwardParams {
  int64_t BH = 0, NT = 0, K = 0, V = 0;
  const float* k = nullptr;     // [BH, NT, C, K]
  const float* v = nullptr;     // [BH, NT, C, V]
  const float* beta = nullptr;  // [BH, NT, C]
  const float* g = nullptr;     // [BH, NT, C] G, or null (no decay)
  float* a = nullptr;           // [BH, NT, C, C] A = strict_lower(diag(beta) K K^T * decay)
  float* tinv = nullptr;        // [BH, NT, C, C] T = (I + A)^-1
  float* w = nullptr;           // [BH, NT, C, K] T diag(beta e^G) K
  float* u = nullptr;           // [BH, NT, C, V] T diag(beta) V
};

bool chunk_ut_forward_supports(int64_t K, int64_t V);  // K of 32, 64 or 128, V a multiple of 16
void chunk_ut_forward(const ChunkUtForwardParams& p, void* stream);

}  // namespace deltabench::cuda
