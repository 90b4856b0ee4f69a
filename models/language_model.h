#pragma once
// The model every experiment trains: token embedding, an optional learned position embedding,
// num_layers blocks of pre-norm -> sequence mixer -> residual (each optionally followed by pre-norm ->
// state mixer -> residual), then the backbone's ends (models/config.h, Backbone):
//   language model: a final norm and an LM head tied to the embedding (or not);
//   autoencoder (MAD's compression): the last position's output e, and for every position t
//     x_t = e + sincos(t), two of norm -> Linear(d, d) -> GELU, then a norm and Linear(d, vocab) with a
//     bias, as mad-lab's AutoEncoder with global_pool 'last' and max_length the input's length.

#include "models/config.h"
#include "models/mixer.h"
#include "models/norm.h"
#include "models/state_mixer.h"

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include <memory>
#include <vector>

namespace deltabench::models {

class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(const ModelConfig& config);
  at::Tensor forward(const at::Tensor& x);
  at::Tensor step(const at::Tensor& x, MixerState& state);

 private:
  Norm mixer_norm_{nullptr}, state_norm_{nullptr};
  std::shared_ptr<SequenceMixer> mixer_;
  StateMixer state_mixer_{nullptr};
};
TORCH_MODULE(Block);

// Everything the model carries between tokens in recurrent mode.
struct ModelState {
  std::vector<MixerState> layers;
  int64_t position = 0;
};

class LanguageModelImpl : public torch::nn::Module {
 public:
  explicit LanguageModelImpl(const ModelConfig& config);

  // tokens [B, T] int64 -> logits [B, T, vocab]: head(hidden(tokens)).
  at::Tensor forward(const at::Tensor& tokens);

  // tokens [B, T] int64 -> [B, T, d_model] before the head: the last block's output (language model),
  // the decoder's output at each of the T positions (autoencoder).
  at::Tensor hidden(const at::Tensor& tokens);

  // h [..., d_model] -> logits [..., vocab]: the final norm and the LM head (the autoencoder's norm and
  // unembedding), position by position, so a trainer can apply it only where there are targets.
  at::Tensor head(const at::Tensor& h);

  // One token per sequence: tokens [B] -> logits [B, vocab]; `state` starts default-constructed. The
  // language model only: the autoencoder reads a whole sequence before it decodes.
  at::Tensor step(const at::Tensor& tokens, ModelState& state);

  const ModelConfig& config() const { return config_; }

 private:
  ModelConfig config_;
  torch::nn::Embedding embedding_{nullptr}, position_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
  torch::nn::ModuleList blocks_{nullptr};
  Norm final_norm_{nullptr};
  torch::nn::Linear lm_head_{nullptr};  // untied only
  // The autoencoder's decoder and unembedding.
  Norm decoder_norm1_{nullptr}, decoder_norm2_{nullptr}, unembed_norm_{nullptr};
  torch::nn::Linear decoder1_{nullptr}, decoder2_{nullptr}, unembed_{nullptr};
};

// mad-lab's posemb_sincos_1d: [positions, dim], sin of position x frequency in the first dim / 2
// columns, cos in the next, frequencies 10000^(-i / (dim/2 - 1)); a zero column for odd dim.
at::Tensor sincos_position_embeddings(int64_t positions, int64_t dim, const at::TensorOptions& options);
TORCH_MODULE(LanguageModel);

int64_t parameter_count(torch::nn::Module& module);

}  // namespace deltabench::models
