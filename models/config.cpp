#include "models/config.h"

namespace deltabench::models {

MixerConfig default_mixer(MixerKind kind) {
  MixerConfig m;
  m.kind = kind;
  switch (kind) {
    case MixerKind::kAttention:
      m.num_heads = 1;
      break;
    case MixerKind::kLinearAttention:
      m.feature_map = FeatureMap::kEluPlusOne;
      m.normalize = true;
      break;
    case MixerKind::kDeltaNet:
      break;
    case MixerKind::kGatedDeltaNet:
      m.use_decay = true;
      m.use_output_gate = true;
      m.expand_v = 2.0;
      break;
  }
  return m;
}

std::string to_string(MixerKind kind) {
  switch (kind) {
    case MixerKind::kAttention: return "attention";
    case MixerKind::kLinearAttention: return "linear_attention";
    case MixerKind::kDeltaNet: return "delta_net";
    case MixerKind::kGatedDeltaNet: return "gated_delta_net";
  }
  return "unknown";
}

}  // namespace deltabench::models
