// Tests models/fused_cuda.h's choice of the pieces' CUDA kernels where no GPU is needed: off CUDA and
// under `reference` they are never taken and their reasons are not asked for; the kernel backend's
// refusal names the piece and says why. tests/models/fused_cuda_test.cpp has the choice on a GPU.

#include "models/fused_cuda.h"
#include "tests/support/catch.h"

#include <ATen/ATen.h>

#include <string>

using deltabench::BackendChoice;
using deltabench::models::refuse_unless_served;
using deltabench::models::takes_cuda_kernels;

TEST_CASE("the pieces' CUDA kernels are never taken off CUDA or under reference, and their reason is not asked",
          "[models]") {
  const auto x = at::randn({2, 3});
  int asked = 0;
  const auto serves = [&] {
    ++asked;
    return std::string();
  };
  for (const auto backend : {BackendChoice::kAuto, BackendChoice::kReference, BackendChoice::kKernel}) {
    CHECK_FALSE(takes_cuda_kernels(backend, x, "short convolution", serves));
  }
  CHECK(asked == 0);
}

TEST_CASE("the kernel backend's refusal of a piece names it and says why", "[models]") {
  CHECK_NOTHROW(refuse_unless_served("RMSNorm", ""));
  CHECK_THROWS_WITH(refuse_unless_served("RMSNorm", "the normalised dimension is 300; the kernels take 1 to 256"),
                    deltabench::testing::contains("RMSNorm: backend kernel was asked for, but deltabench's CUDA kernels "
                                                  "do not serve this call: the normalised dimension is 300; the kernels "
                                                  "take 1 to 256"));
}
