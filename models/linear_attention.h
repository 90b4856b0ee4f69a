#pragma once
// Linear attention: feature map phi on q and k (identity, elu + 1, relu, silu), an optional
// normaliser o = phi(q)^T S / (phi(q)^T z) with z the running sum of phi(k), and an optional scalar
// decay: RetNet's fixed per-head gamma_h = 1 - 2^(-5 - h), or Mamba2's data-dependent form.

#include "models/config.h"
#include "models/mixer.h"

#include <torch/nn/modules/linear.h>

namespace deltabench::models {

class LinearAttentionImpl : public SequenceMixer {
 public:
  LinearAttentionImpl(int64_t d_model, const MixerConfig& config);
  at::Tensor forward(const at::Tensor& x) override;
  at::Tensor step(const at::Tensor& x, MixerState& state) override;

 private:
  // Projections of x [B, T, d]: phi(q), phi(k) [B, T, H, K], v [B, T, H, V] (with a ones column for
  // the normaliser), g [B, T, H] or undefined.
  struct Projected {
    at::Tensor q, k, v, g;
  };
  Projected project(const at::Tensor& x);
  at::Tensor finish(const at::Tensor& o);  // [B, T, H, V(+1)] -> [B, T, d]

  MixerConfig config_;
  int64_t heads_, key_dim_, value_dim_;
  torch::nn::Linear q_{nullptr}, k_{nullptr}, v_{nullptr}, a_{nullptr}, out_{nullptr};
  at::Tensor a_log_, dt_bias_;
};

}  // namespace deltabench::models
