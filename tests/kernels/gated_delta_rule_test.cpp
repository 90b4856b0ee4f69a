// Tests kernels/gated_delta_rule/: the checks every family passes, and agreement with the delta
// rule where the decay vanishes.

#include "kernels/delta_rule/op.h"
#include "kernels/gated_delta_rule/op.h"
#include "tests/support/catch.h"
#include "tests/support/sequence_checks.h"

#include <ATen/ATen.h>

using namespace deltabench;
using namespace deltabench::testing;

TEST_CASE("gated_delta_rule: chunk equals recurrent", "[gated_delta_rule]") {
  check_chunk_equals_recurrent(Family::kGatedDeltaRule);
}

TEST_CASE("gated_delta_rule: gradients match finite differences", "[gated_delta_rule][grad]") {
  for (const Mode mode : {Mode::kChunk, Mode::kRecurrent}) check_gradients(Family::kGatedDeltaRule, mode);
}

TEST_CASE("gated_delta_rule: state continuation", "[gated_delta_rule]") {
  for (const Mode mode : {Mode::kChunk, Mode::kRecurrent}) {
    check_state_continuation(Family::kGatedDeltaRule, mode);
  }
}

TEST_CASE("gated_delta_rule: varlen equals each sequence alone", "[gated_delta_rule]") {
  for (const Mode mode : {Mode::kChunk, Mode::kRecurrent}) check_varlen(Family::kGatedDeltaRule, mode);
}

TEST_CASE("gated_delta_rule: g = 0 equals the delta rule", "[gated_delta_rule]") {
  const SampleShape shape{2, 90, 2, 32, 16};
  const auto in = sample_inputs(Family::kGatedDeltaRule, shape, at::kDouble, 61);
  for (const Mode mode : {Mode::kChunk, Mode::kRecurrent}) {
    SequenceOptions options;
    options.mode = mode;
    options.output_final_state = true;
    options.initial_state = at::randn({2, 2, 32, 16}, at::kDouble);
    const auto gated = gated_delta_rule(in.q, in.k, in.v, in.beta, at::zeros_like(in.g), options);
    const auto plain = delta_rule(in.q, in.k, in.v, in.beta, options);
    INFO((mode == Mode::kChunk ? "chunk" : "recurrent"));
    CHECK(rel_rms(gated.o, plain.o) < kFp64Tolerance);
    CHECK(rel_rms(gated.final_state, plain.final_state) < kFp64Tolerance);
  }
}

TEST_CASE("gated_delta_rule: a large decay forgets the initial state", "[gated_delta_rule]") {
  // g = -60 per step: after one step the initial state is scaled by e^-60, so a huge h0 leaves no trace.
  const SampleShape shape{1, 20, 2, 16, 8};
  auto in = sample_inputs(Family::kGatedDeltaRule, shape, at::kDouble, 62);
  in.g = at::full_like(in.g, -60.0);
  SequenceOptions options;
  options.output_final_state = true;
  const auto without = gated_delta_rule(in.q, in.k, in.v, in.beta, in.g, options);
  options.initial_state = 1e6 * at::randn({1, 2, 16, 8}, at::kDouble);
  const auto with = gated_delta_rule(in.q, in.k, in.v, in.beta, in.g, options);
  CHECK(rel_rms(with.o.slice(1, 1), without.o.slice(1, 1)) < 1e-12);
  CHECK(rel_rms(with.final_state, without.final_state) < 1e-12);
}
