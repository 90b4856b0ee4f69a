#pragma once
// Fused CPU loops for the elementwise pieces around the sequence ops, each a custom autograd
// function with a hand-written backward. At the quick suite's shapes ([64, 64, 64] activations, 1
// MiB each) the CPU step is bound by passes over memory, not by arithmetic: the short convolution
// as shifted multiply-adds was about twenty ATen passes (pad, four products, three sums, SiLU, and
// as many again in the backward) and the L2 norm of q and k eight. Each fused function makes one
// pass forward and one backward. CPU tensors of fp32 or fp64 only; the modules call them there and
// keep their ATen forms elsewhere (CUDA, other dtypes), which tests/models/fused_cpu_test.cpp
// compares them against.

#include <ATen/core/Tensor.h>

namespace deltabench::models {

// Causal depthwise convolution over time with an optional SiLU: x [B, T, C], weight [C, K];
// y[b, t, c] = act(sum_j weight[c, j] x[b, t - K + 1 + j, c]), inputs before t = 0 being zero.
at::Tensor causal_conv1d_cpu(const at::Tensor& x, const at::Tensor& weight, bool silu);

// x * rsqrt(sum(x^2, -1) + eps) over the last dimension.
at::Tensor l2_normalize_cpu(const at::Tensor& x, double eps);

// Whether the fused CPU functions serve `x`: a CPU tensor of fp32 or fp64.
bool fused_cpu_applies(const at::Tensor& x);

}  // namespace deltabench::models
