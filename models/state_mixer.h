#pragma once
// The state mixer after each sequence mixer: an MLP (Linear, tanh-GELU, Linear) or SwiGLU
// (down(silu(gate(x)) * up(x))), hidden width = hidden_ratio * d_model.

#include "models/config.h"

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

namespace deltabench::models {

class StateMixerImpl : public torch::nn::Module {
 public:
  StateMixerImpl(StateMixerKind kind, int64_t d_model, double hidden_ratio);
  at::Tensor forward(const at::Tensor& x);

 private:
  StateMixerKind kind_;
  torch::nn::Linear up_{nullptr}, gate_{nullptr}, down_{nullptr};
};
TORCH_MODULE(StateMixer);

}  // namespace deltabench::models
