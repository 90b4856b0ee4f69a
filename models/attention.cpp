#include "models/attention.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

namespace deltabench::models {

AttentionImpl::AttentionImpl(int64_t d_model, const MixerConfig& c)
    : heads_(c.num_heads), head_dim_(d_model / c.num_heads), rotary_dim_(c.rotary_dim), dropout_(c.attention_dropout) {
  TORCH_CHECK(d_model % c.num_heads == 0, "attention: d_model (", d_model, ") must be divisible by num_heads (",
              c.num_heads, ")");
  TORCH_CHECK(rotary_dim_ % 2 == 0 && rotary_dim_ <= head_dim_, "attention: rotary_dim must be even and <= head dim ",
              head_dim_, ", got ", rotary_dim_);
  qkv_ = register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(d_model, 3 * d_model).bias(c.qkv_bias)));
  out_ = register_module("out", torch::nn::Linear(torch::nn::LinearOptions(d_model, d_model).bias(c.qkv_bias)));
}

at::Tensor AttentionImpl::rotate(const at::Tensor& x, int64_t offset) const {
  if (rotary_dim_ == 0) return x;
  const int64_t T = x.size(2), half = rotary_dim_ / 2;
  const auto f32 = x.options().dtype(at::kFloat);
  const auto inv_freq = at::pow(10000.0, -at::arange(0, rotary_dim_, 2, f32) / static_cast<double>(rotary_dim_));
  const auto angles = at::outer(at::arange(offset, offset + T, f32), inv_freq);  // [T, half]
  const auto cos = angles.cos().to(x.scalar_type()), sin = angles.sin().to(x.scalar_type());
  const auto x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  const auto rotated = at::cat({x1 * cos - x2 * sin, x2 * cos + x1 * sin}, -1);
  return at::cat({rotated, x.narrow(-1, rotary_dim_, head_dim_ - rotary_dim_)}, -1);
}

at::Tensor AttentionImpl::forward(const at::Tensor& x) {
  const int64_t B = x.size(0), T = x.size(1);
  // unbind, not three selects: its backward writes the three gradients into one tensor (a select's
  // backward zero-fills the whole [3, B, H, T, D] for each of them).
  const auto qkv = qkv_->forward(x).view({B, T, 3, heads_, head_dim_}).permute({2, 0, 3, 1, 4}).unbind(0);
  const auto q = rotate(qkv[0], 0), k = rotate(qkv[1], 0);
  const auto o = at::scaled_dot_product_attention(q, k, qkv[2], /*attn_mask=*/{}, is_training() ? dropout_ : 0.0,
                                                  /*is_causal=*/true);  // [B, H, T, D]
  return out_->forward(o.transpose(1, 2).reshape({B, T, heads_ * head_dim_}));
}

at::Tensor AttentionImpl::step(const at::Tensor& x, MixerState& state) {
  const int64_t B = x.size(0);
  const auto qkv = qkv_->forward(x).view({B, 1, 3, heads_, head_dim_}).permute({2, 0, 3, 1, 4});  // [3, B, H, 1, D]
  const auto q = rotate(qkv[0], state.position), k = rotate(qkv[1], state.position);
  state.keys = state.keys.defined() ? at::cat({state.keys, k}, 2) : k;
  state.values = state.values.defined() ? at::cat({state.values, qkv[2]}, 2) : qkv[2];
  ++state.position;
  // The one new query sees every cached position: no mask.
  const auto o = at::scaled_dot_product_attention(q, state.keys, state.values);  // [B, H, 1, D]
  return out_->forward(o.reshape({B, heads_ * head_dim_}));
}

}  // namespace deltabench::models
