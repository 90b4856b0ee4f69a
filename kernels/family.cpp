#include "kernels/family.h"

#include "kernels/delta_rule/op.h"
#include "kernels/gated_delta_rule/op.h"
#include "kernels/linear_attn/op.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

namespace deltabench {

std::string_view family_name(Family family) {
  switch (family) {
    case Family::kLinearAttention: return "linear_attention";
    case Family::kDeltaRule: return "delta_rule";
    case Family::kGatedDeltaRule: return "gated_delta_rule";
  }
  return "unknown";
}

std::optional<Family> family_from_name(std::string_view name) {
  for (const auto family : kFamilies) {
    if (family_name(family) == name) return family;
  }
  return std::nullopt;
}

SequenceInputs sample_inputs(Family family, const SampleShape& s, at::TensorOptions options,
                             uint64_t seed, bool decay) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  const auto normal = [&](at::IntArrayRef sizes) { return at::normal(0.0, 1.0, sizes, gen, f64); };
  const auto to = [&](const at::Tensor& x) { return x.to(options); };

  SequenceInputs in;
  in.q = to(normal({s.B, s.T, s.H, s.K}));
  const auto k = normal({s.B, s.T, s.H, s.K});
  in.k = to(k / k.norm(2, -1, /*keepdim=*/true));
  in.v = to(normal({s.B, s.T, s.H, s.V}));
  if (family != Family::kLinearAttention) in.beta = to(normal({s.B, s.T, s.H}).sigmoid());
  if (family == Family::kGatedDeltaRule || (family == Family::kLinearAttention && decay)) {
    in.g = to(at::log_sigmoid(normal({s.B, s.T, s.H})) / 16.0);
  }
  return in;
}

SequenceOutput run_family(Family family, const SequenceInputs& in, const SequenceOptions& options) {
  switch (family) {
    case Family::kLinearAttention: return linear_attention(in.q, in.k, in.v, in.g, options);
    case Family::kDeltaRule: return delta_rule(in.q, in.k, in.v, in.beta, options);
    case Family::kGatedDeltaRule: return gated_delta_rule(in.q, in.k, in.v, in.beta, in.g, options);
  }
  TORCH_CHECK(false, "run_family: unknown family");
}

}  // namespace deltabench
