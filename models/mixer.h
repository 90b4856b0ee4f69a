#pragma once
// The sequence-mixer interface: a parallel forward over a whole sequence, and a recurrent step that
// takes one token and the mixer's state. Stepping through a sequence equals the parallel forward.

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <vector>

namespace deltabench::models {

// What a mixer carries from one token to the next.
struct MixerState {
  at::Tensor memory;               // linear family: [B, H, K, V] fp32
  at::Tensor keys, values;         // attention's KV cache: [B, H, t, D]
  std::vector<at::Tensor> conv;    // short-convolution windows: [B, C, kernel - 1] each
  int64_t position = 0;            // tokens seen
};

class SequenceMixer : public torch::nn::Module {
 public:
  // x: [B, T, d_model] -> [B, T, d_model].
  virtual at::Tensor forward(const at::Tensor& x) = 0;
  // x: [B, d_model], one token -> [B, d_model]; `state` starts empty (default-constructed).
  virtual at::Tensor step(const at::Tensor& x, MixerState& state) = 0;
};

}  // namespace deltabench::models
