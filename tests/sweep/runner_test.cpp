// The runner's placement rule: how many runs train at once on each GPU by default.

#include "sweep/runner.h"

#include "tests/support/catch.h"

#include <limits>

using namespace deltabench;

TEST_CASE("runs per GPU by default: the measured 4, fewer for short grids and large runs", "[sweep]") {
  constexpr double GiB = 1024.0 * 1024.0 * 1024.0;
  CHECK(sweep::kDefaultRunsPerGpu == 4);
  // A Zoology grid of small runs on an empty H200.
  CHECK(sweep::default_runs_per_gpu(256, 2 * GiB, 139 * GiB) == 4);
  // Fewer runs left than the default: no idle workers.
  CHECK(sweep::default_runs_per_gpu(3, 2 * GiB, 139 * GiB) == 3);
  CHECK(sweep::default_runs_per_gpu(1, 2 * GiB, 139 * GiB) == 1);
  // Four of the largest run would not fit in 80% of what is free: as many as fit.
  CHECK(sweep::default_runs_per_gpu(256, 40 * GiB, 139 * GiB) == 2);
  CHECK(sweep::default_runs_per_gpu(256, 100 * GiB, 139 * GiB) == 1);
  // Never zero: a run too large for the GPU is the trainer's error (naming its key), not an empty pool.
  CHECK(sweep::default_runs_per_gpu(256, 200 * GiB, 139 * GiB) == 1);
  CHECK(sweep::default_runs_per_gpu(0, 2 * GiB, 139 * GiB) == 1);
  // Free memory unknown: the default.
  CHECK(sweep::default_runs_per_gpu(256, 2 * GiB, std::numeric_limits<double>::infinity()) == 4);
}
