// Tests models/short_conv.cpp: causal, and the recurrent step equals the parallel forward.

#include "models/short_conv.h"
#include "tests/support/catch.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

using namespace deltabench::models;

TEST_CASE("short convolution: causal window of kernel_size, step equals forward", "[models]") {
  ShortConvolution conv(6, 4, /*silu=*/false);
  conv->to(at::kDouble);
  c10::NoGradGuard no_grad;
  const auto x = at::randn({2, 11, 6}, at::kDouble);
  const auto y = conv->forward(x);
  // y[t] = sum_j w[:, j] x[t - 3 + j]: check one position by hand.
  const auto w = conv->weight.squeeze(1);  // [C, 4]
  const auto y7 = (w * x.select(0, 0).slice(0, 4, 8).transpose(0, 1)).sum(-1);
  CHECK((y7 - y[0][7]).abs().max().item<double>() < 1e-12);
  at::Tensor window = at::zeros({2, 6, 3}, at::kDouble);
  for (int64_t t = 0; t < 11; ++t) {
    const auto s = conv->step(x.select(1, t), window);
    CHECK((s - y.select(1, t)).abs().max().item<double>() < 1e-12);
  }
}
