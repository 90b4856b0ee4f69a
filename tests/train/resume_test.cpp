// Tests train/resume.cpp through the trainer: a run killed after an epoch goes on from its saved state
// and ends exactly as the run that was never killed (losses, metrics, history, bit for bit on the CPU,
// with dropout drawing from the generators); states of another run are not used; a state half written
// when the kill came is ignored; a damaged one is an error naming the file.

#include "models/language_model.h"
#include "tests/support/catch.h"
#include "tests/support/temp_dir.h"
#include "tests/support/source_dir.h"
#include "train/resume.h"
#include "train/trainer.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <torch/serialize.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using namespace deltabench;
using namespace deltabench::train;

namespace {

// Four epochs of 8 steps of the tiny MQAR, dropout on: the generators' states matter.
ExperimentConfig small() {
  auto c = load_experiment(deltabench::testing::source_dir() + "/configs/mqar-tiny.toml");
  c.task.train_examples = 512;
  c.task.test_examples = 128;
  c.model.mixer = models::default_mixer(models::MixerKind::kGatedDeltaNet);
  c.model.embed_dropout = 0.1;
  c.train.epochs = 4;
  c.train.early_stop = 0;
  return c;
}

struct Killed : std::runtime_error {
  Killed() : std::runtime_error("killed") {}
};

TrainOptions options(const std::filesystem::path& resume_dir, int64_t kill_after_epoch = 0) {
  TrainOptions o;
  o.progress = false;
  o.placement.device = "cpu";
  o.commit = "abc123";
  o.resume_dir = resume_dir.string();
  o.resume_interval_s = 0;  // a state after every epoch
  // A kill right after an epoch's evaluation, as SIGKILL would come: the trainer's callback throws.
  if (kill_after_epoch > 0) {
    o.on_progress = [kill_after_epoch](const Progress& p) {
      if (p.epoch_end && p.epoch == kill_after_epoch) throw Killed();
    };
  }
  return o;
}

void check_same_run(const RunSummary& resumed, const RunSummary& whole) {
  CHECK(resumed.status == whole.status);
  CHECK(resumed.steps == whole.steps);
  CHECK(resumed.epochs == whole.epochs);
  REQUIRE(resumed.step_losses.size() == whole.step_losses.size());
  CHECK(resumed.step_losses == whole.step_losses);
  CHECK(resumed.final_accuracy == whole.final_accuracy);
  CHECK(resumed.best_accuracy == whole.best_accuracy);
  CHECK(resumed.best_epoch == whole.best_epoch);
  REQUIRE(resumed.history.size() == whole.history.size());
  for (size_t i = 0; i < whole.history.size(); ++i) {
    INFO("epoch " << i + 1);
    CHECK(resumed.history[i].train_loss == whole.history[i].train_loss);
    CHECK(resumed.history[i].test_loss == whole.history[i].test_loss);
    CHECK(resumed.history[i].accuracy == whole.history[i].accuracy);
    CHECK(resumed.history[i].lr == whole.history[i].lr);
  }
  CHECK(resumed.backend() == whole.backend());
  CHECK(resumed.backend_pieces == whole.backend_pieces);
}

}  // namespace

TEST_CASE("resume: a run killed after an epoch goes on from its state and ends as the unkilled run, bit for bit",
          "[resume]") {
  const testing::TempDir temp("deltabench_resume_test");
  const auto c = small();
  const auto whole = run_experiment(c, options(temp.path() / "whole"));
  REQUIRE(whole.epochs == 4);
  CHECK(whole.resumed_after_epoch == 0);
  CHECK_FALSE(std::filesystem::exists(temp.path() / "whole"));  // a finished run leaves no state

  const auto dir = temp.path() / "killed";
  CHECK_THROWS_AS(run_experiment(c, options(dir, 2)), Killed);
  REQUIRE(std::filesystem::exists(dir / "state.pt"));
  const auto resumed = run_experiment(c, options(dir));
  CHECK(resumed.resumed_after_epoch == 2);
  CHECK(resumed.train_step == "eager (cpu); evaluation eager (cpu); resumed after epoch 2");
  check_same_run(resumed, whole);
  CHECK_FALSE(std::filesystem::exists(dir));

  // Killed twice, the second time after the resumed run's own first epoch.
  const auto twice = temp.path() / "twice";
  CHECK_THROWS_AS(run_experiment(c, options(twice, 1)), Killed);
  CHECK_THROWS_AS(run_experiment(c, options(twice, 3)), Killed);
  const auto third = run_experiment(c, options(twice));
  CHECK(third.resumed_after_epoch == 3);
  check_same_run(third, whole);
}

TEST_CASE("resume: a state of another config, epoch count or commit is not used, and the reason is given",
          "[resume]") {
  const testing::TempDir temp("deltabench_resume_test");
  const auto c = small();
  const auto dir = temp.path() / "state";
  CHECK_THROWS_AS(run_experiment(c, options(dir, 1)), Killed);
  REQUIRE(std::filesystem::exists(dir / "state.pt"));

  models::LanguageModel model(c.model);
  FusedAdamW optimizer(model, c.train, at::kCPU);
  std::string why;
  CHECK_FALSE(load_resume_state(dir, "another-hash", 4, "abc123", false, model, optimizer, at::kCPU, &why));
  CHECK(why == (dir / "state.pt").string() + " is of config " + c.hash + ", not another-hash: starting over");
  CHECK_FALSE(load_resume_state(dir, c.hash, 8, "abc123", false, model, optimizer, at::kCPU, &why));
  CHECK(why.find("is of a run of 4 epochs, not 8") != std::string::npos);
  CHECK_FALSE(load_resume_state(dir, c.hash, 4, "def456", false, model, optimizer, at::kCPU, &why));
  CHECK(why.find("was saved at commit abc123, this is def456 (run --resume-any-commit takes it)") != std::string::npos);
  const auto state = load_resume_state(dir, c.hash, 4, "abc123", false, model, optimizer, at::kCPU, &why);
  REQUIRE(state);
  CHECK(why.empty());
  CHECK(state->epochs_done == 1);
  CHECK(state->summary.history.size() == 1);
  // The pieces' counts of the epoch trained come back, so the resumed run's record counts all its epochs.
  CHECK(state->train_pieces.of(models::Piece::kEmbedding, models::PieceForm::kAten) > 0);
  CHECK(!load_resume_state(temp.path() / "none", c.hash, 4, "abc123", false, model, optimizer, at::kCPU, &why));
  CHECK(why.empty());  // no state: nothing to say

  // A state saved by a run on CUDA (its record says so, and it holds that device's generator too).
  {
    std::vector<at::Tensor> tensors;
    torch::load(tensors, (dir / "state.pt").string());
    const auto& bytes = tensors.back();
    auto progress = nlohmann::json::parse(std::string(static_cast<const char*>(bytes.data_ptr()), bytes.numel()));
    progress["device"] = "cuda";
    const std::string text = progress.dump();
    tensors.back() = at::from_blob(const_cast<char*>(text.data()), {static_cast<int64_t>(text.size())}, at::kByte).clone();
    std::filesystem::create_directories(temp.path() / "cuda");
    torch::save(tensors, (temp.path() / "cuda" / "state.pt").string());
  }
  CHECK_FALSE(load_resume_state(temp.path() / "cuda", c.hash, 4, "abc123", false, model, optimizer, at::kCPU, &why));
  CHECK(why.find("was saved by a run on cuda, and this run trains on cpu: starting over") != std::string::npos);

  // Through the trainer: another commit starts over and ends as a fresh run.
  auto other = options(dir);
  other.commit = "def456";
  const auto fresh = run_experiment(c, other);
  CHECK(fresh.resumed_after_epoch == 0);
  check_same_run(fresh, run_experiment(c, options(temp.path() / "reference")));
}

TEST_CASE("resume: a state half written when the kill came is ignored; a damaged one is an error naming the file",
          "[resume]") {
  const testing::TempDir temp("deltabench_resume_test");
  const auto c = small();
  const auto dir = temp.path() / "state";
  CHECK_THROWS_AS(run_experiment(c, options(dir, 2)), Killed);
  std::ofstream(dir / "state.pt.partial") << "the first bytes of a state";
  const auto resumed = run_experiment(c, options(dir));
  CHECK(resumed.resumed_after_epoch == 2);

  CHECK_THROWS_AS(run_experiment(c, options(dir, 1)), Killed);
  std::ofstream(dir / "state.pt", std::ios::trunc) << "not a state";
  CHECK_THROWS_WITH(run_experiment(c, options(dir)),
                    testing::contains((dir / "state.pt").string() + ": cannot read the resume state"));
}

TEST_CASE("resume: asked to, a run goes on from another commit's state and its record names each commit", "[resume]") {
  const testing::TempDir temp("deltabench_resume_test");
  const auto c = small();
  const auto whole = run_experiment(c, options(temp.path() / "whole"));

  // Killed after epoch 1 at abc123, after epoch 3 at def456, then ended at 0a0b0c: the same computation on the
  // CPU, so the same run bit for bit, trained at three commits.
  const auto dir = temp.path() / "state";
  CHECK_THROWS_AS(run_experiment(c, options(dir, 1)), Killed);
  auto second = options(dir, 3);
  second.commit = "def456";
  second.resume_any_commit = true;
  CHECK_THROWS_AS(run_experiment(c, second), Killed);

  models::LanguageModel model(c.model);
  FusedAdamW optimizer(model, c.train, at::kCPU);
  std::string why;
  CHECK_FALSE(load_resume_state(dir, c.hash, 4, "0a0b0c", false, model, optimizer, at::kCPU, &why));
  CHECK(why.find("was saved at commit def456, this is 0a0b0c") != std::string::npos);
  const auto state = load_resume_state(dir, c.hash, 4, "0a0b0c", true, model, optimizer, at::kCPU, &why);
  REQUIRE(state);
  CHECK(why.empty());
  CHECK(state->commit == "def456");
  CHECK(state->commits == std::vector<std::pair<int64_t, std::string>>{{1, "abc123"}, {2, "def456"}});

  auto third = options(dir);
  third.commit = "0a0b0c";
  third.resume_any_commit = true;
  const auto resumed = run_experiment(c, third);
  CHECK(resumed.resumed_after_epoch == 3);
  CHECK(resumed.train_step ==
        "eager (cpu); evaluation eager (cpu); resumed after epoch 3; trained at commit abc123 from epoch 1, def456 "
        "from epoch 2, 0a0b0c from epoch 4");
  check_same_run(resumed, whole);

  // At the state's own commit nothing more is said than a resume.
  const auto same = temp.path() / "same";
  CHECK_THROWS_AS(run_experiment(c, options(same, 2)), Killed);
  auto again = options(same);
  again.resume_any_commit = true;
  CHECK(run_experiment(c, again).train_step == "eager (cpu); evaluation eager (cpu); resumed after epoch 2");
}

