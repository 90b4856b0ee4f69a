// Tests kernels/delta_rule/: the checks every family passes, and the delta rule's own properties.

#include "kernels/delta_rule/op.h"
#include "tests/support/catch.h"
#include "tests/support/sequence_checks.h"

#include <ATen/ATen.h>

using namespace deltabench;
using namespace deltabench::testing;

TEST_CASE("delta_rule: chunk equals recurrent", "[delta_rule]") {
  check_chunk_equals_recurrent(Family::kDeltaRule);
}

TEST_CASE("delta_rule: gradients match finite differences", "[delta_rule][grad]") {
  for (const Mode mode : {Mode::kChunk, Mode::kRecurrent}) check_gradients(Family::kDeltaRule, mode);
}

TEST_CASE("delta_rule: state continuation", "[delta_rule]") {
  for (const Mode mode : {Mode::kChunk, Mode::kRecurrent}) check_state_continuation(Family::kDeltaRule, mode);
}

TEST_CASE("delta_rule: varlen equals each sequence alone", "[delta_rule]") {
  for (const Mode mode : {Mode::kChunk, Mode::kRecurrent}) check_varlen(Family::kDeltaRule, mode);
}

TEST_CASE("delta_rule: beta = 0 leaves the state unchanged", "[delta_rule]") {
  const SampleShape shape{2, 70, 2, 16, 8};
  auto in = sample_inputs(Family::kDeltaRule, shape, at::kDouble, 51);
  in.beta = at::zeros_like(in.beta);
  const auto h0 = at::randn({2, 2, 16, 8}, at::kDouble);
  for (const Mode mode : {Mode::kChunk, Mode::kRecurrent}) {
    SequenceOptions options;
    options.mode = mode;
    options.initial_state = h0;
    options.output_final_state = true;
    const auto out = delta_rule(in.q, in.k, in.v, in.beta, options);
    // With the state fixed at h0, every output reads it: o_t = h0^T (scale q_t).
    const auto expected_o = at::einsum("bthk,bhkv->bthv", {in.q / 4.0, h0});
    INFO((mode == Mode::kChunk ? "chunk" : "recurrent"));
    CHECK(rel_rms(out.final_state, h0) < kFp64Tolerance);
    CHECK(rel_rms(out.o, expected_o) < kFp64Tolerance);
  }
}

TEST_CASE("delta_rule: beta = 1 with orthonormal keys writes v exactly", "[delta_rule]") {
  // With unit, mutually orthogonal keys and beta = 1, reading key k_i after writing returns v_i.
  const int64_t K = 8;
  const auto basis = at::eye(K, at::kDouble);                               // K orthonormal keys
  const auto k = basis.reshape({1, K, 1, K});                               // [1, T=K, 1, K]
  const auto v = at::randn({1, K, 1, 4}, at::kDouble);
  const auto beta = at::ones({1, K, 1}, at::kDouble);
  SequenceOptions options;
  options.output_final_state = true;
  options.chunk_size = 16;
  const auto out = delta_rule(k, k, v, beta, options);
  const auto recalled = at::matmul(basis, out.final_state.squeeze(0).squeeze(0));  // [K, 4]
  CHECK(rel_rms(recalled, v.reshape({K, 4})) < kFp64Tolerance);
}
