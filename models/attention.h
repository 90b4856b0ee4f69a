#pragma once
// Softmax attention: multi-head, causal, through at::scaled_dot_product_attention (FlashAttention on
// an H100), with an optional rotary embedding on the first rotary_dim dims of each head (MAD's
// attention uses one). Recurrent mode keeps a KV cache.

#include "models/config.h"
#include "models/mixer.h"

#include <torch/nn/modules/linear.h>

namespace deltabench::models {

class AttentionImpl : public SequenceMixer {
 public:
  AttentionImpl(int64_t d_model, const MixerConfig& config);
  at::Tensor forward(const at::Tensor& x) override;
  at::Tensor step(const at::Tensor& x, MixerState& state) override;

 private:
  // [B, H, T, D] with positions starting at `offset`.
  at::Tensor rotate(const at::Tensor& x, int64_t offset) const;

  int64_t heads_, head_dim_, rotary_dim_;
  double dropout_;
  torch::nn::Linear qkv_{nullptr}, out_{nullptr};
};

}  // namespace deltabench::models
