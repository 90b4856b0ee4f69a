#pragma once
// The short convolution on deltabench's CUDA kernels (kernels/common/causal_conv1d.h) as an autograd
// function: one kernel forward and one backward (plus the sum of dw's per-tile parts), on x's own
// [B, T, C] layout. The ATen form it replaces (models/short_conv.cpp) transposes x to [B, C, T], pads it,
// runs cuDNN's grouped convolution, transposes back and applies SiLU, and as many passes again in the
// backward. ShortConvolution takes it on CUDA under the kernel backend; tests/models/fused_cuda_test.cpp
// compares it with the ATen form, values and gradients.

#include <ATen/core/Tensor.h>

#include <string>

namespace deltabench::models {

// y[b, t, c] = act(sum_j weight[c, j] x[b, t - K + 1 + j, c]): x [B, T, C] on CUDA (fp32, bf16 or fp16),
// weight [C, K] of any floating dtype (its gradient comes back in that dtype). Throws c10::Error saying why
// where the kernels do not serve the call (cuda_conv1d_serves gives the reason first).
at::Tensor causal_conv1d_cuda(const at::Tensor& x, const at::Tensor& weight, bool silu);

// Empty where the CUDA kernels serve x (and a weight of K taps), else the reason.
std::string cuda_conv1d_serves(const at::Tensor& x, int64_t kernel_size);

}  // namespace deltabench::models
