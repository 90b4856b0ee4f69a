#include "models/short_conv.h"

#include <ATen/ATen.h>

#include <cmath>

namespace deltabench::models {

ShortConvolutionImpl::ShortConvolutionImpl(int64_t channels, int64_t kernel_size, bool silu)
    : kernel_size_(kernel_size), silu_(silu) {
  // torch.nn.Conv1d's default init: U(-b, b) with b = 1 / sqrt(fan_in), fan_in = kernel_size.
  const double bound = 1.0 / std::sqrt(static_cast<double>(kernel_size));
  weight = register_parameter("weight", at::empty({channels, 1, kernel_size}).uniform_(-bound, bound));
}

at::Tensor ShortConvolutionImpl::forward(const at::Tensor& x) {
  const int64_t C = x.size(2), T = x.size(1);
  at::Tensor y;
  if (x.is_cpu()) {
    // On the CPU a depthwise convolution of 4 taps is cheaper as 4 shifted multiply-adds over [B, T, C]
    // than through oneDNN's im2col (whose backward took 2 ms a call at the quick suite's shapes).
    const auto w = weight.squeeze(1).to(x.scalar_type());  // [C, kernel]
    const auto padded = at::constant_pad_nd(x, {0, 0, kernel_size_ - 1, 0});  // [B, T + kernel - 1, C]
    for (int64_t j = 0; j < kernel_size_; ++j) {
      const auto term = padded.narrow(1, j, T) * w.select(1, j);
      y = y.defined() ? y + term : term;
    }
  } else {
    // [B, C, T] padded on the left only: causal.
    const auto padded = at::constant_pad_nd(x.transpose(1, 2), {kernel_size_ - 1, 0});
    y = at::conv1d(padded, weight.to(x.scalar_type()), at::Tensor(), at::IntArrayRef{1}, at::IntArrayRef{0},
                   at::IntArrayRef{1}, C)
            .transpose(1, 2);
  }
  return silu_ ? at::silu(y) : y;
}

at::Tensor ShortConvolutionImpl::step(const at::Tensor& x, at::Tensor& window) {
  const auto full = at::cat({window, x.unsqueeze(-1)}, -1);            // [B, C, kernel]
  auto y = (full * weight.squeeze(1).to(x.scalar_type())).sum(-1);    // [B, C]
  window = full.slice(-1, 1);
  return silu_ ? at::silu(y) : y;
}

}  // namespace deltabench::models
