#pragma once
// The Hopper-native (sm_90a) kernels: wgmma products on shared-memory tiles laid out by CUTLASS's CuTe
// (issue 14). Raw pointers only, as kernels/common/cuda_kernels.h: no ATen in the .cu files. Built where
// CMake found CuTe (cmake/Cute.cmake: DELTABENCH_HAVE_CUTE), and run only on a compute capability 9.0
// device; `available` says whether both hold, and every entry point throws a sentence where not.
//
// Version 1 (2026-12-05, written without a GPU, not yet run): the forward's stages as FLA's forward has
// them, each on wgmma with cp.async copies: the UT transform (FLA's chunk_scaled_dot_kkt, solve_tril
// and recompute_w_u), the state pass (its chunk_delta_h) and the output (its chunk_fwd_o). TMA and warp
// specialisation come after they are correct (kernels/delta_rule/NOTES.md, "Hopper version 1").
//
// Dtypes: the inputs (q, k, v) and the output o are bf16 or fp16 (`dtype`); the intermediates the stages
// pass on (W, U, h, v_new) are fp16 whatever the inputs', and every product's operands are fp16 (bf16
// inputs converted in shared memory), with fp32 accumulation. fp16's 10-bit mantissa halves the forward's
// error against bf16 intermediates (FLA's); its range is the price: inputs and states past +-65504
// overflow, as in the fused forward (cuda_kernels.h).

#include "kernels/common/cuda_kernels.h"

#include <cstdint>
#include <string>

namespace deltabench::cuda::sm90 {

// Whether the sm_90a kernels were built, and the current device runs them. `why` (when given) is set to
// a sentence saying which of the two is missing.
bool available(std::string* why = nullptr);

// The chunked recurrence's state pass over chunks of kStateChunk tokens, for every family whose
// chunk step is
//   v_new = U - W S,    S <- gamma S + (K decayed to the chunk's end)^T v_new
// (the delta rules: W and U from the UT transform; linear attention: U = v and no W). Per chunk it
// writes the state at the chunk's start, h (fp16), and v_new (fp16, not decayed); at the end the final
// state. As FLA's chunk_delta_h, with fp16 for its bf16: S enters W S rounded to fp16, and v_new, scaled
// by exp(G_last - G) where there is a decay, enters K^T v_new rounded to it; products accumulate in fp32,
// and S stays fp32 in registers across the chunks.
inline constexpr int kStateChunk = 64;
inline constexpr int kStateColumns = 64;  // columns of V a block: V must be a multiple of it

struct StateFwdParams {
  Dtype dtype = Dtype::kBF16;     // of k (and of u without w): kBF16 or kFP16
  const void* w = nullptr;        // [tokens, H, K] fp16, or null (no W S term: linear attention)
  // [tokens, H, V] fp16 with w (the UT transform's), else v itself (dtype); or null for U = 0, where the
  // pass is a segment's transition M (from identity columns, V = K: the segment-parallel pass, segments.h).
  const void* u = nullptr;
  const void* k = nullptr;        // [tokens, H, K]
  const float* g = nullptr;       // [tokens, H] per-step log decay, or null (no decay)
  const float* h0 = nullptr;      // [N, H, K, V], or null (zeros)
  // Without o: h [chunks, H, K, V] fp16, the state at each chunk's start, and v_new [tokens, H, V] fp16; or
  // both null where ht is set (a pass for the final states alone).
  void* h = nullptr;
  void* v_new = nullptr;
  float* ht = nullptr;            // [N, H, K, V], or null
  // The output fused into the pass (chunk_output_forward's O from this pass's S and v_new, h and v_new then
  // not written): q [tokens, H, K] (dtype) and o [tokens, H, V] (dtype), or both null.
  const void* q = nullptr;
  void* o = nullptr;
  float scale = 1.0f;
  // Device [N + 1] token offsets of the sequences and [N + 1] offsets of their chunks (chunk_starts[n + 1]
  // - chunk_starts[n] = ceil(length_n / kStateChunk)); both null: N sequences of T tokens each.
  const int64_t* seq_starts = nullptr;
  const int64_t* chunk_starts = nullptr;
  int64_t N = 0, T = 0, H = 0, K = 0, V = 0;
};

// K 64, 128 or 256 (256 without o: S [256 x 64] takes 128 of a thread's registers and the pass 186 KB of shared
// memory, one block an SM). Throws std::invalid_argument naming the first parameter it cannot take (K not one of
// those, V not a multiple of kStateColumns, a pointer off a 16-byte boundary, ...), std::runtime_error where the
// kernels are not available or the launch fails.
void chunk_state_forward(const StateFwdParams& p, void* stream);
bool chunk_state_forward_supports(int64_t K, int64_t V);

// The backward's state pass, the forward's mirror (FLA's chunk_gated_delta_rule_bwd_dhu): from the last chunk
// to the first, with dS the gradient of the state at the chunk's end (dht, or zeros, at the sequence's end),
//   dv_new = dv_local + diag(exp(G_last - G)) K dS,
//   dS    <- exp(G_last) dS + scale (diag(e^G) Q)^T dO - W^T dv_new,
// writing dS of each chunk (dh) and dv_new, and at the start dh0. One block a (sequence, head, 64 columns of
// V); dS in fp32 registers, the products' operands fp16 (dS, dv_new and the scaled dO rounded to it).
// The segment-parallel pass (forward.cpp) runs it for dh0 alone (dh and dv_new null), and without dO for a
// segment's transition (dout and dv_local null: dS <- (exp(G_last) I - W^T diag(exp(G_last - G)) K) dS, from
// identity columns, V = K).
struct StateBwdParams {
  Dtype dtype = Dtype::kBF16;     // of q, k and dout: kBF16 or kFP16
  const void* q = nullptr;        // [tokens, H, K]; may be null with dout
  const void* k = nullptr;        // [tokens, H, K]
  const void* w = nullptr;        // [tokens, H, K] fp16 (the UT transform's), or null (linear attention)
  const float* g = nullptr;       // [tokens, H] per-step log decay, or null
  const void* dout = nullptr;     // [tokens, H, V], or null (a transition: no Q^T dO term)
  const float* dout_scale = nullptr;  // one fp32 factor on the device that dO is multiplied by where it is rounded to
                                      // fp16 (sm90::chunk_train's 2^-e), or null (1)
  const void* dv_local = nullptr; // [tokens, H, V] fp16: P^T dO, v_new's gradient within its chunk; null with dout
  const float* dht = nullptr;     // [N, H, K, V], or null (zeros)
  void* dh = nullptr;             // [chunks, H, K, V] fp16: the gradient of each chunk's end state, or null
  void* dv_new = nullptr;         // [tokens, H, V] fp16, or null with dh (then dh0 must be set)
  float* dh0 = nullptr;           // [N, H, K, V], or null
  const int64_t* seq_starts = nullptr;    // as StateFwdParams
  const int64_t* chunk_starts = nullptr;
  int64_t N = 0, T = 0, H = 0, K = 0, V = 0;
  float scale = 1.0f;
  // The pipeline: 2, every chunk's tiles double-buffered (155 KB of shared memory at K 128, one block an SM); 1,
  // Q, W, dO and dv_local single-buffered and refilled after the chunk's last product (106 KB, two blocks an SM);
  // 3, the same single buffers, each refilled as soon as its chunk is done with it (chunk_state_bwd.cu; never
  // chosen: slower than 1 where it was timed, 16 x 2K on an H100, 0.518 ms against 0.507 and gated 0.542 against
  // 0.508, kernels/delta_rule/NOTES.md, version 3o measured). The same outputs bit for bit. 0 (the default): state_backward_buffers' choice for the
  // call's grid on this GPU.
  int buffers = 0;
};

// The backward state pass's pipeline for a grid of `blocks` (V / 64 x N x H) at head dim K on a GPU of `sms` SMs.
// 1 only where it puts two blocks on an SM that 2 would leave alone: at K 128 (106 KB of shared memory against 155;
// at K 64 both pipelines fit two blocks, and registers allow no more) and where blocks would share SMs. Elsewhere
// 2, whose double buffers hide a block's copies where no second block could. On an H100 at K = V = 128
// (stage_bench, one run, kernels/delta_rule/NOTES.md): 16 x 2K (512 blocks), 1 took 0.527 ms against 2's 0.715
// (gated 0.617 against 0.955); 1 x 32K whole (32 blocks), 2 took 2.75 ms against 1's 3.17 (gated 3.24 against 3.74).
inline int state_backward_buffers(int64_t blocks, int64_t K, int64_t sms) { return K == 128 && blocks > sms ? 1 : 2; }

// Throws as chunk_state_forward does.
void chunk_state_backward(const StateBwdParams& p, void* stream);

// The backward's chunk-parallel gradients of q, k, W and G (FLA's chunk_bwd_dqkwg), one block a (chunk, head),
// with dA = scale (dO v_new^T * Gamma) on and below the diagonal, rounded to fp16:
//   dq = scale e^G (dO h^T) + dA k,   dk = exp(G_last - G) (v_new dh^T) + dA^T q,   dW = -(dv_new h^T),
//   dG = rowsum(dq q - dk k), and at the chunk's last row also sum((exp(G_last - G) v_new dh^T) k) +
//   exp(G_last) sum(h dh),
// the terms through the output and the state walk (the UT transform's backward adds its own to dk and dG;
// dG is the gradient of the within-chunk cumulative G). K 64 or 128 and V 64 or 128.
struct DqkwParams {
  Dtype dtype = Dtype::kBF16;     // of q, k and dout: kBF16 or kFP16
  const void* q = nullptr;        // [tokens, H, K]
  const void* k = nullptr;        // [tokens, H, K]
  const void* dout = nullptr;     // [tokens, H, V]
  const float* dout_scale = nullptr;  // as StateBwdParams's
  const float* g = nullptr;       // [tokens, H] per-step log decay, or null
  const void* v_new = nullptr;    // [tokens, H, V] fp16 (the forward state pass's)
  const void* dv_new = nullptr;   // [tokens, H, V] fp16 (the backward state pass's), or null with dw
  const void* h = nullptr;        // [chunks, H, K, V] fp16: the state at each chunk's start
  const void* dh = nullptr;       // [chunks, H, K, V] fp16: the gradient of each chunk's end state
  float* dq = nullptr;            // [tokens, H, K] fp32, or null with dq_out
  float* dk = nullptr;            // [tokens, H, K]
  void* dw = nullptr;             // [tokens, H, K] fp16 (rounded as the UT backward reads it), or null (linear attention)
  float* dg = nullptr;            // [tokens, H], with g only (written: the UT backward adds to it)
  void* dq_out = nullptr;         // [tokens, H, K] in `dtype`, or null: dq written there, times *grad_scale, not in dq
  const float* grad_scale = nullptr;  // with dq_out: one fp32 factor on the device (sm90::chunk_train's 2^e)
  const int64_t* seq_starts = nullptr;    // as OutputFwdParams
  const int64_t* chunk_starts = nullptr;
  int64_t chunks = 0;
  int64_t N = 0, T = 0, H = 0, K = 0, V = 0;
  float scale = 1.0f;
};

// Throws as chunk_state_forward does.
void chunk_dqkw(const DqkwParams& p, void* stream);

// The forward's output from the state pass's h and v_new, one block a (chunk, head, 64 columns of V):
//   O = scale ((Q S_c) * e^G + ((Q K^T) * Gamma) v_new),   Gamma_ij = exp(G_i - G_j) for j <= i, else 0,
// G the within-chunk cumulative log decay (zero without g). As FLA's chunk_fwd_o, (Q K^T) * Gamma is rounded
// to fp16 before its product with v_new; products accumulate in fp32.
inline constexpr int kOutputColumns = 64;

struct OutputFwdParams {
  Dtype dtype = Dtype::kBF16;     // of q, k and o: kBF16 or kFP16
  const void* q = nullptr;        // [tokens, H, K]
  const void* k = nullptr;        // [tokens, H, K]
  const void* v_new = nullptr;    // [tokens, H, V] fp16 (the state pass's)
  const void* h = nullptr;        // [chunks, H, K, V] fp16: the state at each chunk's start
  const float* g = nullptr;       // [tokens, H] per-step log decay, or null
  void* o = nullptr;              // [tokens, H, V]
  const int64_t* seq_starts = nullptr;    // as StateFwdParams
  const int64_t* chunk_starts = nullptr;
  int64_t chunks = 0;                     // with seq_starts: chunk_starts[N] (the host's copy)
  int64_t N = 0, T = 0, H = 0, K = 0, V = 0;
  float scale = 1.0f;
};

// K 64, 128 or 256; throws as chunk_state_forward does.
void chunk_output_forward(const OutputFwdParams& p, void* stream);

// The backward's dv_local, v_new's gradient within its chunk (FLA's chunk_bwd_dv_local), by the output's
// kernel with P's operands swapped: dv_local = P^T dO, P as chunk_output_forward forms it (scale, the decay,
// on and below the diagonal), rounded to fp16 before its product; written fp16.
struct DvLocalParams {
  Dtype dtype = Dtype::kBF16;     // of q, k and dout: kBF16 or kFP16
  const void* q = nullptr;        // [tokens, H, K]
  const void* k = nullptr;        // [tokens, H, K]
  const void* dout = nullptr;     // [tokens, H, V]
  const float* dout_scale = nullptr;  // as StateBwdParams's
  const float* g = nullptr;       // [tokens, H] per-step log decay, or null
  void* dv_local = nullptr;       // [tokens, H, V] fp16
  const int64_t* seq_starts = nullptr;    // as OutputFwdParams
  const int64_t* chunk_starts = nullptr;
  int64_t chunks = 0;
  int64_t N = 0, T = 0, H = 0, K = 0, V = 0;
  float scale = 1.0f;
};

// Throws as chunk_state_forward does.
void chunk_dv_local(const DvLocalParams& p, void* stream);

// The delta rules' UT transform, one block a (chunk, head):
//   A = strict_lower(diag(beta) K K^T * Gamma),  T = (I + A)^-1,  W = T diag(beta e^G) K,  U = T diag(beta) V,
// Gamma as above (ones without g). K K^T on wgmma; T by substitution in fp32, a column a thread in
// registers; W's and U's products on wgmma with T diag(beta e^G) and T diag(beta) rounded to fp16
// (FLA rounds diag(beta e^G) K and T instead, to bf16).
struct UtFwdParams {
  Dtype dtype = Dtype::kBF16;     // of k and v: kBF16 or kFP16
  const void* k = nullptr;        // [tokens, H, K]
  const void* v = nullptr;        // [tokens, H, V]
  const float* beta = nullptr;    // [tokens, H]
  const float* g = nullptr;       // [tokens, H] per-step log decay, or null
  void* w = nullptr;              // [tokens, H, K] fp16
  void* u = nullptr;              // [tokens, H, V] fp16
  void* t = nullptr;              // [chunks, H, 64, 64] fp16, row-major: T = (I + A)^-1, or null (not written);
                                  // a partial chunk's rows and columns past its end are the identity's
  const int64_t* seq_starts = nullptr;    // as OutputFwdParams
  const int64_t* chunk_starts = nullptr;
  int64_t chunks = 0;
  int64_t N = 0, T = 0, H = 0, K = 0, V = 0;
  bool column_inverse = false;    // T by the column substitution of version 3f rather than by blocks (the
                                  // default): stage_bench's comparison row; the UT backward's recomputed T
                                  // has the blocks' bits, so keep_ut's equality holds only without it
};

// K 64, 128 or 256, V a multiple of 64 up to 256; throws as chunk_state_forward does.
void chunk_ut_forward(const UtFwdParams& p, void* stream);

// The UT transform's backward (FLA's prepare_wy_repr_bwd), one block a (chunk, head): given dW and dU (the
// gradients of W and U: the backward state pass's dv_new is dU, chunk_dqkw's dW is dW), with T recomputed as
// chunk_ut_forward computes it, the gradients through W = T diag(beta e^G) K and U = T diag(beta) V and
// through T = (I + A)^-1, A = strict_lower(diag(beta) K K^T * Gamma): added to dk, written to dv and dbeta,
// and, with g, added to dg, the gradient of G (the within-chunk cumulative log decay; the caller turns it
// into g's by a reverse cumulative sum within the chunk, or the kernel does, into dg_out). K and V 64 or 128.
struct UtBwdParams {
  Dtype dtype = Dtype::kBF16;     // of k and v: kBF16 or kFP16
  const void* k = nullptr;        // [tokens, H, K]
  const void* v = nullptr;        // [tokens, H, V]
  const float* beta = nullptr;    // [tokens, H]
  const float* g = nullptr;       // [tokens, H] per-step log decay, or null
  const void* dw = nullptr;       // [tokens, H, K] fp16 (chunk_dqkw's)
  const void* du = nullptr;       // [tokens, H, V] fp16
  float* dk = nullptr;            // [tokens, H, K], added to (read alone where dk_out is set)
  float* dv = nullptr;            // [tokens, H, V] fp32, or null with dv_out
  float* dbeta = nullptr;         // [tokens, H]
  float* dg = nullptr;            // [tokens, H], added to; with g only
  float* dg_out = nullptr;        // [tokens, H], with g and grad_scale, or null: g's gradient written there, dg plus
                                  // this kernel's part summed within each chunk from its end (in fp64), times
                                  // *grad_scale; dg then only read
  void* dk_out = nullptr;         // [tokens, H, K] in `dtype`, or null: dk plus this kernel's part, times *grad_scale,
                                  // written there instead of back into dk
  void* dv_out = nullptr;         // [tokens, H, V] in `dtype`, or null: dv times *grad_scale written there, not in dv
  const float* grad_scale = nullptr;  // with dk_out or dv_out: one fp32 factor on the device
  const void* t = nullptr;        // chunk_ut_forward's t for the same k, beta and g: read instead of recomputed
                                  // (the same bits: both round the same blocked inverse), or null
  const int64_t* seq_starts = nullptr;    // as OutputFwdParams
  const int64_t* chunk_starts = nullptr;
  int64_t chunks = 0;
  int64_t N = 0, T = 0, H = 0, K = 0, V = 0;
};

// Throws as chunk_state_forward does.
void chunk_ut_backward(const UtBwdParams& p, void* stream);

}  // namespace deltabench::cuda::sm90
