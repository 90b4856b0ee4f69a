#include "models/short_conv.h"

#include "models/fused_cpu.h"
#include "models/fused_cuda.h"
#include "models/pieces.h"

#include <ATen/ATen.h>

#include <cmath>

namespace deltabench::models {

ShortConvolutionImpl::ShortConvolutionImpl(int64_t channels, int64_t kernel_size, bool silu, BackendChoice backend)
    : kernel_size_(kernel_size), silu_(silu), backend_(backend) {
  // torch.nn.Conv1d's default init: U(-b, b) with b = 1 / sqrt(fan_in), fan_in = kernel_size.
  const double bound = 1.0 / std::sqrt(static_cast<double>(kernel_size));
  weight = register_parameter("weight", at::empty({channels, 1, kernel_size}).uniform_(-bound, bound));
}

at::Tensor ShortConvolutionImpl::forward(const at::Tensor& x) {
  const int64_t C = x.size(2);
  // On the CPU one fused pass forward and one backward (models/fused_cpu.h): the step there is bound
  // by passes over memory, and oneDNN's depthwise im2col took 2 ms a call in its backward at the
  // quick suite's shapes.
  if (fused_cpu_applies(x)) {
    count_piece_call(Piece::kShortConv, PieceForm::kCpuFused);
    return causal_conv1d_cpu(x, weight.squeeze(1).to(x.scalar_type()), silu_);
  }
  // On CUDA under `auto` and `kernel`, deltabench's kernels on x's own layout (the weight's gradient in
  // fp32 straight from them); where they cannot serve, `auto` takes the ATen form and `kernel` says why.
  if (takes_cuda_kernels(backend_, x, "short convolution", [&] { return cuda_conv1d_serves(x, kernel_size_); })) {
    count_piece_call(Piece::kShortConv, PieceForm::kKernel);
    return causal_conv1d_cuda(x, weight.squeeze(1), silu_);
  }
  count_piece_call(Piece::kShortConv, PieceForm::kAten);
  // [B, C, T] padded on the left only: causal.
  const auto padded = at::constant_pad_nd(x.transpose(1, 2), {kernel_size_ - 1, 0});
  const auto y = at::conv1d(padded, weight.to(x.scalar_type()), at::Tensor(), at::IntArrayRef{1}, at::IntArrayRef{0},
                            at::IntArrayRef{1}, C)
                     .transpose(1, 2);
  return silu_ ? at::silu(y) : y;
}

at::Tensor ShortConvolutionImpl::step(const at::Tensor& x, at::Tensor& window) {
  const auto full = at::cat({window, x.unsqueeze(-1)}, -1);            // [B, C, kernel]
  auto y = (full * weight.squeeze(1).to(x.scalar_type())).sum(-1);    // [B, C]
  window = full.slice(-1, 1);
  return silu_ ? at::silu(y) : y;
}

}  // namespace deltabench::models
