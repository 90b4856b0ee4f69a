#pragma once
// The op families as data: one registry that tests, benchmarks and the smoke table all iterate, so
// that adding a family is one line here rather than a new branch in every caller.

#include "kernels/common/sequence_op.h"
#include "kernels/family_id.h"

#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace deltabench {

inline constexpr std::array kFamilies = {Family::kLinearAttention, Family::kDeltaRule,
                                         Family::kGatedDeltaRule};

std::string_view family_name(Family family);  // "linear_attention", "delta_rule", ...
// The family a name (family_name's spelling) names; nullopt for any other text.
std::optional<Family> family_from_name(std::string_view name);

struct SequenceInputs {
  at::Tensor q, k;   // [B, T, H, K]
  at::Tensor v;      // [B, T, H, V]
  at::Tensor beta;   // [B, T, H], undefined for linear attention
  at::Tensor g;      // [B, T, H], defined for the gated delta rule (optional for linear attention)
};

struct SampleShape {
  int64_t B = 2, T = 64, H = 2, K = 16, V = 16;
};

// Inputs drawn as FLA's tests draw them, from a seeded CPU generator and then moved to `options`:
// q, v ~ N(0, 1); k ~ N(0, 1) then L2-normalised per head (the delta rule is only stable for
// beta * |k|^2 < 2); beta = sigmoid(N(0, 1)); g = logsigmoid(N(0, 1)) / 16 for the gated delta
// rule, and for linear attention when `decay` is set (the delta rule takes no g).
SequenceInputs sample_inputs(Family family, const SampleShape& shape, at::TensorOptions options,
                             uint64_t seed, bool decay = false);

// Calls the family's public op.
SequenceOutput run_family(Family family, const SequenceInputs& in, const SequenceOptions& options);

}  // namespace deltabench
