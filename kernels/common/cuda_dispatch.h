#pragma once
// The one place where a public op's call chooses its backend (SequenceOptions::backend): the CUDA
// kernels of kernels/common/cuda_kernels.h or the family's reference ops. CUDA tensors in bf16,
// fp16 or fp32; then, by kernel_path:
//   - with a gradient: the chunked training pair (kernels/common/chunk_train.h; K and V of 64 or
//     128), else the recurrent training pair (kernels/common/recurrent_train.h; K of 32, 64, 128 or
//     256, V a multiple of 32), each an autograd Function;
//   - chunk mode, chunk size 64, K and V of 64 or 128: the fused chunk forward (on Hopper the sm_90a forward,
//     set_sm90_forward below);
//   - recurrent mode without cu_seqlens, K of 64 or 128: the decode kernel (the models' step());
//   - any other call the recurrent training pair's forward serves: that forward, without checkpoints.
// `auto` takes the chunk forward (at the sm_90a forward's own head dims only K = V = 256 for the delta rules),
// decode, the chunked training pair and, from 256 tokens, the recurrent one; its forward alone under `kernel` only
// (auto_path in the .cpp says why). `kernel` where none serves is an error that
// says why.

#include "kernels/common/reference_run.h"
#include "kernels/common/sequence_op.h"
#include "kernels/common/validate.h"
#include "kernels/family.h"

#include <ATen/core/Tensor.h>

#include <string>

namespace deltabench::detail {

enum class KernelPath { kNone, kChunk, kDecode, kRecurrent, kRecurrentTrain, kChunkTrain };

// Which kernel would serve this call of `family`; kNone with the reason in *why (the end of a sentence) when none can.
// kChunk: the first chunked kernel's head dims (K and V of 64 or 128), or those the sm_90a forward takes besides
// where it is on (sm90::serves: K 256, V up to 256 or, for linear attention, any multiple of 64).
KernelPath kernel_path(Family family, const SequenceShape& shape, const at::Tensor& q, const at::Tensor& k,
                       const at::Tensor& v, const at::Tensor& beta, const at::Tensor& g, const SequenceOptions& options,
                       std::string* why);

// The fused chunk kernel's forward (no autograd); the caller has checked that it serves the call
// (kernel_path gives kChunk, or chunk_train_unavailable is empty).
SequenceOutput cuda_chunk_forward(Family family, const SequenceShape& shape, const at::Tensor& q, const at::Tensor& k,
                                  const at::Tensor& v, const at::Tensor& beta, const at::Tensor& g,
                                  const SequenceOptions& options);

// Whether the chunk forward (KernelPath::kChunk: the forward alone, without a gradient) runs the sm_90a forward
// (kernels/common/sm90/forward.h: the UT transform, the state pass with the output fused into it, on wgmma) where it
// takes the call: a compute capability 9.0 device, bf16 or fp16 inputs, K of 64 or 128, V a multiple of 64 (up to
// 256 for the delta rules); its state pass segment-parallel as options.kernel_segment_length says. On by default;
// off here or by the environment: DELTABENCH_SM90_FORWARD=0 (1 or unset: on; any other value is an error at the
// first forward that asks). Measured on the H100 (2026-12-06, twenty-first session, H 16, K = V = 128, bf16,
// results/device/2026-12-06-h100-sm90-ninth-run.md): against the first chunked kernel it takes the delta rule from
// 1.03 to 0.95 ms at 16 x 2K, 1.96 to 0.93 at 4 x 8K and 2.58 to 1.69 at 1 x 32K, the gated rule from 2.27 to 1.21
// at 4 x 8K and 2.99 to 2.11 at 1 x 32K (K 64: 0.76 to 0.42 at 8 x 4K); it loses only the gated 16 x 2K, 1.22
// against 1.17. Linear attention's sm_90a forward has its GPU test but no time yet. Process-wide.
void set_sm90_forward(bool on);
bool sm90_forward();
// DELTABENCH_SM90_FORWARD's value read: null or empty true, "1" true, "0" false; anything else throws, naming it.
bool sm90_forward_from_env(const char* value);

// Whether the chunked training pair (kernels/common/chunk_train.h) runs on the sm_90a training op
// (sm90::chunk_train: forward and backward on wgmma) where it takes the call: a compute capability 9.0 device,
// bf16 or fp16 inputs, K and V of 64 or 128. On by default; off here or by the environment: DELTABENCH_SM90_TRAIN=0
// (1 or unset: on; any other value is an error at the first training call that asks). Its own GPU tests and
// sanitizers pass (H100, 2026-12-05: within issue 13's bounds of the fp64 recurrent reference), and so do the
// models' GPU tests on it (H200, 2026-12-06, once the backward scaled dO into fp16's range: kernels/delta_rule/
// NOTES.md, version 3j); Zoology's captured training step takes 18-24% less time on it than on the chunked pair
// (H100, DeltaNet L 256: 4.39 against 5.77 ms; NOTES, version 3i). scripts/device.sh --sm90 runs the models' tests
// with DELTABENCH_SM90_TRAIN=0 too, so that the chunked pair stays tested on Hopper.
// A run's record says which ran (backend.h's "kernel (sm_90a)"). Process-wide.
void set_sm90_train(bool on);
bool sm90_train();
// DELTABENCH_SM90_TRAIN's value read: null or empty true, "1" true, "0" false; anything else throws, naming it.
bool sm90_train_from_env(const char* value);

// Empty when a CUDA kernel can serve this call; else why not, as the end of a sentence
// ("the tensors are on cpu, and the kernel runs on CUDA").
std::string kernel_unavailable(Family family, const SequenceShape& shape, const at::Tensor& q, const at::Tensor& k,
                               const at::Tensor& v, const at::Tensor& beta, const at::Tensor& g,
                               const SequenceOptions& options);

// The public op's body after validation: the kernel or the reference (`recurrent` or `chunk` by
// options.mode) as options.backend chooses, the call counted (kernels/common/backend.h) and its
// backend recorded in the output. The family's name is the op's name in the error of a `kernel`
// that cannot serve. The family goes to the kernels as it is (their template switches: dispatch_family).
SequenceOutput dispatch(Family family, const SequenceShape& shape, const at::Tensor& q,
                        const at::Tensor& k, const at::Tensor& v, const at::Tensor& beta, const at::Tensor& g,
                        const SequenceOptions& options, reference::Fn recurrent, reference::Fn chunk);

}  // namespace deltabench::detail
