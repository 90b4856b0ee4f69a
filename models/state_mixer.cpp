#include "models/state_mixer.h"

#include <ATen/ATen.h>

#include <cmath>

namespace deltabench::models {

StateMixerImpl::StateMixerImpl(StateMixerKind kind, int64_t d_model, double hidden_ratio) : kind_(kind) {
  const auto hidden = static_cast<int64_t>(std::llround(hidden_ratio * static_cast<double>(d_model)));
  const bool bias = kind == StateMixerKind::kMlp;
  up_ = register_module("up", torch::nn::Linear(torch::nn::LinearOptions(d_model, hidden).bias(bias)));
  if (kind == StateMixerKind::kSwiGlu) {
    gate_ = register_module("gate", torch::nn::Linear(torch::nn::LinearOptions(d_model, hidden).bias(false)));
  }
  down_ = register_module("down", torch::nn::Linear(torch::nn::LinearOptions(hidden, d_model).bias(bias)));
}

at::Tensor StateMixerImpl::forward(const at::Tensor& x) {
  if (kind_ == StateMixerKind::kSwiGlu) return down_->forward(at::silu(gate_->forward(x)) * up_->forward(x));
  return down_->forward(at::gelu(up_->forward(x), "tanh"));  // mad-lab's Mlp: GELU, tanh approximation
}

}  // namespace deltabench::models
