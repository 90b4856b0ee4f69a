// Tests kernels/common/chunk_train.cpp on the CPU: the chunked backward's algebra (its ATen stages,
// the sequential passes as ATen loops) in fp64 against autograd through the recurrent reference, for
// every family, across chunk edges, varlen, with and without initial and final state. The CUDA passes
// are checked against these loops on a GPU (tests/kernels/cuda_kernels_test.cpp).

#include "kernels/common/chunk_train.h"
#include "kernels/common/validate.h"
#include "kernels/family.h"
#include "tests/support/catch.h"
#include "tests/support/sequence_checks.h"

#include <ATen/ATen.h>

#include <string>
#include <vector>

using namespace deltabench;

namespace {

struct Case {
  SampleShape shape;
  std::vector<int64_t> cu_seqlens;  // empty: rows of T
};

// o, the final state and the gradients of q, k, v, beta, g and h0 for loss = <o, do> + <ht, dht>.
std::vector<at::Tensor> run_with_gradients(Family family, const SequenceInputs& in, const at::Tensor& h0,
                                           const Case& c, const at::Tensor& o_grad, const at::Tensor& ht_grad,
                                           bool chunked_backward) {
  const auto leaf = [](const at::Tensor& t) {
    return t.defined() ? t.detach().clone().requires_grad_(true) : at::Tensor();
  };
  SequenceInputs x{leaf(in.q), leaf(in.k), leaf(in.v), leaf(in.beta), leaf(in.g)};
  SequenceOptions options;
  options.output_final_state = true;
  options.initial_state = leaf(h0);
  if (!c.cu_seqlens.empty()) options.cu_seqlens = at::tensor(c.cu_seqlens, at::kLong);
  SequenceOutput out;
  if (chunked_backward) {
    const auto shape = deltabench::detail::validate_sequence_inputs("chunk_train", x.q, x.k, x.v, x.beta, x.g, options);
    out = deltabench::detail::chunk_train_stages(family, shape, x.q, x.k, x.v, x.beta, x.g, options, /*state_kernels=*/false);
  } else {
    options.mode = Mode::kRecurrent;
    options.backend = BackendChoice::kReference;
    out = run_family(family, x, options);
  }
  ((out.o * o_grad).sum() + (out.final_state * ht_grad).sum()).backward();
  std::vector<at::Tensor> r = {out.o.detach(), out.final_state.detach()};
  for (const auto& t : {x.q, x.k, x.v, x.beta, x.g, options.initial_state}) {
    r.push_back(t.defined() ? t.grad() : at::Tensor());
  }
  return r;
}

}  // namespace

TEST_CASE("chunk_train: the chunked backward equals autograd through the recurrence, fp64", "[kernels][backward]") {
  const Case cases[] = {{{2, 1, 2, 16, 16}, {}},  {{1, 63, 2, 16, 16}, {}}, {{1, 64, 1, 16, 24}, {}},
                        {{2, 65, 2, 24, 16}, {}}, {{1, 200, 2, 16, 16}, {}}, {{1, 150, 2, 16, 16}, {0, 7, 71, 150}}};
  const char* names[] = {"o", "ht", "dq", "dk", "dv", "dbeta", "dg", "dh0"};
  struct Rule {
    Family family;
    bool decay;
  };
  for (const Rule rule : {Rule{Family::kLinearAttention, false}, Rule{Family::kLinearAttention, true},
                          Rule{Family::kDeltaRule, false}, Rule{Family::kGatedDeltaRule, true}}) {
    for (const auto& c : cases) {
      for (const bool with_h0 : {false, true}) {
        const int64_t N = c.cu_seqlens.empty() ? c.shape.B : static_cast<int64_t>(c.cu_seqlens.size()) - 1;
        const auto in = sample_inputs(rule.family, c.shape, at::kDouble, 17, rule.decay);
        at::manual_seed(5);
        const auto h0 = with_h0 ? at::randn({N, c.shape.H, c.shape.K, c.shape.V}, at::kDouble) * 0.5 : at::Tensor();
        const auto o_grad = at::randn_like(in.v);
        const auto ht_grad = at::randn({N, c.shape.H, c.shape.K, c.shape.V}, at::kDouble);
        const auto got = run_with_gradients(rule.family, in, h0, c, o_grad, ht_grad, true);
        const auto want = run_with_gradients(rule.family, in, h0, c, o_grad, ht_grad, false);
        INFO(family_name(rule.family) << (rule.decay ? "+decay " : " ") << testing::case_name(c.shape, at::kDouble)
                                      << (c.cu_seqlens.empty() ? "" : " varlen") << (with_h0 ? " h0" : ""));
        for (size_t i = 0; i < got.size(); ++i) {
          INFO(names[i]);
          REQUIRE(got[i].defined() == want[i].defined());
          if (got[i].defined()) CHECK(testing::rel_rms(got[i], want[i]) <= testing::kFp64Tolerance);
        }
      }
    }
  }
}

TEST_CASE("chunk_train: the kernel path on the CPU is an error that says why", "[kernels]") {
  const auto in = sample_inputs(Family::kDeltaRule, SampleShape{1, 64, 1, 64, 64}, at::kFloat, 3);
  SequenceOptions options;
  const auto shape = deltabench::detail::validate_sequence_inputs("delta_rule", in.q, in.k, in.v, in.beta, in.g, options);
  CHECK_FALSE(deltabench::detail::chunk_train_unavailable(shape, in.q).empty());
  CHECK_THROWS_WITH(deltabench::detail::chunk_train(Family::kDeltaRule, shape, in.q, in.k, in.v, in.beta, in.g, options),
                    testing::contains("chunk_train: "));
  CHECK_THROWS_WITH(deltabench::detail::chunk_train_stages(Family::kDeltaRule, shape, in.q, in.k, in.v, in.beta, in.g, options,
                                               /*state_kernels=*/true),
                    testing::contains("the CUDA state passes need CUDA tensors, got cpu"));
}
