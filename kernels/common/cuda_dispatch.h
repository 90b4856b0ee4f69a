#pragma once
// The one place where a public op's call chooses its backend (SequenceOptions::backend): the CUDA
// kernels of kernels/common/cuda_kernels.h or the family's reference ops. Without a gradient the
// kernel is the fused chunk forward: chunk mode with chunk size 64, CUDA tensors in bf16, fp16 or
// fp32, K and V of 64 or 128. With a gradient it is the recurrent training pair
// (kernels/common/recurrent_train.h: K of 64 or 128, V a multiple of 32), taken under `kernel` only
// for now; `auto` trains on the reference ops. `kernel` where neither serves is an error that says why.

#include "kernels/common/reference_run.h"
#include "kernels/common/sequence_op.h"
#include "kernels/common/validate.h"
#include "kernels/family.h"

#include <ATen/core/Tensor.h>

#include <string>

namespace deltabench::detail {

// Empty when the CUDA kernel can serve this call; else why not, as the end of a sentence
// ("the tensors are on cpu, and the kernel runs on CUDA").
std::string kernel_unavailable(const SequenceShape& shape, const at::Tensor& q, const at::Tensor& k,
                               const at::Tensor& v, const at::Tensor& beta, const at::Tensor& g,
                               const SequenceOptions& options);

// The public op's body after validation: the kernel or the reference (`recurrent` or `chunk` by
// options.mode) as options.backend chooses, the call counted (kernels/common/backend.h) and its
// backend recorded in the output. The family's name is the op's name in the error of a `kernel`
// that cannot serve. The family becomes the kernel's template switches (cuda::Rule, the decay) here.
SequenceOutput dispatch(Family family, const SequenceShape& shape, const at::Tensor& q,
                        const at::Tensor& k, const at::Tensor& v, const at::Tensor& beta, const at::Tensor& g,
                        const SequenceOptions& options, reference::Fn recurrent, reference::Fn chunk);

}  // namespace deltabench::detail
