#pragma once
// The chunked training path (version 2 of the training kernels): an autograd Function whose forward
// is the fused chunk kernel (kernels/common/chunk_forward.cu, chunk_fwd.cuh) and whose backward is FLA's chunked
// backward (../shared/reference/kernels.md 1c): the UT transform, the state at every chunk's start and
// v_new recomputed, the gradient of the state at every chunk's end walked in reverse, then every
// chunk's gradients at once. The two sequential passes run in CUDA (kernels/common/chunk_state.cu), and
// for 16-bit inputs the gradients through the output and the walk (kernels/common/chunk_grads.cu); the
// other stages are batched ATen products over all chunks. kernels/common/cuda_dispatch.cpp
// calls it when a gradient is needed.
//
// The same Function runs on any device with its forward computed by the ATen stages and the passes
// by ATen loops (chunk_train_stages): the CPU tests check the backward's algebra in fp64 against
// autograd through the recurrent reference, and the GPU tests check the CUDA passes against the loops.

#include "kernels/common/sequence_op.h"
#include "kernels/common/validate.h"
#include "kernels/family.h"

#include <ATen/core/Tensor.h>

#include <string>

namespace deltabench::detail {

// Empty when the chunked training path can serve this call (CUDA; bf16, fp16 or fp32; K of 32, 64, 128 or
// 256 and V a multiple of 16, what the walks take: the fused forward where K and V are 64 or 128, the
// stages' forward else), else why not, as the end of a sentence.
std::string chunk_train_unavailable(const SequenceShape& shape, const at::Tensor& q);

// Whether the chunked pair's forward is the fused chunk kernel at these head dims (K and V of 64 or 128),
// else the stages'; false in a build without CUDA.
bool chunk_train_fuses_forward(const SequenceShape& shape);

// o and, with options.output_final_state, the final state (fp32), differentiable. The value does not
// depend on options.mode or options.chunk_size: the backward always works in chunks of 64.
SequenceOutput chunk_train(Family family, const SequenceShape& shape, const at::Tensor& q, const at::Tensor& k,
                           const at::Tensor& v, const at::Tensor& beta, const at::Tensor& g,
                           const SequenceOptions& options);

// Whether the pair's chunk-parallel stages take deltabench's TF32 kernels where they serve (16-bit inputs,
// K of 32, 64 or 128: kernels/common/chunk_dout.cu, chunk_grads.cu, kernels/delta_rule/chunk_ut_fwd.cu,
// chunk_ut_bwd.cu), or the batched ATen products that were their first version. On unless set off: the
// off setting is for timing one against the other in the same run (bench/kernels_bench.cpp's
// "aten-stages:" rows). Process-wide; a call's setting holds for its backward.
void set_chunk_stage_kernels(bool on);
bool chunk_stage_kernels();

// The same Function with its forward by the ATen stages, on any device and in any floating dtype
// (fp64 computes in fp64, the rest in fp32); the sequential passes by the CUDA kernels when
// `state_kernels` is set (CUDA tensors only), else by ATen loops.
SequenceOutput chunk_train_stages(Family family, const SequenceShape& shape, const at::Tensor& q,
                                  const at::Tensor& k, const at::Tensor& v, const at::Tensor& beta,
                                  const at::Tensor& g, const SequenceOptions& options, bool state_kernels);

}  // namespace deltabench::detail
