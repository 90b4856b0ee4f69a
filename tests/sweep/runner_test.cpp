// The runner's placement rule: how many runs train at once on each GPU by default.

#include "sweep/runner.h"

#include "tests/support/catch.h"
#include "tests/support/run_record.h"
#include "tests/support/temp_dir.h"
#include "tests/support/source_dir.h"
#include "train/config.h"

#include <fmt/core.h>

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
  CHECK(sweep::predict_run(run, stored)->basis == "its task and model's finished runs");
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

TEST_CASE("where the runs a prediction rests on stopped early, it says the time for every epoch of the budget",
          "[sweep]") {
  // zoology-mqar's Gated DeltaNet at L 512: d_model 128 and 256 stopped at 0.99 in 1-7 epochs, so d_model 64 is
  // predicted 273 s (88 s in the twenty-fifth session's window); its runs trained about 45 minutes with 8 at once.
  std::map<std::string, sweep::RunRecord> stored;
  const auto add = [&](const std::string& hash, int64_t d, const std::string& status, double wall, int64_t epochs) {
    sweep::RunRecord r;
    r.hash = hash, r.task = "L512", r.model = "gated_delta_net", r.d_model = d, r.status = status;
    r.wall_s = wall, r.epochs = epochs;
    stored[hash] = r;
  };
  add("a", 128, "early_stopped", 88, 3);
  add("b", 128, "early_stopped", 85, 5);
  add("c", 128, "early_stopped", 273, 7);
  add("d", 256, "early_stopped", 131, 2);
  add("e", 128, "failed", 5000, 1);  // not finished: not a guide
  sweep::Run run;
  run.task = "L512", run.model = "gated_delta_net", run.d_model = 64;
  run.config.train.epochs = 64;
  auto said = sweep::predict_run(run, stored);
  REQUIRE(said.has_value());
  CHECK(said->seconds == Approx(273));  // the longest at the nearest width, as --time-limit uses it
  REQUIRE(said->all_epochs_seconds.has_value());
  CHECK(*said->all_epochs_seconds == Approx(273.0 / 7 * 64));  // the slowest seconds an epoch there, 64 of them
  CHECK(said->budget_epochs == 64);
  // Wider than any finished: both scaled by the width's ratio.
  run.d_model = 512;
  said = sweep::predict_run(run, stored);
  CHECK(said->seconds == Approx(262));
  CHECK(*said->all_epochs_seconds == Approx(131.0 / 2 * 64 * 2));
  // Runs that trained their whole budget: the prediction is already for every epoch, and says nothing more.
  add("f", 64, "completed", 2700, 64);
  run.d_model = 64;
  said = sweep::predict_run(run, stored);
  CHECK(said->seconds == Approx(2700));
  CHECK_FALSE(said->all_epochs_seconds.has_value());
  // Records without an epoch count (older stores): no such time.
  for (auto& [hash, r] : stored) r.epochs = 0;
  run.d_model = 128;
  CHECK_FALSE(sweep::predict_run(run, stored)->all_epochs_seconds.has_value());
}

namespace {

// A Zoology MQAR run's configuration at one length, as the store keeps it.
std::string mqar_config(const std::string& mixer, int64_t seq_len, int64_t pairs) {
  return fmt::format(R"(seed = 123

[model]
d_model = 64
num_layers = 2

[model.mixer]
kind = "{}"
num_heads = 2

[task]
name = "mqar"
train_examples = 100000
test_examples = 3000

[task.params]
num_kv_pairs = {}
seq_len = {}
vocab_size = 8192

[train]
batch_size = 128
epochs = 64
)",
                     mixer, pairs, seq_len);
}

}  // namespace

TEST_CASE("a run of a task with no finished run is predicted from its model's nearest task, by tokens an epoch",
          "[sweep]") {
  // zoology-mqar after 111 runs: linear attention finished at L 64 (d_model 64 and 128) and nowhere else, so its
  // L 128 runs (64 epochs, never stopping early) had no prediction and a window started them, to be lost.
  std::map<std::string, sweep::RunRecord> stored;
  const auto add = [&](const std::string& hash, const std::string& task, const std::string& mixer, int64_t L,
                       int64_t d, const std::string& status, double wall) {
    sweep::RunRecord r;
    r.hash = hash, r.id = task + "/" + mixer, r.task = task, r.model = mixer, r.d_model = d, r.status = status;
    r.wall_s = wall, r.config = mqar_config(mixer, L, L / 16);
    stored[hash] = r;
  };
  add("a", "L64", "linear_attention", 64, 64, "completed", 290);
  add("b", "L64", "linear_attention", 64, 128, "completed", 325);
  add("c", "L256", "linear_attention", 256, 128, "failed", 9000);  // not finished: not a guide
  add("d", "L256", "delta_net", 256, 64, "early_stopped", 170);
  add("e", "L64", "delta_net", 64, 64, "early_stopped", 7);
  sweep::Run run;
  run.model = "linear_attention";
  const auto at = [&](const std::string& task, int64_t L, int64_t d) {
    run.task = task, run.d_model = d;
    run.config = train::parse_experiment(mqar_config(run.model, L, L / 16), "the test's run");
    return sweep::predict_run_seconds(run, stored);
  };
  // Twice the tokens an epoch: twice L 64's time, at its own width and scaled to a wider one.
  CHECK(at("L128", 128, 64) == Approx(580));
  CHECK(at("L128", 128, 128) == Approx(650));
  CHECK(at("L128", 128, 256) == Approx(1300));
  CHECK(at("L512", 512, 128) == Approx(325 * 8));
  const auto said = sweep::predict_run(run, stored);  // what --dry-run and --time-limit print
  REQUIRE(said.has_value());
  CHECK(said->basis == "its model's finished runs at L64, times 8 for the tokens an epoch");
  // The nearest task in tokens: DeltaNet at L 512 from L 256 (twice), not from L 64; at L 128 from L 64 and L 256
  // alike, the longer task's (half of L 256's).
  run.model = "delta_net";
  CHECK(at("L512", 512, 64) == Approx(340));
  CHECK(at("L128", 128, 64) == Approx(85));
  // A record whose configuration no longer parses is no guide to another task.
  stored["d"].config = "[model]\nno_such_key = 1\n";
  CHECK(at("L512", 512, 64) == Approx(56));
  // A model with no finished run anywhere: no prediction.
  run.model = "attention";
  CHECK_FALSE(at("L128", 128, 64).has_value());
}

TEST_CASE("a run another suite of the store finished is copied, not trained again; a failed one is trained", "[sweep]") {
  testing::TempDir dir("deltabench-runner-reuse-test");
  const auto suite = sweep::load_suite(deltabench::testing::source_dir() + "/tests/fixtures/suites/tiny.toml");
  const auto runs = sweep::expand(suite);
  REQUIRE(runs.size() >= 2);
  sweep::Store store((dir.path() / "store.sqlite").string());
  // Another suite's records of the grid's first two runs (the same hashes): one finished, one failed.
  auto finished = testing::make_record(runs[0].hash, 0.625, /*epochs=*/1);
  finished.suite = "other";
  finished.id = "their/own/name";
  finished.train_step = "eager (cpu); evaluation eager (cpu)";
  store.record(finished);
  auto failed = testing::make_record(runs[1].hash, 0.0, 1);
  failed.suite = "other";
  failed.status = "failed";
  store.record(failed);
  sweep::RunnerOptions options;
  options.progress = false;
  options.placement.device = "cpu";
  options.only = {sweep::parse_selection("d_model=" + std::to_string(runs[0].d_model)),
                  sweep::parse_selection("task=" + runs[0].task), sweep::parse_selection("model=" + runs[0].model)};
  // A dry run says what it would copy and writes nothing.
  options.dry_run = true;
  auto result = sweep::run_suite(suite, store, options);
  CHECK(result.reused == 1);
  CHECK(store.runs(suite.name).empty());
  options.dry_run = false;
  result = sweep::run_suite(suite, store, options);
  CHECK(result.reused == 1);
  const auto stored = store.runs(suite.name, /*with_history=*/true);
  REQUIRE(stored.contains(runs[0].hash));
  const auto& copy = stored.at(runs[0].hash);
  CHECK(copy.id == runs[0].id);  // this suite's name for it
  CHECK(copy.final_accuracy == 0.625);  // the other suite's result, not a new training's
  CHECK(copy.history.size() == 1);
  CHECK(copy.train_step == "eager (cpu); evaluation eager (cpu); copied from suite other");
  // The failed one is not copied: trained here (if --only selects it).
  if (runs[1].d_model == runs[0].d_model && runs[1].task == runs[0].task && runs[1].model == runs[0].model) {
    REQUIRE(stored.contains(runs[1].hash));
    CHECK(stored.at(runs[1].hash).train_step.find("copied") == std::string::npos);
  }
  // --no-reuse: a fresh store's copy of the other suite's run is trained again.
  sweep::Store fresh((dir.path() / "fresh.sqlite").string());
  fresh.record(finished);
  options.reuse = false;
  result = sweep::run_suite(suite, fresh, options);
  CHECK(result.reused == 0);
  CHECK(fresh.runs(suite.name).at(runs[0].hash).train_step.find("copied") == std::string::npos);
}
