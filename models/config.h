#pragma once
// Model configuration: every switch the papers ablate is a field here, and a key of the same name
// in a config file (train/config.cpp).

#include "kernels/common/backend_choice.h"

#include <cstdint>
#include <optional>
#include <string>

namespace deltabench::models {

enum class MixerKind { kAttention, kLinearAttention, kDeltaNet, kGatedDeltaNet };
enum class NormKind { kLayerNorm, kRMSNorm };
enum class StateMixerKind { kNone, kMlp, kSwiGlu };
enum class FeatureMap { kIdentity, kEluPlusOne, kRelu, kSilu };  // linear attention's phi, and qk_activation
enum class QkNorm { kL2, kSum, kRms, kNone };
enum class DecayKind { kNone, kRetNet, kData };  // linear attention: none, fixed per head, data-dependent
// What surrounds the blocks. The language model: a final norm and an LM head at every position. MAD's
// autoencoder (mad-lab's mad/model/auto_encoder.py, its backbone for the compression task): the last
// position's output alone, decoded at every position by a fixed MLP with sinusoidal position
// embeddings, then a norm and an unembedding with a bias.
enum class Backbone { kLanguageModel, kAutoEncoder };

struct MixerConfig {
  MixerKind kind = MixerKind::kDeltaNet;
  int64_t num_heads = 2;
  int64_t head_dim = 0;          // 0: d_model / num_heads
  double expand_v = 1.0;         // value head dim = head_dim * expand_v (Gated DeltaNet: 2)
  int64_t chunk_size = 64;       // the chunk algorithm's C (16, 32 or 64)
  // attention
  double attention_dropout = 0.0;
  int64_t rotary_dim = 0;        // 0: no rotary embedding
  bool qkv_bias = true;          // Zoology's MHA has biases
  // linear attention
  FeatureMap feature_map = FeatureMap::kIdentity;
  bool normalize = false;        // divide by phi(q)^T sum phi(k): the running-denominator form
  DecayKind decay = DecayKind::kNone;
  // DeltaNet and Gated DeltaNet
  bool use_short_conv = true;
  int64_t conv_size = 4;
  FeatureMap qk_activation = FeatureMap::kSilu;
  QkNorm qk_norm = QkNorm::kL2;
  std::optional<double> fixed_beta;  // unset: beta = sigmoid(b_proj(x)) (FLA's use_beta)
  bool allow_neg_eigval = false;     // beta in (0, 2)
  bool use_output_gate = false;      // gated RMSNorm (swish) on the output
  bool use_decay = false;            // Gated DeltaNet's g = -exp(A_log) softplus(a + dt_bias)
  double norm_eps = 1e-5;
  // Which implementation runs the linear family's sequence ops (kernels/common/backend_choice.h). Not
  // part of what a model is: a run's placement sets it ([train] backend, --backend), and it never
  // enters the config's hash. Attention always runs SDPA.
  BackendChoice backend = BackendChoice::kAuto;
  // What the sm_90a training op computes again in the backward rather than keep ([train] recompute,
  // --recompute; backend_choice.h): memory against speed, the same bits either way; placement, not identity.
  Recompute recompute = Recompute::kNone;
};

struct ModelConfig {
  int64_t vocab_size = 8192;
  int64_t d_model = 64;
  int64_t num_layers = 2;
  int64_t max_position_embeddings = 0;  // > 0: a learned position embedding of that length
  double embed_dropout = 0.0;
  NormKind norm = NormKind::kLayerNorm;
  double norm_eps = 1e-5;
  StateMixerKind state_mixer = StateMixerKind::kNone;
  double hidden_ratio = 4.0;            // state mixer width / d_model
  bool tie_embeddings = true;           // the language model's head is the embedding (the autoencoder's never)
  // Set by the task, as mad-lab sets it (compression: the autoencoder), not by a config key.
  Backbone backbone = Backbone::kLanguageModel;
  MixerConfig mixer;
};

// The per-kind defaults of FLA's layers (DeltaNet: silu, l2, sigmoid beta, short conv, RMSNorm
// output; Gated DeltaNet: the same with decay, the output gate and expand_v = 2).
MixerConfig default_mixer(MixerKind kind);

std::string to_string(MixerKind kind);

}  // namespace deltabench::models
