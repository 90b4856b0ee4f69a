// Tests models/fused_cpu.cpp: each fused CPU function's output and gradients equal its ATen
// composite's (the form the modules take on CUDA under the reference backend), in fp64 to rounding
// and in fp32 to fp32's, at shapes with fewer steps than the kernel, one step, and many; bad input is
// refused with a sentence.

#include "models/fused_cpu.h"
#include "tests/support/catch.h"

#include <ATen/ATen.h>
#include <vector>

using namespace deltabench::models;

namespace {

// The composite: pad on the left, K shifted products, SiLU.
at::Tensor conv_composite(const at::Tensor& x, const at::Tensor& w, bool silu) {
  const int64_t T = x.size(1), K = w.size(1);
  const auto padded = at::constant_pad_nd(x, {0, 0, K - 1, 0});
  at::Tensor y;
  for (int64_t j = 0; j < K; ++j) {
    const auto term = padded.narrow(1, j, T) * w.select(1, j);
    y = y.defined() ? y + term : term;
  }
  return silu ? at::silu(y) : y;
}

double max_rel(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item<double>();
}

// Output and the gradients of (x, w) under the same random upstream gradient.
std::vector<at::Tensor> conv_run(bool fused, const at::Tensor& x0, const at::Tensor& w0, const at::Tensor& gy,
                                 bool silu) {
  const auto x = x0.clone().requires_grad_(true), w = w0.clone().requires_grad_(true);
  const auto y = fused ? causal_conv1d_cpu(x, w, silu) : conv_composite(x, w, silu);
  y.backward(gy);
  return {y.detach(), x.grad(), w.grad()};
}

}  // namespace

TEST_CASE("fused CPU convolution: output and gradients equal the composite's", "[models]") {
  at::manual_seed(7);
  struct Case {
    int64_t B, T, C, K;
  };
  for (const auto dtype : {at::kDouble, at::kFloat}) {
    const double tol = dtype == at::kDouble ? 1e-12 : 2e-6;
    for (const Case c : {Case{2, 1, 5, 4}, Case{3, 2, 8, 4}, Case{2, 11, 6, 4}, Case{4, 64, 64, 4}, Case{1, 37, 16, 3}}) {
      for (const bool silu : {false, true}) {
        const auto opt = at::TensorOptions().dtype(dtype);
        const auto x = at::randn({c.B, c.T, c.C}, opt), w = at::randn({c.C, c.K}, opt) * 0.5;
        const auto gy = at::randn({c.B, c.T, c.C}, opt);
        const auto ours = conv_run(true, x, w, gy, silu), theirs = conv_run(false, x, w, gy, silu);
        INFO("B " << c.B << " T " << c.T << " C " << c.C << " K " << c.K << " silu " << silu << " dtype " << dtype);
        CHECK(max_rel(ours[0], theirs[0]) < tol);
        CHECK(max_rel(ours[1], theirs[1]) < tol);
        CHECK(max_rel(ours[2], theirs[2]) < tol * 10);  // a sum over B * T terms
      }
    }
  }
}

TEST_CASE("fused CPU convolution: causal, and a non-contiguous input", "[models]") {
  at::manual_seed(8);
  const auto x = at::randn({2, 9, 6}, at::kDouble), w = at::randn({6, 4}, at::kDouble);
  // Changing the input at t = 5 changes no output before t = 5.
  auto x2 = x.clone();
  x2.select(1, 5).add_(1.0);
  const auto y = causal_conv1d_cpu(x, w, true), y2 = causal_conv1d_cpu(x2, w, true);
  CHECK(y.narrow(1, 0, 5).equal(y2.narrow(1, 0, 5)));
  CHECK_FALSE(y.select(1, 5).equal(y2.select(1, 5)));
  // A transposed view gives what its contiguous copy gives.
  const auto xt = at::randn({2, 6, 9}, at::kDouble).transpose(1, 2);
  CHECK(causal_conv1d_cpu(xt, w, false).equal(causal_conv1d_cpu(xt.contiguous(), w, false)));
}

TEST_CASE("fused CPU L2 norm: output and gradient equal the composite's", "[models]") {
  at::manual_seed(9);
  for (const auto dtype : {at::kDouble, at::kFloat}) {
    const double tol = dtype == at::kDouble ? 1e-12 : 2e-6;
    for (const auto& shape : std::vector<std::vector<int64_t>>{{3, 3}, {4, 5, 2, 32}, {64, 64, 2, 64}}) {
      const auto x0 = at::randn(shape, at::TensorOptions().dtype(dtype)), gy = at::randn_like(x0);
      const auto a = x0.clone().requires_grad_(true), b = x0.clone().requires_grad_(true);
      const auto ya = l2_normalize_cpu(a, 1e-6);
      const auto yb = b * at::rsqrt(b.pow(2).sum(-1, /*keepdim=*/true) + 1e-6);
      ya.backward(gy);
      yb.backward(gy);
      INFO("shape " << at::IntArrayRef(shape) << " dtype " << dtype);
      CHECK(max_rel(ya.detach(), yb.detach()) < tol);
      CHECK(max_rel(a.grad(), b.grad()) < tol);
    }
  }
}

TEST_CASE("fused CPU functions refuse what they do not serve, in a sentence", "[models]") {
  const auto x = at::randn({2, 4, 3});
  CHECK_FALSE(fused_cpu_applies(x.to(at::kBFloat16)));
  CHECK(fused_cpu_applies(x));
  CHECK_THROWS_WITH(causal_conv1d_cpu(x.to(at::kBFloat16), at::randn({3, 4}).to(at::kBFloat16), false),
                    deltabench::testing::contains("must be a CPU tensor of fp32 or fp64, got cpu BFloat16"));
  CHECK_THROWS_WITH(causal_conv1d_cpu(x, at::randn({5, 4}), false),
                    deltabench::testing::contains("expected x [B, T, C] and weight [C, K] with the same C"));
  CHECK_THROWS_WITH(causal_conv1d_cpu(x, at::randn({3, 4}, at::kDouble), false),
                    deltabench::testing::contains("weight must be a CPU tensor of x's dtype Float"));
  CHECK_THROWS_WITH(l2_normalize_cpu(x.to(at::kHalf), 1e-6), deltabench::testing::contains("l2_normalize_cpu"));
}
