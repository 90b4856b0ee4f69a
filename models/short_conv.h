#pragma once
// FLA's ShortConvolution: a causal depthwise 1-D convolution over time (kernel 4 by default), with
// an optional SiLU, and a recurrent form that keeps the last kernel - 1 inputs. Where it computes:
// on the CPU (fp32, fp64) one fused loop (models/fused_cpu.h); on CUDA under the kernel backend
// deltabench's kernels (models/fused_cuda.h), or an error saying why they cannot serve; otherwise
// ATen's grouped convolution.

#include "kernels/common/backend_choice.h"

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

namespace deltabench::models {

class ShortConvolutionImpl : public torch::nn::Module {
 public:
  ShortConvolutionImpl(int64_t channels, int64_t kernel_size, bool silu,
                       BackendChoice backend = BackendChoice::kAuto);

  // x: [B, T, C] -> [B, T, C]. Output t sees inputs t - kernel + 1 .. t only.
  at::Tensor forward(const at::Tensor& x);

  // One token. x: [B, C]; window: [B, C, kernel - 1], the previous inputs (zeros at the start),
  // updated in place of the caller's tensor.
  at::Tensor step(const at::Tensor& x, at::Tensor& window);

  int64_t kernel_size() const { return kernel_size_; }

  at::Tensor weight;  // [C, 1, kernel]

 private:
  int64_t kernel_size_;
  bool silu_;
  BackendChoice backend_;
};
TORCH_MODULE(ShortConvolution);

}  // namespace deltabench::models
