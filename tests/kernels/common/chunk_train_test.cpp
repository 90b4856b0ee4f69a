// Tests kernels/common/chunk_train.cpp on the CPU: the chunked backward's algebra (its ATen stages,
// the sequential passes as ATen loops) in fp64 against autograd through the recurrent reference, for
// every family, across chunk edges, varlen, with and without initial and final state. The CUDA passes
// are checked against these loops on a GPU (tests/kernels/cuda_kernels_test.cpp).

#include "kernels/common/chunk_stages.h"
#include "kernels/common/chunk_train.h"
#include "kernels/common/validate.h"
#include "kernels/family.h"
#include "tests/support/catch.h"
#include "tests/support/sequence_checks.h"

#include <ATen/ATen.h>

#include <cmath>
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

TEST_CASE("chunk_train: the gradient kernel's arrangement of the walk's gradients equals the stages', fp64", "[kernels][backward]") {
  // kernels/common/chunk_grads.cu does not compute what walk_grads's ATen stages compute term by term: it
  // scales the rows of the products dout h^T and v_new dh^T after them (version 5; version 4 scaled dout
  // and v_new before), adds d_attn's products into the same sums, and
  // forms dG as rowsum(dq q - dk k) plus the chunk end's two sums. This checks that arrangement, written
  // as the kernel's header states it, against walk_grads in fp64 (the GPU test holds the kernel to the
  // stages).
  namespace chunked = deltabench::detail::chunked;
  const int64_t N = 2, H = 2, NT = 3, C = chunked::kC, K = 16, V = 24;
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  at::manual_seed(5);
  chunked::Inputs in;
  in.q = at::randn({N, H, NT, C, K}, f64) * 0.25;
  in.k = at::randn({N, H, NT, C, K}, f64);
  in.v = at::randn({N, H, NT, C, V}, f64);
  in.G = (-at::rand({N, H, NT, C}, f64) * 0.2).cumsum(-1);
  const auto h = at::randn({N, H, NT, K, V}, f64), dh = at::randn({N, H, NT, K, V}, f64);
  const auto v_new = at::randn({N, H, NT, C, V}, f64), dv_new = at::randn({N, H, NT, C, V}, f64);
  const auto dout = at::randn({N, H, NT, C, V}, f64);
  auto p = chunked::prepare_shared(in);
  p.W = in.k;
  const auto want = chunked::walk_grads(in, p, h, v_new, dout, dh, dv_new, /*kernels=*/false, /*tf32=*/false);
  REQUIRE_FALSE(want.kernel);

  const auto T = [](const at::Tensor& x) { return x.transpose(-1, -2); };
  const auto G = in.G.unsqueeze(-1);                             // [.., C, 1]
  const auto eG = G.exp(), tail = (in.G.narrow(-1, C - 1, 1).unsqueeze(-1) - G).exp();
  const auto i = at::arange(C, f64).unsqueeze(-1), j = at::arange(C, f64).unsqueeze(0);
  const auto decay = at::where(j <= i, (G - T(G)).exp(), at::zeros({}, f64));
  const auto d_attn = at::matmul(dout, T(v_new)) * decay;
  const auto dq = at::matmul(dout, T(h)) * eG + at::matmul(d_attn, in.k);
  const auto dk_end = at::matmul(v_new, T(dh)) * tail;
  const auto dk = at::matmul(T(d_attn), in.q) + dk_end;
  auto dG = (dq * in.q - dk * in.k).sum(-1);
  dG.select(-1, C - 1).add_((dk_end * in.k).sum({-1, -2}) + in.G.select(-1, C - 1).exp() * (h * dh).sum({-1, -2}));
  const auto dW = -at::matmul(dv_new, T(h));

  CHECK(testing::rel_rms(dq, want.dq) <= 1e-12);
  CHECK(testing::rel_rms(dk, want.dk) <= 1e-12);
  CHECK(testing::rel_rms(dG, want.dG) <= 1e-12);
  CHECK(testing::rel_rms(dW, want.dW) <= 1e-12);
  // The check can fail: the end term with the undecayed v_new is off.
  auto wrong = (dq * in.q - dk * in.k).sum(-1);
  wrong.select(-1, C - 1).add_((at::matmul(v_new, T(dh)) * in.k).sum({-1, -2}) +
                               in.G.select(-1, C - 1).exp() * (h * dh).sum({-1, -2}));
  CHECK(testing::rel_rms(wrong, want.dG) > 1e-6);
}
