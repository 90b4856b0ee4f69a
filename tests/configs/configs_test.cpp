// Every shipped config trains: each distinct model configuration of every suite in configs/suites/
// and every experiment in configs/ runs a few steps on the CPU at a tiny size, with a finite loss.
// A suite whose row diverges at its first step (as ablations' sum-normalised silu row once did)
// would otherwise print 0 in its table after hours on a GPU.

#include "sweep/suite.h"
#include "tests/support/catch.h"
#include "tests/support/source_dir.h"
#include "train/trainer.h"

#include <cmath>
#include <filesystem>
#include <set>

using namespace deltabench;

namespace {

// The same model and task at a size a CPU trains in a moment: few examples, a small batch, width 32.
train::ExperimentConfig shrunk(train::ExperimentConfig c) {
  auto& p = c.task.params;
  if (c.task.name == "mqar") {
    c.task.train_examples = 16;
    c.task.test_examples = 8;
  } else {
    p["num_train_examples"] = "16";
    p["num_test_examples"] = "8";
  }
  const int64_t heads = c.model.mixer.num_heads;
  c.model.d_model = std::max<int64_t>(32, heads * 8);
  c.model.num_layers = std::min<int64_t>(c.model.num_layers, 2);
  c.train.batch_size = 4;
  c.train.eval_batch_size = 0;
  c.train.epochs = 1;
  return c;
}

void check_trains(const train::ExperimentConfig& config, const std::string& what) {
  INFO(what);
  train::TrainOptions options;
  options.progress = false;
  options.placement.device = "cpu";
  options.max_steps = 3;
  const auto s = train::run_experiment(shrunk(config), options);
  CHECK(s.status != "diverged");
  REQUIRE(s.step_losses.size() == 3);
  for (const double loss : s.step_losses) CHECK(std::isfinite(loss));
}

}  // namespace

TEST_CASE("configs: every model of every shipped suite trains a few steps with a finite loss", "[configs]") {
  const auto dir = std::filesystem::path(deltabench::testing::source_dir()) / "configs" / "suites";
  size_t suites = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".toml") continue;
    ++suites;
    const auto suite = sweep::load_suite(entry.path().string());
    // One run per (model variant, task kind): the first in grid order, at its learning rate.
    std::set<std::pair<std::string, std::string>> seen;
    for (const auto& run : sweep::expand(suite)) {
      if (!seen.insert({run.model, run.config.task.name}).second) continue;
      check_trains(run.config, suite.name + ": " + run.id);
    }
  }
  CHECK(suites >= 5);
}

TEST_CASE("configs: every shipped experiment trains a few steps with a finite loss", "[configs]") {
  const auto dir = std::filesystem::path(deltabench::testing::source_dir()) / "configs";
  size_t experiments = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".toml") continue;
    ++experiments;
    train::Placement placement;
    check_trains(train::load_experiment(entry.path().string(), &placement), entry.path().filename().string());
  }
  CHECK(experiments >= 3);
}
