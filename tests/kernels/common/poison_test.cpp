// Tests kernels/common/poison.cpp on the CPU: every element of every floating dtype becomes NaN.

#include "kernels/common/poison.h"
#include "tests/support/catch.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

TEST_CASE("poison_ fills CPU tensors with NaN", "[poison]") {
  for (const auto dtype : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16}) {
    auto t = at::randn({3, 5}).to(dtype);
    deltabench::poison_(t);
    INFO(dtype);
    CHECK(t.isnan().all().item<bool>());
  }
  auto ints = at::zeros({4}, at::kInt);
  CHECK_THROWS_AS(deltabench::poison_(ints), c10::Error);
}
