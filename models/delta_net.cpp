#include "models/delta_net.h"

#include "kernels/delta_rule/op.h"
#include "kernels/gated_delta_rule/op.h"
#include "models/gates.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cmath>

namespace deltabench::models {

DeltaNetImpl::DeltaNetImpl(int64_t d_model, const MixerConfig& c) : config_(c), heads_(c.num_heads) {
  const auto dims = head_dims(d_model, c);
  key_dim_ = dims.key;
  value_dim_ = dims.value;
  const auto linear = [&](int64_t in, int64_t out) {
    return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false));
  };
  q_ = register_module("q_proj", linear(d_model, heads_ * key_dim_));
  k_ = register_module("k_proj", linear(d_model, heads_ * key_dim_));
  v_ = register_module("v_proj", linear(d_model, heads_ * value_dim_));
  if (!c.fixed_beta) b_ = register_module("b_proj", linear(d_model, heads_));
  if (c.use_decay) {
    a_ = register_module("a_proj", linear(d_model, heads_));
    a_log_ = register_parameter("A_log", init_a_log(heads_));
    dt_bias_ = register_parameter("dt_bias", init_dt_bias(heads_));
  }
  if (c.use_short_conv) {
    const bool qk_silu = c.qk_activation == FeatureMap::kSilu;
    q_conv_ = register_module("q_conv", ShortConvolution(heads_ * key_dim_, c.conv_size, qk_silu, c.backend));
    k_conv_ = register_module("k_conv", ShortConvolution(heads_ * key_dim_, c.conv_size, qk_silu, c.backend));
    v_conv_ = register_module("v_conv", ShortConvolution(heads_ * value_dim_, c.conv_size, true, c.backend));
  }
  if (c.use_output_gate) g_ = register_module("g_proj", linear(d_model, heads_ * value_dim_));
  o_norm_ = register_module("o_norm", RMSNorm(value_dim_, c.norm_eps, c.backend));
  out_ = register_module("o_proj", linear(heads_ * value_dim_, d_model));
}

DeltaNetImpl::Projected DeltaNetImpl::heads(const at::Tensor& x, at::Tensor q, at::Tensor k, at::Tensor v) {
  const int64_t B = x.size(0), T = x.size(1);
  Projected p;
  p.q = q.view({B, T, heads_, key_dim_});
  p.k = k.view({B, T, heads_, key_dim_});
  p.v = v.view({B, T, heads_, value_dim_});
  // SiLU is applied by the convolutions (or before them without); the other activations come here.
  if (config_.qk_activation != FeatureMap::kSilu) {
    p.q = apply_feature_map(p.q, config_.qk_activation);
    p.k = apply_feature_map(p.k, config_.qk_activation);
  }
  // Under autocast the norms' reductions come out in fp32 while v stays bf16: the op takes one
  // dtype, v's (FLA's layers do the same with .to(q)).
  p.q = apply_qk_norm(p.q, config_.qk_norm, config_.norm_eps, config_.backend).to(p.v.scalar_type());
  p.k = apply_qk_norm(p.k, config_.qk_norm, config_.norm_eps, config_.backend).to(p.v.scalar_type());
  p.beta = config_.fixed_beta ? at::full({B, T, heads_}, *config_.fixed_beta, p.q.options())
                              : at::sigmoid(b_->forward(x)).to(p.v.scalar_type());
  if (config_.allow_neg_eigval) p.beta = p.beta * 2;
  if (config_.use_decay) p.g = decay_gate(a_->forward(x), a_log_, dt_bias_);
  return p;
}

at::Tensor DeltaNetImpl::finish(const at::Tensor& x, const at::Tensor& o) {
  const int64_t B = o.size(0), T = o.size(1);
  const auto y = config_.use_output_gate
                     ? o_norm_->forward(o, g_->forward(x).view({B, T, heads_, value_dim_}))
                     : o_norm_->forward(o);
  return out_->forward(y.reshape({B, T, heads_ * value_dim_}));
}

at::Tensor DeltaNetImpl::forward(const at::Tensor& x) {
  at::Tensor q = q_->forward(x), k = k_->forward(x), v = v_->forward(x);
  if (config_.use_short_conv) {
    q = q_conv_->forward(q);
    k = k_conv_->forward(k);
    v = v_conv_->forward(v);
  } else {
    if (config_.qk_activation == FeatureMap::kSilu) {
      q = at::silu(q);
      k = at::silu(k);
    }
    v = at::silu(v);
  }
  const auto p = heads(x, q, k, v);
  SequenceOptions options;
  options.backend = config_.backend;
  options.chunk_size = config_.chunk_size;
  set_recompute(options, config_.recompute);
  const auto o = config_.use_decay ? gated_delta_rule(p.q, p.k, p.v, p.beta, p.g, options).o
                                   : delta_rule(p.q, p.k, p.v, p.beta, options).o;
  return finish(x, o);
}

at::Tensor DeltaNetImpl::step(const at::Tensor& x_t, MixerState& state) {
  const auto x = x_t.unsqueeze(1);  // [B, 1, d]
  at::Tensor q = q_->forward(x_t), k = k_->forward(x_t), v = v_->forward(x_t);  // [B, C]
  if (config_.use_short_conv) {
    if (state.conv.empty()) {
      for (const auto* c : {&q_conv_, &k_conv_, &v_conv_}) {
        const int64_t channels = (*c)->weight.size(0);
        state.conv.push_back(at::zeros({x_t.size(0), channels, (*c)->kernel_size() - 1}, x_t.options()));
      }
    }
    q = q_conv_->step(q, state.conv[0]);
    k = k_conv_->step(k, state.conv[1]);
    v = v_conv_->step(v, state.conv[2]);
  } else {
    if (config_.qk_activation == FeatureMap::kSilu) {
      q = at::silu(q);
      k = at::silu(k);
    }
    v = at::silu(v);
  }
  const auto p = heads(x, q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1));
  SequenceOptions options;
  options.backend = config_.backend;
  options.mode = Mode::kRecurrent;
  options.output_final_state = true;
  options.initial_state = state.memory;
  auto out = config_.use_decay ? gated_delta_rule(p.q, p.k, p.v, p.beta, p.g, options)
                               : delta_rule(p.q, p.k, p.v, p.beta, options);
  state.memory = out.final_state;
  ++state.position;
  return finish(x, out.o).squeeze(1);
}

}  // namespace deltabench::models
