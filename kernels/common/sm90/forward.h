#pragma once
// The Hopper forward (issue 14), FLA's stages on deltabench's sm_90a kernels (kernels/common/sm90/):
// for the delta rules the UT transform (W, U), then the state pass (h at each chunk's start, v_new), then
// the output; for linear attention U = v and no W. Inputs as the ops take them (kernels/README.md):
// q, k [B, T, H, K] and v [B, T, H, V] in bf16 or fp16, contiguous, k L2-normalised by the caller for the
// delta rules; beta [B, T, H] and g [B, T, H] (per-step log decay) fp32; h0 [N, H, K, V] fp32 or undefined;
// cu_seqlens [N + 1] (int64 on the device, with B = 1) or undefined. chunk_forward is forward only; the
// ops' chunk forward takes it where detail::set_sm90_forward asks. Throws the kernels' sentences where a call
// is not theirs.

#include "kernels/common/segments.h"
#include "kernels/family_id.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace deltabench::cuda::sm90 {
struct StateFwdParams;  // kernels/common/sm90/sm90_kernels.h
struct StateBwdParams;
}

namespace deltabench::sm90 {

struct ForwardOutputs {
  at::Tensor o;            // [B, T, H, V], the inputs' dtype
  at::Tensor final_state;  // [N, H, K, V] fp32, or undefined where not asked
};

// The output comes from the state pass itself (fuse_output true: FLA's chunk_delta_h and chunk_fwd_o in one
// kernel, h and v_new never in device memory), from the output kernel after the pass (false), or as
// fuses_output chooses for the pass's grid (nullopt, the ops' call). K of 64, 128 or 256; at K 256 always by
// the output kernel (fuse_output ignored: the pass's registers hold S).
// Long sequences over few heads run the state pass segment-parallel (kernels/common/segments.h):
// segment_length 0 where its cost model chooses (the forward alone's: detail::model_segment_length), -1 never,
// a positive multiple of 64 for that length (the ops' SequenceOptions::kernel_segment_length).
ForwardOutputs chunk_forward(Family family, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             const at::Tensor& beta, const at::Tensor& g, const at::Tensor& h0,
                             const at::Tensor& cu_seqlens, double scale, bool final_state,
                             std::optional<bool> fuse_output = std::nullopt, int64_t segment_length = 0);

// Whether the forward fuses the output into the state pass for `family` when the pass runs `pass_blocks` blocks (its
// sequences or segments x heads x 64-column slices of V) on `sms` multiprocessors: the delta rule and linear
// attention always (the delta rule's fused pass won at every length: H100, 9f65170, 0.946 / 0.943 / 1.504 ms
// against 0.968 / 1.074 / 1.708 at 16 x 2K, 4 x 8K, 1 x 32K, H 16, K 128); the gated delta rule only where the pass
// is at most one block an SM. Its fused pass holds more registers than two blocks an SM leave, so over one wave
// the output kernel after the pass is the quicker (16 x 2K, 512 blocks: 1.139 apart against 1.231 fused), and
// within one the fused (4 x 8K, 128 blocks: 1.220 against 1.286; 1 x 32K in four segments, 128 blocks: 1.887
// against 1.945; same call, kernels/delta_rule/NOTES.md, version 3r measured).
inline bool fuses_output(Family family, int64_t pass_blocks, int64_t sms) {
  return family != Family::kGatedDeltaRule || pass_blocks <= sms;
}

// The same with a gradient, on the sm_90a kernels both ways: an autograd Function whose backward recomputes
// W, U, h and v_new (unless kept: below) and runs the backward's stages (dv_local, the backward state pass, dq/dk/dW/dG, the UT
// transform's backward; dg from dG by a reverse cumulative sum within each chunk) for q, k, v, beta, g and
// h0 (and the final state's gradient where it is returned). K and V of 64 or 128.
// The forward's state pass, the backward's recomputation of it and the backward's own state pass segment-parallel
// as chunk_forward's (the same split). keep_ut: the delta rules' W, U and T (the UT transform's) kept from the
// forward for the backward rather than recomputed there, for (K + V + 64) x 2 bytes a token and head held until
// the backward; the same outputs and gradients bit for bit either way. keep_state (with keep_ut where the family
// has W and U): h and v_new kept too, so that the backward runs no forward pass at all, for K V x 2 / 64 + V x 2
// bytes more a token and head (768 at K = V = 128); the forward then writes them and computes the output by the
// output kernel after its state pass (as it does for the gated rule anyway), where the delta rule's and linear
// attention's fuse it. The same gradients bit for bit either way; the delta rule's and linear attention's output
// within the forward's bounds, not bit for bit (another kernel's sums).
ForwardOutputs chunk_train(Family family, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& beta,
                           const at::Tensor& g, const at::Tensor& h0, const at::Tensor& cu_seqlens, double scale,
                           bool final_state, int64_t segment_length = 0, bool keep_ut = false, bool keep_state = false);

// Whether chunk_forward (train false) or chunk_train (train true) takes a call of this family on the current
// device: compute capability 9.0, q, k and v of `dtype` bf16 or fp16, K of 64 or 128 (or 256 for the forward), N * H
// (sequences times heads) up to 65535; V a multiple of 64 for the forward (up to 256 for the delta rules), 64 or 128
// for chunk_train. The ops' switches ask this before they call (kernels/common/cuda_dispatch.h).
bool serves(Family family, int64_t K, int64_t V, int64_t NH, at::ScalarType dtype, bool train);

// t as the entry points take their tensors: contiguous, in `dtype` where one is given, its data on 16 bytes (a
// view may start anywhere; then a copy). Undefined stays undefined.
at::Tensor contiguous_aligned(const at::Tensor& t, std::optional<at::ScalarType> dtype = std::nullopt);

namespace detail {

// The segment-parallel split of sequences with these [N + 1] token offsets for the sm_90a state passes
// (segments.h), or none where they run whole: segment_length 0 by segments.h's cost model (the passes' blocks,
// H V / 64, one to a multiprocessor of the current device; the transitions' K / 64 more a head), -1 never, a
// positive multiple of 64 for that length. The forward's pass, its recomputation and the backward's take the same.
std::optional<Segments> plan_segments(const std::vector<int64_t>& host_seq, int64_t H, int64_t K, int64_t V,
                                      int64_t segment_length);

// The cost model's segment length for these sequences (0: whole). forward_alone: for chunk_forward (no backward
// follows), counting one block an SM where the training op's passes count two: the forward's passes at two blocks
// an SM took about twice a chunk step at one (8 x 4K, H 8, K = V = 64, H100: kernels/delta_rule/NOTES.md, "Version
// 3q"), which a wave of two an SM prices as one. chunk_forward resolves its segment_length 0 with it; chunk_train
// (whose forward and backward split alike) with plan_segments'.
int64_t model_segment_length(const std::vector<int64_t>& host_seq, int64_t H, int64_t K, int64_t V, bool forward_alone);

// The forward's state pass (cuda::sm90::chunk_state_forward, p as for the whole sequences, its h0 and ht replaced
// by these) over `segments`: each segment's transition (from identity columns, U = 0) and its end state from
// zero, for the final states alone; every segment's start state joined in order; then p from those, each segment
// as a sequence (h, v_new or the fused output laid out as for the whole sequences). h0 and ht [N, H, K, V] fp32,
// contiguous, on the current CUDA device, or undefined (zeros; not wanted).
void segmented_state_forward(cuda::sm90::StateFwdParams p, const Segments& segments, const at::Tensor& h0,
                             const at::Tensor& ht);

// The backward's state pass (cuda::sm90::chunk_state_backward) over `segments` of p's sequences (segments.h's
// split of their token offsets; p describes the whole sequences, its dht and dh0 replaced by these): each
// segment's transition (from identity columns, without dO) and its start gradient from a zero end, for dh0
// alone; every segment's end gradient joined from its sequence's end backwards (segments.h's backwards); then
// p from those, each segment as a sequence, dh and dv_new laid out as for the whole sequences. dht and dh0
// [N, H, K, V] fp32, contiguous, on the current CUDA device, or undefined (zeros; not wanted).
void segmented_state_backward(cuda::sm90::StateBwdParams p, const Segments& segments, const at::Tensor& dht,
                              const at::Tensor& dh0);

// dg from dG, the gradient of the within-chunk cumulative log decay: dg_t = the sum of dG_s over s >= t in t's
// chunk of 64 tokens, in fp64, returned fp32. dG is [tokens, H] (any device). `seq` empty: B rows of T tokens,
// summed on dG's device alone (a captured training step runs it); else the sequences' [N + 1] token offsets,
// through an index built on the host.
at::Tensor chunk_suffix_sums(const at::Tensor& dG, int64_t B, int64_t T, const std::vector<int64_t>& seq);

// The training op's gradient exponent: e with 2^e <= the largest magnitude over dO and dh_T < 2^(e + 1), as a
// 0-dim fp32 tensor on `device`, theirs (either may be undefined; both: 0). The backward scales dO and dh_T by 2^-e
// and every gradient back by 2^e (kernels/delta_rule/NOTES.md, version 3j). 0 where that magnitude is zero,
// infinite or NaN, so that such a dO passes as it is; clamped to [-100, 100], inside fp32's exponents. On the
// tensors' device alone: no wait for the stream.
at::Tensor gradient_exponent(const at::Tensor& dout, const at::Tensor& dht, at::Device device);

}  // namespace detail

}  // namespace deltabench::sm90
