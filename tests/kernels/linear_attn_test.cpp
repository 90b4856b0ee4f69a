// Tests kernels/linear_attn/: the reference ops against each other and against the masked
// quadratic form, plus the checks every family passes (tests/support/sequence_checks.h).

#include "kernels/linear_attn/op.h"
#include "tests/support/catch.h"
#include "tests/support/sequence_checks.h"

#include <ATen/ATen.h>

using namespace deltabench;
using namespace deltabench::testing;

namespace {

// O = scale * (M ⊙ Q K^T) V with M_ij = exp(sum_{j < s <= i} g_s) for j <= i, else 0.
at::Tensor masked_quadratic(const SequenceInputs& in, double scale) {
  const auto q = in.q.transpose(1, 2) * scale;  // [B, H, T, K]
  const auto k = in.k.transpose(1, 2);
  const auto v = in.v.transpose(1, 2);          // [B, H, T, V]
  const int64_t T = q.size(2);
  auto mask = at::ones({T, T}, q.options()).tril();
  if (in.g.defined()) {
    const auto G = in.g.transpose(1, 2).cumsum(-1);                      // [B, H, T]
    mask = (G.unsqueeze(-1) - G.unsqueeze(-2)).exp() * mask;             // [B, H, T, T]
  }
  return at::matmul(at::matmul(q, k.transpose(-1, -2)) * mask, v).transpose(1, 2);
}

}  // namespace

TEST_CASE("linear_attention: chunk equals recurrent", "[linear_attn]") {
  check_chunk_equals_recurrent(Family::kLinearAttention);
  check_chunk_equals_recurrent(Family::kLinearAttention, /*decay=*/true);
}

TEST_CASE("linear_attention: equals the masked (QK^T)V form", "[linear_attn]") {
  for (const bool decay : {false, true}) {
    const SampleShape shape{2, 100, 3, 60, 32};
    const auto in = sample_inputs(Family::kLinearAttention, shape, at::kDouble, 41, decay);
    const auto expected = masked_quadratic(in, 1.0 / std::sqrt(60.0));
    for (const Mode mode : {Mode::kChunk, Mode::kRecurrent}) {
      SequenceOptions options;
      options.mode = mode;
      const auto out = linear_attention(in.q, in.k, in.v, in.g, options);
      const double err = rel_rms(out.o, expected);
      INFO(case_name(shape, at::kDouble) << (decay ? " decay" : "") << (mode == Mode::kChunk ? " chunk" : " recurrent")
                                         << ": o err " << err);
      CHECK(err < kFp64Tolerance);
    }
  }
}

TEST_CASE("linear_attention: gradients match finite differences", "[linear_attn][grad]") {
  for (const Mode mode : {Mode::kChunk, Mode::kRecurrent}) {
    check_gradients(Family::kLinearAttention, mode, /*decay=*/true);
  }
}

TEST_CASE("linear_attention: state continuation", "[linear_attn]") {
  for (const Mode mode : {Mode::kChunk, Mode::kRecurrent}) {
    check_state_continuation(Family::kLinearAttention, mode, /*decay=*/true);
  }
}

TEST_CASE("linear_attention: varlen equals each sequence alone", "[linear_attn]") {
  for (const Mode mode : {Mode::kChunk, Mode::kRecurrent}) {
    check_varlen(Family::kLinearAttention, mode, /*decay=*/true);
  }
}
