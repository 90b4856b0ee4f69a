#pragma once
// The one place where a public op's call chooses its backend (SequenceOptions::backend): the CUDA
// kernels of kernels/common/cuda_kernels.h or the family's reference ops. The kernel serves the chunk
// mode with chunk size 64, CUDA tensors in bf16, fp16 or fp32, K and V of 64 or 128, and no gradient
// (evaluation, generation): it has no backward yet, so training takes the reference path under
// `auto`, and `kernel` with a gradient needed is an error that says so.

#include "kernels/common/reference_run.h"
#include "kernels/common/sequence_op.h"
#include "kernels/common/validate.h"

#include <ATen/core/Tensor.h>

#include <string>

namespace deltabench::detail {

enum class KernelRule { kLinear, kDelta };

// Empty when the CUDA kernel can serve this call; else why not, as the end of a sentence
// ("the tensors are on cpu, and the kernel runs on CUDA").
std::string kernel_unavailable(const SequenceShape& shape, const at::Tensor& q, const at::Tensor& k,
                               const at::Tensor& v, const at::Tensor& beta, const at::Tensor& g,
                               const SequenceOptions& options);

// The public op's body after validation: the kernel or the reference (`recurrent` or `chunk` by
// options.mode) as options.backend chooses, the call counted (kernels/common/backend.h) and its
// backend recorded in the output. `op` names the op in the error of a `kernel` that cannot serve.
SequenceOutput dispatch(const char* op, KernelRule rule, const SequenceShape& shape, const at::Tensor& q,
                        const at::Tensor& k, const at::Tensor& v, const at::Tensor& beta, const at::Tensor& g,
                        const SequenceOptions& options, reference::Fn recurrent, reference::Fn chunk);

}  // namespace deltabench::detail
