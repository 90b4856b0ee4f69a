#include "models/language_model.h"

#include "models/attention.h"
#include "models/delta_net.h"
#include "models/fused_cuda.h"
#include "models/linear_attention.h"
#include "models/pieces.h"
#include "models/short_conv.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/nn/init.h>

#include <cmath>

namespace deltabench::models {
namespace {

std::shared_ptr<SequenceMixer> make_mixer(int64_t d_model, const MixerConfig& c) {
  switch (c.kind) {
    case MixerKind::kAttention: return std::make_shared<AttentionImpl>(d_model, c);
    case MixerKind::kLinearAttention: return std::make_shared<LinearAttentionImpl>(d_model, c);
    case MixerKind::kDeltaNet:
    case MixerKind::kGatedDeltaNet: return std::make_shared<DeltaNetImpl>(d_model, c);
  }
  TORCH_CHECK(false, "unknown mixer kind");
}

// An embedding lookup: on CUDA under the kernel and auto backends with the table's gradient from
// deltabench's kernels where they serve (models/fused_cuda.h).
at::Tensor lookup(torch::nn::Embedding& table, const at::Tensor& ids, BackendChoice backend) {
  if (takes_cuda_kernels(backend, ids, "embedding", [&] { return cuda_embedding_serves(table->weight, ids); })) {
    count_piece_call(Piece::kEmbedding, PieceForm::kKernel);
    return embedding_cuda(table->weight, ids);
  }
  count_piece_call(Piece::kEmbedding, PieceForm::kAten);
  return table->forward(ids);
}

}  // namespace

BlockImpl::BlockImpl(const ModelConfig& c) {
  mixer_norm_ = register_module("mixer_norm", Norm(c.norm, c.d_model, c.norm_eps, c.mixer.backend));
  mixer_ = register_module("mixer", make_mixer(c.d_model, c.mixer));
  if (c.state_mixer != StateMixerKind::kNone) {
    state_norm_ = register_module("state_norm", Norm(c.norm, c.d_model, c.norm_eps, c.mixer.backend));
    state_mixer_ = register_module("state_mixer", StateMixer(c.state_mixer, c.d_model, c.hidden_ratio));
  }
}

at::Tensor BlockImpl::forward(const at::Tensor& x) {
  auto h = x + mixer_->forward(mixer_norm_->forward(x));
  if (state_mixer_) h = h + state_mixer_->forward(state_norm_->forward(h));
  return h;
}

at::Tensor BlockImpl::step(const at::Tensor& x, MixerState& state) {
  auto h = x + mixer_->step(mixer_norm_->forward(x), state);
  if (state_mixer_) h = h + state_mixer_->forward(state_norm_->forward(h));
  return h;
}

LanguageModelImpl::LanguageModelImpl(const ModelConfig& c) : config_(c) {
  TORCH_CHECK(c.vocab_size > 0 && c.d_model > 0 && c.num_layers > 0,
              "model: vocab_size, d_model and num_layers must be positive");
  embedding_ = register_module("embedding", torch::nn::Embedding(c.vocab_size, c.d_model));
  if (c.max_position_embeddings > 0) {
    position_ = register_module("position", torch::nn::Embedding(c.max_position_embeddings, c.d_model));
  }
  dropout_ = register_module("dropout", torch::nn::Dropout(c.embed_dropout));
  blocks_ = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_layers; ++i) blocks_->push_back(Block(c));
  if (c.backbone == Backbone::kAutoEncoder) {
    TORCH_CHECK(c.d_model >= 4, "model: the autoencoder's sinusoidal position embeddings need d_model >= 4, got ",
                c.d_model);
    decoder_norm1_ = register_module("decoder_norm1", Norm(c.norm, c.d_model, c.norm_eps, c.mixer.backend));
    decoder1_ = register_module("decoder1", torch::nn::Linear(c.d_model, c.d_model));
    decoder_norm2_ = register_module("decoder_norm2", Norm(c.norm, c.d_model, c.norm_eps, c.mixer.backend));
    decoder2_ = register_module("decoder2", torch::nn::Linear(c.d_model, c.d_model));
    unembed_norm_ = register_module("unembed_norm", Norm(c.norm, c.d_model, c.norm_eps, c.mixer.backend));
    unembed_ = register_module("unembed", torch::nn::Linear(c.d_model, c.vocab_size));
  } else {
    final_norm_ = register_module("final_norm", Norm(c.norm, c.d_model, c.norm_eps, c.mixer.backend));
    if (!c.tie_embeddings) {
      lm_head_ = register_module("lm_head", torch::nn::Linear(torch::nn::LinearOptions(c.d_model, c.vocab_size).bias(false)));
    }
  }
  // N(0, 0.02) for every linear, embedding and short-convolution weight, zero biases: FLA's
  // _init_weights, which draws every nn.Conv1d (its ShortConvolution is one) as it draws the linear
  // layers (models/delta_net/modeling_delta_net.py at bc3b101). Norms, A_log and dt_bias keep their own.
  torch::NoGradGuard no_grad;
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* linear = m->as<torch::nn::Linear>()) {
      linear->weight.normal_(0.0, 0.02);
      if (linear->bias.defined()) linear->bias.zero_();
    } else if (auto* embedding = m->as<torch::nn::Embedding>()) {
      embedding->weight.normal_(0.0, 0.02);
    } else if (auto* conv = m->as<ShortConvolutionImpl>()) {
      conv->weight.normal_(0.0, 0.02);
    }
  }
}

at::Tensor LanguageModelImpl::head(const at::Tensor& h) {
  if (unembed_) return unembed_->forward(unembed_norm_->forward(h));
  const auto y = final_norm_->forward(h);
  return lm_head_ ? lm_head_->forward(y) : at::linear(y, embedding_->weight);
}

at::Tensor sincos_position_embeddings(int64_t positions, int64_t dim, const at::TensorOptions& options) {
  const int64_t half = dim / 2;
  const auto f32 = options.dtype(at::kFloat);
  const auto frequencies = at::exp(at::arange(half, f32) * (-std::log(10000.0) / static_cast<double>(half - 1)));
  const auto angles = at::arange(positions, f32).unsqueeze(1) * frequencies.unsqueeze(0);  // [positions, half]
  auto emb = at::cat({angles.sin(), angles.cos()}, 1);
  if (dim % 2 == 1) emb = at::cat({emb, at::zeros({positions, 1}, f32)}, 1);
  return emb;
}

at::Tensor LanguageModelImpl::forward(const at::Tensor& tokens) { return head(hidden(tokens)); }

at::Tensor LanguageModelImpl::hidden(const at::Tensor& tokens) {
  const int64_t T = tokens.size(1);
  auto h = lookup(embedding_, tokens, config_.mixer.backend);
  if (position_) {
    TORCH_CHECK(T <= config_.max_position_embeddings, "model: sequence length ", T,
                " exceeds max_position_embeddings ", config_.max_position_embeddings);
    h = h + lookup(position_, at::arange(T, tokens.options()), config_.mixer.backend);
  }
  h = dropout_->forward(h);
  for (const auto& block : *blocks_) h = block->as<Block>()->forward(h);
  if (!unembed_) return h;
  // The autoencoder: the last position's output, broadcast to every position with its embedding.
  const auto encoding = h.select(1, T - 1).unsqueeze(1);                                 // [B, 1, d]
  auto x = encoding + sincos_position_embeddings(T, config_.d_model, h.options()).to(h.scalar_type());  // [B, T, d]
  x = at::gelu(decoder1_->forward(decoder_norm1_->forward(x)));
  return at::gelu(decoder2_->forward(decoder_norm2_->forward(x)));
}

at::Tensor LanguageModelImpl::step(const at::Tensor& tokens, ModelState& state) {
  TORCH_CHECK(!unembed_, "model: the autoencoder backbone has no recurrent mode (it decodes from the whole sequence)");
  if (state.layers.empty()) state.layers.resize(config_.num_layers);
  auto h = embedding_->forward(tokens);  // [B, d]
  if (position_) {
    TORCH_CHECK(state.position < config_.max_position_embeddings, "model: position ", state.position,
                " exceeds max_position_embeddings ", config_.max_position_embeddings);
    h = h + position_->weight[state.position];
  }
  h = dropout_->forward(h);
  for (size_t i = 0; i < blocks_->size(); ++i) h = blocks_[i]->as<Block>()->step(h, state.layers[i]);
  ++state.position;
  return head(h);
}

int64_t parameter_count(torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

}  // namespace deltabench::models
