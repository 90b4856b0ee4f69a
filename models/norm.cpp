#include "models/norm.h"

#include <ATen/ATen.h>

namespace deltabench::models {

RMSNormImpl::RMSNormImpl(int64_t dim, double eps) : eps_(eps) {
  weight = register_parameter("weight", at::ones({dim}));
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) {
  const auto x32 = x.to(at::kFloat);
  const auto y = x32 * at::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps_);
  return (y * weight.to(at::kFloat)).to(x.scalar_type());
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x, const at::Tensor& gate) {
  const auto g32 = gate.to(at::kFloat);
  return (forward(x).to(at::kFloat) * at::silu(g32)).to(x.scalar_type());
}

NormImpl::NormImpl(NormKind kind, int64_t dim, double eps) {
  if (kind == NormKind::kLayerNorm) {
    layer_norm_ = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(eps)));
  } else {
    rms_norm_ = register_module("norm", RMSNorm(dim, eps));
  }
}

at::Tensor NormImpl::forward(const at::Tensor& x) {
  return layer_norm_ ? layer_norm_->forward(x) : rms_norm_->forward(x);
}

}  // namespace deltabench::models
