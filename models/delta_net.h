#pragma once
// DeltaNet and Gated DeltaNet with FLA's semantics, as one mixer: Gated DeltaNet is DeltaNet with
// use_decay (g = -exp(A_log) softplus(a + dt_bias)), the output gate and expand_v = 2 by default,
// so "decay on/off" is one switch like the others. Per token:
//   q, k, v = projections -> short causal depthwise conv (kernel 4, SiLU) -> heads
//   q, k    = qk_activation, then qk_norm (l2 by default)
//   beta    = sigmoid(b_proj(x)) or a fixed value, times 2 with negative eigenvalues
//   o       = delta_rule(q, k, v, beta) or gated_delta_rule(q, k, v, beta, g)
//   y       = o_proj(rmsnorm(o) [* silu(g_proj(x)) with the output gate])

#include "models/config.h"
#include "models/mixer.h"
#include "models/norm.h"
#include "models/short_conv.h"

#include <torch/nn/modules/linear.h>

namespace deltabench::models {

class DeltaNetImpl : public SequenceMixer {
 public:
  DeltaNetImpl(int64_t d_model, const MixerConfig& config);
  at::Tensor forward(const at::Tensor& x) override;
  at::Tensor step(const at::Tensor& x, MixerState& state) override;

  int64_t key_dim() const { return key_dim_; }
  int64_t value_dim() const { return value_dim_; }

 private:
  struct Projected {
    at::Tensor q, k, v, beta, g;  // [B, T, H, K], [B, T, H, K], [B, T, H, V], [B, T, H], [B, T, H]
  };
  // q, k, v after the short convolutions (or SiLU without them): [B, T, H * K] and [B, T, H * V].
  Projected heads(const at::Tensor& x, at::Tensor q, at::Tensor k, at::Tensor v);
  at::Tensor finish(const at::Tensor& x, const at::Tensor& o);

  MixerConfig config_;
  int64_t heads_, key_dim_, value_dim_;
  torch::nn::Linear q_{nullptr}, k_{nullptr}, v_{nullptr}, b_{nullptr}, a_{nullptr}, g_{nullptr}, out_{nullptr};
  ShortConvolution q_conv_{nullptr}, k_conv_{nullptr}, v_conv_{nullptr};
  RMSNorm o_norm_{nullptr};
  at::Tensor a_log_, dt_bias_;
};

}  // namespace deltabench::models
