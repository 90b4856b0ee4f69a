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

TEST_CASE("a run's time is predicted from its task and model's finished runs, for --time-limit", "[sweep]") {
  // zoology-mqar's window of 2026-12-06: linear attention at L 64, d_model 256, about 10 minutes a run with 8 at
  // once, started with 453 s left and lost; its d_model 128 runs had taken up to 325 s.
  std::map<std::string, sweep::RunRecord> stored;
  const auto add = [&](const std::string& hash, const std::string& task, const std::string& model, int64_t d,
                       const std::string& status, double wall) {
    sweep::RunRecord r;
    r.hash = hash, r.task = task, r.model = model, r.d_model = d, r.status = status, r.wall_s = wall;
    stored[hash] = r;
  };
  add("a", "L64", "linear_attention", 64, "completed", 290);
  add("b", "L64", "linear_attention", 128, "completed", 276);
  add("c", "L64", "linear_attention", 128, "completed", 325);
  add("d", "L64", "linear_attention", 128, "failed", 9000);     // not finished: not a guide
  add("e", "L64", "linear_attention", 128, "diverged", 8000);   // stopped early: not a guide
  add("f", "L64", "delta_net", 256, "early_stopped", 13);
  add("g", "L128", "linear_attention", 256, "completed", 700);  // another task
  sweep::Run run;
  run.task = "L64", run.model = "linear_attention";
  // Its own width: the longest of its finished runs.
  run.d_model = 128;
  CHECK(sweep::predict_run_seconds(run, stored) == Approx(325));
  // A wider model than any finished: the nearest width's longest, scaled by the ratio.
  run.d_model = 256;
  CHECK(sweep::predict_run_seconds(run, stored) == Approx(650));
  run.d_model = 512;
  CHECK(sweep::predict_run_seconds(run, stored) == Approx(1300));
  // A narrower one: the nearest width's, not scaled down.
  run.d_model = 32;
  CHECK(sweep::predict_run_seconds(run, stored) == Approx(290));
  // Between two widths at the same ratio: the wider one's.
  add("h", "L64", "linear_attention", 512, "completed", 1000);
  run.d_model = 256;
  CHECK(sweep::predict_run_seconds(run, stored) == Approx(1000));
  // A task and model with no finished run: no prediction, and the run is not held back.
  run.model = "attention";
  CHECK_FALSE(sweep::predict_run_seconds(run, stored).has_value());
}
