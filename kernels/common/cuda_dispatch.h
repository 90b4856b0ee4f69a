#pragma once
// Where the public ops hand CUDA tensors to the CUDA kernels (kernels/common/cuda_kernels.h):
// the chunk mode with chunk size 64, no gradient needed (evaluation, generation), K and V of 64 or
// 128, bf16, fp16 or fp32 inputs, and options.allow_kernels. Training keeps the reference path
// until the kernels have a backward.

#include "kernels/common/sequence_op.h"
#include "kernels/common/validate.h"

#include <ATen/core/Tensor.h>

#include <optional>

namespace deltabench::detail {

enum class KernelRule { kLinear, kDelta };

// The kernel's output when it applies to these inputs; nullopt sends the caller to the reference.
std::optional<SequenceOutput> cuda_chunk_forward(KernelRule rule, const SequenceShape& shape, const at::Tensor& q,
                                                 const at::Tensor& k, const at::Tensor& v, const at::Tensor& beta,
                                                 const at::Tensor& g, const SequenceOptions& options);

}  // namespace deltabench::detail
