#pragma once
// The recurrent training kernels (kernels/common/recurrent_train.cuh) as an autograd Function: the
// public ops' output on CUDA with gradients to q, k, v, beta, g and the initial state computed by
// deltabench's backward kernel, not by ATen autograd. kernels/common/cuda_dispatch.cpp calls it.

#include "kernels/common/sequence_op.h"
#include "kernels/common/validate.h"
#include "kernels/family.h"

#include <ATen/core/Tensor.h>

#include <string>

namespace deltabench::detail {

// Empty when the recurrent training kernels can serve this call (CUDA; bf16, fp16 or fp32; K of 32,
// 64, 128 or 256 and V a multiple of 32), else why not, as the end of a sentence.
std::string recurrent_train_unavailable(const SequenceShape& shape, const at::Tensor& q);

// o and, with options.output_final_state, the final state (fp32), differentiable.
SequenceOutput recurrent_train(Family family, const SequenceShape& shape, const at::Tensor& q, const at::Tensor& k,
                               const at::Tensor& v, const at::Tensor& beta, const at::Tensor& g,
                               const SequenceOptions& options);

// The training pair's forward alone, without checkpoints and outside autograd: a call without a
// gradient that the chunk and decode kernels do not take (kernels/common/cuda_dispatch.h).
SequenceOutput recurrent_forward(Family family, const SequenceShape& shape, const at::Tensor& q, const at::Tensor& k,
                                 const at::Tensor& v, const at::Tensor& beta, const at::Tensor& g,
                                 const SequenceOptions& options);

}  // namespace deltabench::detail
