#pragma once
// The language model every experiment trains: token embedding, an optional learned position
// embedding, num_layers blocks of pre-norm -> sequence mixer -> residual (each optionally followed
// by pre-norm -> state mixer -> residual), a final norm, and an LM head tied to the embedding.

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

  // tokens [B, T] int64 -> the last block's output [B, T, d_model], before the final norm.
  at::Tensor hidden(const at::Tensor& tokens);

  // h [..., d_model] -> logits [..., vocab]: the final norm and the LM head, position by position, so
  // a trainer can apply it only where there are targets.
  at::Tensor head(const at::Tensor& h);

  // One token per sequence: tokens [B] -> logits [B, vocab]; `state` starts default-constructed.
  at::Tensor step(const at::Tensor& tokens, ModelState& state);

  const ModelConfig& config() const { return config_; }

 private:
  ModelConfig config_;
  torch::nn::Embedding embedding_{nullptr}, position_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
  torch::nn::ModuleList blocks_{nullptr};
  Norm final_norm_{nullptr};
  torch::nn::Linear lm_head_{nullptr};  // untied only
};
TORCH_MODULE(LanguageModel);

int64_t parameter_count(torch::nn::Module& module);

}  // namespace deltabench::models
