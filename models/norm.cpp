#include "models/norm.h"

#include "models/fused_cuda.h"
#include "models/pieces.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <c10/util/Exception.h>

namespace deltabench::models {

RMSNormImpl::RMSNormImpl(int64_t dim, double eps, BackendChoice backend) : eps_(eps), backend_(backend) {
  weight = register_parameter("weight", at::ones({dim}));
}

bool RMSNormImpl::on_kernels(const at::Tensor& x, const at::Tensor& gate) const {
  return takes_cuda_kernels(backend_, x, "RMSNorm", [&] { return cuda_rms_norm_serves(x, gate); });
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) {
  if (on_kernels(x, at::Tensor())) {
    count_piece_call(Piece::kRmsNorm, PieceForm::kKernel);
    return rms_norm_cuda(x, weight, at::Tensor(), eps_);
  }
  count_piece_call(Piece::kRmsNorm, PieceForm::kAten);
  const auto x32 = x.to(at::kFloat);
  const auto y = x32 * at::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps_);
  return (y * weight.to(at::kFloat)).to(x.scalar_type());
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x, const at::Tensor& gate) {
  if (backend_ != BackendChoice::kReference && x.is_cuda()) {
    // The kernels take the gate in x's dtype (the ATen form below computes in fp32 and returns x's).
    const auto g = gate.to(x.scalar_type());
    if (on_kernels(x, g)) {
      count_piece_call(Piece::kRmsNorm, PieceForm::kKernel);
      return rms_norm_cuda(x, weight, g, eps_);
    }
  }
  // forward(x) counts the norm's form; the gate is ATen's here.
  const auto g32 = gate.to(at::kFloat);
  return (forward(x).to(at::kFloat) * at::silu(g32)).to(x.scalar_type());
}

NormImpl::NormImpl(NormKind kind, int64_t dim, double eps, BackendChoice backend) : eps_(eps), backend_(backend) {
  if (kind == NormKind::kLayerNorm) {
    layer_norm_ = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(eps)));
  } else {
    rms_norm_ = register_module("norm", RMSNorm(dim, eps, backend));
  }
}

at::Tensor NormImpl::forward(const at::Tensor& x) {
  if (rms_norm_) return rms_norm_->forward(x);
  // On CUDA under the kernel and auto backends, deltabench's kernels where they serve
  // (models/fused_cuda.h). Under autocast ATen's layer_norm runs in fp32 and returns fp32; so do they.
  if (takes_cuda_kernels(backend_, x, "LayerNorm", [&] { return cuda_layer_norm_serves(x); })) {
    const bool upcast = at::autocast::is_autocast_enabled(at::kCUDA) && x.scalar_type() != at::kFloat;
    count_piece_call(Piece::kLayerNorm, PieceForm::kKernel);
    return layer_norm_cuda(upcast ? x.to(at::kFloat) : x, layer_norm_->weight, layer_norm_->bias, eps_);
  }
  count_piece_call(Piece::kLayerNorm, PieceForm::kAten);
  return layer_norm_->forward(x);
}

}  // namespace deltabench::models
