// Tests models/linear_attention.h's normalised form with its denominator apart, on the CPU: the same
// ratio, and the same gradients, as the op on v with a ones column appended (the form the layer takes
// under every backend but kernel); tests/train/cuda_test.cpp trains it on the kernels.

#include "kernels/linear_attn/op.h"
#include "models/linear_attention.h"
#include "tests/support/catch.h"

#include <ATen/ATen.h>

#include <vector>

using namespace deltabench;

namespace {

// phi(q) and phi(k) > 0 as elu + 1 gives them; [B, T, H, D] in fp64.
at::Tensor positive(std::vector<int64_t> shape) { return at::elu(at::randn(shape, at::kDouble)) + 1; }

}  // namespace

TEST_CASE("linear attention: the denominator apart gives the ones column's ratio and gradients", "[models]") {
  at::manual_seed(5);
  for (const int64_t T : {1, 63, 64, 65, 130}) {
    INFO("T " << T);
    const int64_t B = 2, H = 3, K = 8, V = 5;
    const auto q0 = positive({B, T, H, K}), k0 = positive({B, T, H, K}), v0 = at::randn({B, T, H, V}, at::kDouble);
    const auto dy = at::randn({B, T, H, V}, at::kDouble);
    SequenceOptions options;
    options.backend = BackendChoice::kReference;
    options.scale = 1.0;
    // o, then the gradients of q, k and v for the output gradient dy.
    const auto run = [&](bool apart) {
      auto q = q0.clone().requires_grad_(true), k = k0.clone().requires_grad_(true), v = v0.clone().requires_grad_(true);
      at::Tensor y;
      if (apart) {
        y = models::linear_attention_denominator_apart(q, k, v, options, 1e-6);
      } else {
        const auto o = linear_attention(q, k, at::cat({v, at::ones({B, T, H, 1}, at::kDouble)}, -1), at::Tensor(), options).o;
        y = o.narrow(-1, 0, V) / (o.narrow(-1, V, 1) + 1e-6);
      }
      (y * dy).sum().backward();
      return std::vector<at::Tensor>{y.detach(), q.grad(), k.grad(), v.grad()};
    };
    const auto apart = run(true), ones = run(false);
    for (size_t i = 0; i < apart.size(); ++i) {
      INFO("tensor " << i << " (y, dq, dk, dv)");
      CHECK(at::allclose(apart[i], ones[i], /*rtol=*/1e-10, /*atol=*/1e-12));
    }
  }
}

TEST_CASE("linear attention: the denominator apart refuses states, which carry z in the ones column", "[models]") {
  const auto q = positive({1, 4, 2, 8}), k = positive({1, 4, 2, 8}), v = at::randn({1, 4, 2, 8}, at::kDouble);
  SequenceOptions options;
  options.output_final_state = true;
  CHECK_THROWS_WITH(models::linear_attention_denominator_apart(q, k, v, options, 1e-6),
                    testing::contains("linear attention with its denominator apart: no initial or final state"));
}
