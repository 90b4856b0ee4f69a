// GPU tests of kernels/ (ctest label "cuda"; CI has no GPU and skips them; scripts/device.sh runs
// them on the H100). They fail, not skip, when no CUDA device is visible.

#include "kernels/common/poison.h"
#include "kernels/family.h"
#include "tests/support/catch.h"
#include "tests/support/sequence_checks.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>

using namespace deltabench;

TEST_CASE("cuda: a device is visible", "[cuda]") {
  REQUIRE(at::hasCUDA());
}

TEST_CASE("cuda: poison_ writes NaN into every element with deltabench's kernel", "[cuda]") {
  REQUIRE(at::hasCUDA());
  for (const auto dtype : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16}) {
    // An odd size above one grid's reach checks the grid-stride loop and the tail.
    auto t = at::randn({65535 * 256 + 3}, at::TensorOptions().device(at::kCUDA)).to(dtype);
    poison_(t);
    INFO(dtype);
    CHECK(t.isnan().all().item<bool>());
  }
}

TEST_CASE("cuda: reference ops on the GPU match the fp64 CPU definition", "[cuda]") {
  REQUIRE(at::hasCUDA());
  for (const Family family : kFamilies) {
    testing::check_device_matches_cpu(family, at::Device(at::kCUDA, 0));
  }
}
