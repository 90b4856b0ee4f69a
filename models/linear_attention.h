#pragma once
// Linear attention: feature map phi on q and k (identity, elu + 1, relu, silu), an optional
// normaliser o = phi(q)^T S / (phi(q)^T z) with z the running sum of phi(k), and an optional scalar
// decay: RetNet's fixed per-head gamma_h = 1 - 2^(-5 - h), or Mamba2's data-dependent form.

#include "kernels/common/sequence_op.h"
#include "models/config.h"
#include "models/mixer.h"

#include <torch/nn/modules/linear.h>

namespace deltabench::models {

// The normalised form without decay with its denominator apart: phi(q_t)^T S_t / (phi(q_t) . z_t + eps),
// S_t = sum_{s<=t} phi(k_s) v_s^T by the linear attention op on v alone (options' backend and scale: 1 for
// this form) and z_t = sum_{s<=t} phi(k_s) as a cumulative sum in fp32 (fp64 for fp64 v). The same ratio
// as the op on v with a ones column appended (whose last output column is phi(q_t) . z_t), which the
// training kernels' tiles of 32 value columns do not take. q, k [B, T, H, K], v [B, T, H, V]; returns
// [B, T, H, V] in v's dtype.
at::Tensor linear_attention_denominator_apart(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                              const SequenceOptions& options, double eps);

class LinearAttentionImpl : public SequenceMixer {
 public:
  LinearAttentionImpl(int64_t d_model, const MixerConfig& config);
  at::Tensor forward(const at::Tensor& x) override;
  at::Tensor step(const at::Tensor& x, MixerState& state) override;

 private:
  // Projections of x [B, T, d]: phi(q), phi(k) [B, T, H, K], v [B, T, H, V] (with a ones column for
  // the normaliser where `ones`), g [B, T, H] or undefined.
  struct Projected {
    at::Tensor q, k, v, g;
  };
  Projected project(const at::Tensor& x, bool ones);
  // [B, T, H, V(+1)] -> [B, T, d]; `normalised`: o has no ones column to divide by.
  at::Tensor finish(const at::Tensor& o, bool normalised = false);
  // Whether forward on x [B, T, d] runs linear_attention_denominator_apart: the normalised form without
  // decay under backend kernel, so that its op takes the training kernels, and under auto on CUDA from
  // kAutoApartMinLength tokens, where that was measured faster (kernels/linear_attn/NOTES.md).
  bool denominator_apart(const at::Tensor& x) const;
  static constexpr int64_t kAutoApartMinLength = 256;

  MixerConfig config_;
  int64_t heads_, key_dim_, value_dim_;
  torch::nn::Linear q_{nullptr}, k_{nullptr}, v_{nullptr}, a_{nullptr}, out_{nullptr};
  at::Tensor a_log_, dt_bias_;
};

}  // namespace deltabench::models
