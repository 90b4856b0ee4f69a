#include "models/linear_attention.h"

#include "kernels/linear_attn/op.h"
#include "models/gates.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cmath>

namespace deltabench::models {
namespace {

constexpr double kEps = 1e-6;  // added to the normaliser's denominator

}  // namespace

LinearAttentionImpl::LinearAttentionImpl(int64_t d_model, const MixerConfig& c) : config_(c), heads_(c.num_heads) {
  const auto dims = head_dims(d_model, c);
  key_dim_ = dims.key;
  value_dim_ = dims.value;
  const auto linear = [&](int64_t in, int64_t out) {
    return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false));
  };
  q_ = register_module("q_proj", linear(d_model, heads_ * key_dim_));
  k_ = register_module("k_proj", linear(d_model, heads_ * key_dim_));
  v_ = register_module("v_proj", linear(d_model, heads_ * value_dim_));
  if (c.decay == DecayKind::kData) {
    a_ = register_module("a_proj", linear(d_model, heads_));
    a_log_ = register_parameter("A_log", init_a_log(heads_));
    dt_bias_ = register_parameter("dt_bias", init_dt_bias(heads_));
  }
  out_ = register_module("o_proj", linear(heads_ * value_dim_, d_model));
}

at::Tensor linear_attention_denominator_apart(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                              const SequenceOptions& options, double eps) {
  TORCH_CHECK(!options.initial_state.defined() && !options.output_final_state,
              "linear attention with its denominator apart: no initial or final state (the ones column's state "
              "carries z; use the op on v with that column)");
  // fp32 at least: a 16-bit running sum over T loses the later terms.
  const auto f = v.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const auto num = linear_attention(q, k, v, at::Tensor(), options).o;  // [B, T, H, V]
  const auto z = k.to(f).cumsum(1);                                     // [B, T, H, K]
  const auto den = (q.to(f) * z).sum(-1, /*keepdim=*/true);             // [B, T, H, 1]
  return (num.to(f) / (den + eps)).to(v.scalar_type());
}

LinearAttentionImpl::Projected LinearAttentionImpl::project(const at::Tensor& x, bool ones) {
  const int64_t B = x.size(0), T = x.size(1);
  Projected p;
  p.q = apply_feature_map(q_->forward(x).view({B, T, heads_, key_dim_}), config_.feature_map);
  p.k = apply_feature_map(k_->forward(x).view({B, T, heads_, key_dim_}), config_.feature_map);
  p.v = v_->forward(x).view({B, T, heads_, value_dim_});
  if (ones) p.v = at::cat({p.v, at::ones_like(p.v.narrow(-1, 0, 1))}, -1);
  p.q = p.q.to(p.v.scalar_type());  // one dtype for the op, also under autocast
  p.k = p.k.to(p.v.scalar_type());
  if (config_.decay == DecayKind::kRetNet) {
    // gamma_h = 1 - 2^(-5 - h): per-head constants, the same at every step.
    const auto h = at::arange(heads_, x.options().dtype(at::kFloat));
    p.g = at::log1p(-at::pow(2.0, -5.0 - h)).expand({B, T, heads_});
  } else if (config_.decay == DecayKind::kData) {
    p.g = decay_gate(a_->forward(x), a_log_, dt_bias_);
  }
  return p;
}

at::Tensor LinearAttentionImpl::finish(const at::Tensor& o, bool normalised) {
  at::Tensor y = o;
  if (config_.normalize && !normalised) y = o.narrow(-1, 0, value_dim_) / (o.narrow(-1, value_dim_, 1) + kEps);
  return out_->forward(y.reshape({o.size(0), o.size(1), heads_ * value_dim_}));
}

bool LinearAttentionImpl::denominator_apart(const at::Tensor& x) const {
  if (!config_.normalize || config_.decay != DecayKind::kNone) return false;
  if (config_.backend == BackendChoice::kKernel) return true;
  // auto: on CUDA from 256 tokens, where the captured Zoology step on the training kernels was measured
  // faster than the ones column on the reference ops (H200, 43145b5: 4.70 against 5.56 ms
  // at L 256, 5.51 against 6.83 at L 512; at L 64 2.47 against 2.32, so not there; kernels/linear_attn/NOTES.md).
  return config_.backend == BackendChoice::kAuto && x.is_cuda() && x.size(1) >= kAutoApartMinLength;
}

at::Tensor LinearAttentionImpl::forward(const at::Tensor& x) {
  const bool apart = denominator_apart(x);
  const auto p = project(x, config_.normalize && !apart);
  SequenceOptions options;
  options.backend = config_.backend;
  options.chunk_size = config_.chunk_size;
  set_recompute(options, config_.recompute);
  if (config_.normalize) options.scale = 1.0;  // the ratio cancels any scale
  if (apart) return finish(linear_attention_denominator_apart(p.q, p.k, p.v, options, kEps), /*normalised=*/true);
  return finish(linear_attention(p.q, p.k, p.v, p.g, options).o);
}

at::Tensor LinearAttentionImpl::step(const at::Tensor& x, MixerState& state) {
  // Decoding carries z in the state's ones column, whatever forward did: the same ratio.
  const auto p = project(x.unsqueeze(1), config_.normalize);
  SequenceOptions options;
  options.backend = config_.backend;
  options.mode = Mode::kRecurrent;
  options.output_final_state = true;
  options.initial_state = state.memory;
  if (config_.normalize) options.scale = 1.0;
  auto out = linear_attention(p.q, p.k, p.v, p.g, options);
  state.memory = out.final_state;
  ++state.position;
  return finish(out.o).squeeze(1);
}

}  // namespace deltabench::models
