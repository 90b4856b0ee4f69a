#pragma once
// The short convolution of the delta-rule layers (FLA's ShortConvolution, Zoology's conv_size 4) as
// CUDA kernels: a causal depthwise convolution over time with an optional SiLU,
//   y[b, t, c] = act(sum_j w[c, j] x[b, t - K + 1 + j, c]),  x before t = 0 being zero,
// on x [B, T, C] contiguous (channels last, as the projections write it), w [C, K] fp32. Forward and
// backward; the backward recomputes the pre-activation rather than saving it. No allocation, no host
// synchronisation: capturable in a CUDA graph. models/fused_cuda.h wraps them as an autograd function.

#include "kernels/common/cuda_kernels.h"

#include <cstdint>

namespace deltabench::cuda {

// Threads per block (one channel each) and time steps per block.
inline constexpr int kConvThreads = 128, kConvTile = 64;

struct CausalConvParams {
  Dtype dtype = Dtype::kBF16;  // of x, y, dy and dx
  const void* x = nullptr;     // [B, T, C]
  const float* w = nullptr;    // [C, K] fp32
  void* y = nullptr;           // forward: [B, T, C]
  const void* dy = nullptr;    // backward: [B, T, C], the gradient at y
  void* dx = nullptr;          // backward: [B, T, C]
  float* dw_parts = nullptr;   // backward: [B * causal_conv1d_tiles(T), C, K] fp32; their sum is dw
  int64_t B = 0, T = 0, C = 0, K = 0;
  bool silu = true;
};

bool causal_conv1d_supports(int64_t K);  // kernel sizes 2 to 4
int64_t causal_conv1d_tiles(int64_t T);  // the time tiles of kConvTile steps
// Throw std::runtime_error naming themselves for sizes they do not take or a failed launch.
void causal_conv1d_forward(const CausalConvParams& p, void* stream);
void causal_conv1d_backward(const CausalConvParams& p, void* stream);

}  // namespace deltabench::cuda
