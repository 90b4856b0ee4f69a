// Tests train/trainer.cpp: a real learning test (a tiny MQAR learned by attention and DeltaNet on
// the CPU within a fixed step budget), bit-for-bit reproducibility, divergence recorded rather than
// crashed on, the schedule, weight-decay exclusions, checkpoints and the metrics file.

#include "models/language_model.h"
#include "tasks/dataset.h"
#include "tasks/registry.h"
#include "tests/support/catch.h"
#include "tests/support/temp_dir.h"
#include "tests/support/source_dir.h"
#include "train/trainer.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <torch/serialize.h>

#include <filesystem>
#include <fstream>
#include <string>

using namespace deltabench;
using namespace deltabench::train;

namespace {

ExperimentConfig tiny(models::MixerKind kind) {
  auto c = load_experiment(deltabench::testing::source_dir() + "/configs/mqar-tiny.toml");
  if (kind == models::MixerKind::kAttention) {
    c.model.mixer = models::default_mixer(kind);  // one head, as Zoology's MHA
    c.model.max_position_embeddings = 32;         // attention needs positions to learn the task
  }
  return c;
}

TrainOptions quiet() {
  TrainOptions o;
  o.progress = false;
  return o;
}

}  // namespace

TEST_CASE("trainer: attention and DeltaNet learn a tiny MQAR on the CPU", "[trainer][learning]") {
  for (const auto kind : {models::MixerKind::kAttention, models::MixerKind::kDeltaNet}) {
    INFO(models::to_string(kind));
    auto options = quiet();
    options.max_steps = 3000;  // the budget: 19 epochs of 157 steps
    const auto s = run_experiment(tiny(kind), options);
    INFO("status " << s.status << " after " << s.steps << " steps, best accuracy " << s.best_accuracy);
    CHECK(s.status == "early_stopped");
    CHECK(s.best_accuracy >= 0.99);
  }
}

TEST_CASE("trainer: MAD's compression trains the autoencoder, which learns a tiny compression on the CPU",
          "[trainer][learning]") {
  // 7 tokens of 3 symbols and the compression token; the test examples are unseen sequences, so only a
  // model that encodes the whole sequence into the last position and decodes every position scores.
  const auto c = parse_experiment(R"(seed = 12345
[task]
name = "compression"
train_seed = 12345
[task.params]
vocab_size = 4
seq_len = 8
num_train_examples = 4000
num_test_examples = 256
[model]
d_model = 64
num_layers = 2
norm = "rmsnorm"
state_mixer = "swiglu"
hidden_ratio = 2.75
[model.mixer]
kind = "delta_net"
num_heads = 2
chunk_size = 16
[train]
epochs = 40
batch_size = 64
lr = 3e-3
weight_decay = 0.0
early_stop = 0.99
)",
                                  "compression.toml");
  REQUIRE(c.model.backbone == models::Backbone::kAutoEncoder);
  auto options = quiet();
  options.max_steps = 1500;  // it early-stopped after 441 steps when written
  const auto s = run_experiment(c, options);
  INFO("status " << s.status << " after " << s.steps << " steps, best accuracy " << s.best_accuracy);
  CHECK(s.status == "early_stopped");
  CHECK(s.best_accuracy >= 0.99);
}

TEST_CASE("trainer: same config and seed give the same losses, bit for bit", "[trainer]") {
  auto options = quiet();
  options.max_steps = 25;
  const auto c = tiny(models::MixerKind::kGatedDeltaNet);
  const auto a = run_experiment(c, options), b = run_experiment(c, options);
  REQUIRE(a.step_losses.size() == 25);
  CHECK(a.step_losses == b.step_losses);
  auto other = c;
  other.seed = 124;
  CHECK(run_experiment(other, options).step_losses != a.step_losses);
}

TEST_CASE("trainer: a NaN loss ends the run as diverged, with its step", "[trainer]") {
  auto c = tiny(models::MixerKind::kDeltaNet);
  c.train.lr = 1e30;  // the first update sends the weights to infinity
  c.train.grad_clip = 0;
  auto options = quiet();
  options.max_steps = 50;
  const auto s = run_experiment(c, options);
  CHECK(s.status == "diverged");
  CHECK(s.diverged_step > 1);
  CHECK(s.diverged_step <= 50);
}

// The loss and every parameter's gradient, with the head at every position or at the scored ones only.
static std::pair<double, std::vector<at::Tensor>> loss_and_grads(models::LanguageModel& model, const tasks::TaskData& data,
                                                          bool scored_only) {
  const auto inputs = data.inputs.narrow(0, 0, 8), targets = data.targets.narrow(0, 0, 8);
  const int64_t V = model->config().vocab_size;
  at::Tensor logits = model->forward(inputs), t = targets;
  if (scored_only) {
    const auto out = scored_logits(model, inputs, targets, tasks::max_scored_positions(data.targets));
    logits = out.logits, t = out.targets;
  }
  const auto loss = at::cross_entropy_loss(logits.reshape({-1, V}), t.reshape(-1), {}, at::Reduction::Mean,
                                           tasks::kIgnoreIndex);
  model->zero_grad();
  loss.backward();
  std::vector<at::Tensor> grads;
  for (const auto& p : model->parameters()) grads.push_back(p.grad().clone());
  return {loss.item<double>(), grads};
}

TEST_CASE("trainer: the head at scored positions only gives the full head's loss and gradients", "[trainer]") {
  for (const std::string preset : {"mqar-tiny.toml", "mad-in-context-recall.toml"}) {
    INFO(preset);
    auto c = load_experiment(deltabench::testing::source_dir() + "/configs/" + preset);
    c.model.d_model = 32;
    const auto data = tasks::generate_task(c.task.name, c.task.params, tasks::Split::kTrain, 0);
    const int64_t scored = tasks::max_scored_positions(data.targets);
    INFO("scored positions " << scored << " of " << data.targets.size(1));
    // MQAR scores its queries only; this MAD setting scores every position (the same loss either way).
    if (c.task.name == "mqar") CHECK(scored == std::stoll(c.task.params.at("num_kv_pairs")));
    torch::manual_seed(0);
    models::LanguageModel model(c.model);
    const auto [full_loss, full_grads] = loss_and_grads(model, data, false);
    const auto [loss, grads] = loss_and_grads(model, data, true);
    CHECK(std::abs(loss - full_loss) <= 1e-6 * std::abs(full_loss));
    REQUIRE(grads.size() == full_grads.size());
    for (size_t i = 0; i < grads.size(); ++i) {
      const double scale = full_grads[i].norm().item<double>();
      const double diff = (grads[i] - full_grads[i]).norm().item<double>();
      INFO("parameter " << i << ": |g - g_full| = " << diff << ", |g_full| = " << scale);
      CHECK(diff <= 1e-5 * scale + 1e-12);
    }
  }
}

TEST_CASE("trainer: scored positions come first, in order, with static shapes", "[trainer]") {
  const auto targets = at::tensor({-100, 5, -100, 7, -100, -100, 9, -100}, at::kLong).reshape({2, 4});
  CHECK(tasks::max_scored_positions(targets) == 2);
  const auto index = tasks::scored_positions(targets, 2);
  CHECK(index.sizes() == at::IntArrayRef({2, 2}));
  CHECK(at::equal(index, at::tensor({1, 3, 2, 0}, at::kLong).reshape({2, 2})));
  CHECK(at::equal(targets.gather(1, index), at::tensor({5, 7, 9, -100}, at::kLong).reshape({2, 2})));
}

TEST_CASE("trainer: durations read as a person reads them", "[trainer]") {
  CHECK(format_duration(0.4) == "0s");
  CHECK(format_duration(59.4) == "59s");
  CHECK(format_duration(59.6) == "1m00s");
  CHECK(format_duration(119.6) == "2m00s");  // printed "1m60s" before
  CHECK(format_duration(3599.6) == "1h00m");
  CHECK(format_duration(NAN) == "?");
}

TEST_CASE("trainer: a device this machine lacks is an error naming where it was asked for", "[trainer]") {
  auto options = quiet();
  options.placement.device = "gpu";
  options.placement.device_origin = "--device";
  CHECK_THROWS_WITH(run_experiment(tiny(models::MixerKind::kDeltaNet), options),
                    testing::contains("--device: expected \"auto\", \"cpu\", \"cuda\" or \"cuda:N\", got \"gpu\""));
  if (visible_gpus() == 0) {
    options.placement.device = "cuda";
    CHECK_THROWS_WITH(run_experiment(tiny(models::MixerKind::kDeltaNet), options),
                      testing::contains("--device: \"cuda\" requested, but"));
    CHECK(resolve_device("auto", "x").name == "cpu");
  }
}

TEST_CASE("trainer: backend kernel on the CPU is an error naming where it was asked for", "[trainer]") {
  auto options = quiet();
  options.placement.device = "cpu";
  options.placement.backend = "kernel";
  options.placement.backend_origin = "--backend";
  CHECK_THROWS_WITH(run_experiment(tiny(models::MixerKind::kDeltaNet), options),
                    "--backend: backend \"kernel\" runs deltabench's CUDA kernels, and this run trains on cpu (give a "
                    "CUDA device, or backend \"auto\" or \"reference\")");
  options.placement.backend = "reference";
  const auto s = run_experiment(tiny(models::MixerKind::kDeltaNet), options);
  CHECK(s.backend_train_forward == "reference");
}

TEST_CASE("trainer: too much memory is an error naming the key, before any allocation", "[trainer]") {
  auto c = tiny(models::MixerKind::kDeltaNet);
  c.model.vocab_size = 1 << 20;
  c.model.d_model = 4096;
  const auto e = estimate_memory(c);
  CHECK(e.largest == "[model] vocab_size");
  CHECK(e.total() > 1e9);
  CHECK_THROWS_WITH(check_memory(c, 1e9, "this machine"),
                    testing::contains("[model] vocab_size makes this run need about") &&
                        testing::contains("more than the 1.0 GB available on this machine"));
  CHECK_NOTHROW(check_memory(tiny(models::MixerKind::kDeltaNet), 1e9, "this machine"));
}

TEST_CASE("trainer: cosine schedule per epoch with warmup", "[trainer]") {
  TrainConfig t;
  t.lr = 1e-2;
  t.min_lr = 1e-4;
  t.epochs = 10;
  CHECK(scheduled_lr(t, 0) == Approx(1e-2));
  CHECK(scheduled_lr(t, 5) == Approx(1e-4 + (1e-2 - 1e-4) * 0.5));
  CHECK(scheduled_lr(t, 9) == Approx(1e-4 + (1e-2 - 1e-4) * 0.5 * (1 + std::cos(M_PI * 0.9))));
  t.warmup_epochs = 3;
  CHECK(scheduled_lr(t, 0) == Approx(0.25e-2));
  CHECK(scheduled_lr(t, 2) == Approx(0.75e-2));
  CHECK(scheduled_lr(t, 3) == Approx(1e-2));
}

TEST_CASE("trainer: weight decay skips norms, biases, A_log and dt_bias", "[trainer]") {
  CHECK(excluded_from_weight_decay("blocks.0.mixer_norm.norm.weight"));
  CHECK(excluded_from_weight_decay("blocks.1.mixer.o_norm.weight"));
  CHECK(excluded_from_weight_decay("blocks.0.mixer.qkv.bias"));
  CHECK(excluded_from_weight_decay("blocks.0.mixer.A_log"));
  CHECK(excluded_from_weight_decay("blocks.0.mixer.dt_bias"));
  CHECK_FALSE(excluded_from_weight_decay("blocks.0.mixer.q_proj.weight"));
  CHECK_FALSE(excluded_from_weight_decay("embedding.weight"));
}

TEST_CASE("trainer: a run's recompute is recorded with its step; a bad one is an error naming where it was asked for",
          "[trainer]") {
  auto c = tiny(models::MixerKind::kDeltaNet);
  c.train.epochs = 1;
  c.train.early_stop = 0;
  auto options = quiet();
  options.placement.device = "cpu";
  const auto kept = run_experiment(c, options);
  CHECK(kept.train_step == "eager (cpu); evaluation eager (cpu)");
  options.placement.recompute = "all";
  options.placement.recompute_origin = "--recompute";
  const auto recomputed = run_experiment(c, options);
  CHECK(recomputed.train_step == "eager (cpu); evaluation eager (cpu); recompute all");
  // The reference ops keep what autograd keeps whatever it says: the same losses, bit for bit.
  CHECK(recomputed.step_losses == kept.step_losses);
  options.placement.recompute = "half";
  CHECK_THROWS_WITH(run_experiment(c, options), testing::contains("--recompute: expected \"none\", \"state\" or \"all\"") &&
                                                    testing::contains("got \"half\""));
}

TEST_CASE("trainer: metrics file and checkpoint", "[trainer]") {
  const testing::TempDir temp("deltabench_trainer_test");
  const auto& dir = temp.path();
  auto c = tiny(models::MixerKind::kDeltaNet);
  c.train.epochs = 2;
  c.train.early_stop = 0;
  auto options = quiet();
  options.placement.device = "cpu";
  options.placement.checkpoint = (dir / "ckpt").string();
  options.metrics_path = (dir / "metrics.jsonl").string();
  options.commit = "abc123";
  const auto s = run_experiment(c, options);
  CHECK(s.status == "completed");
  CHECK(s.epochs == 2);
  CHECK(s.device == "cpu");
  CHECK(s.threads >= 1);
  // The CPU runs the reference ops, with autograd for the backward; evaluation too.
  CHECK(s.backend_train_forward == "reference");
  CHECK(s.backend_train_backward == "reference (ATen autograd)");
  CHECK(s.backend_eval_forward == "reference");
  CHECK(s.train_step == "eager (cpu); evaluation eager (cpu)");
  // Around them: the fused CPU passes for the short convolutions and q and k's L2 norm, ATen's forms
  // for the rest (models/pieces.h).
  CHECK(s.backend_pieces == "embedding aten, LayerNorm aten, RMSNorm aten, short conv cpu fused, q/k L2 norm cpu fused");
  std::ifstream in(options.metrics_path);
  std::string line;
  int epochs = 0, summaries = 0;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);  // every line is valid JSON
    epochs += j.at("type") == "epoch";
    if (j.at("type") == "summary") {
      ++summaries;
      // The summary names what ran: seed, the config's hash and the commit, at full precision.
      CHECK(j.at("seed") == c.seed);
      CHECK(j.at("config_hash") == c.hash);
      CHECK(j.at("commit") == "abc123");
      CHECK(j.at("final_accuracy").get<double>() == s.final_accuracy);
      CHECK(j.at("backend_train_forward") == "reference");
      CHECK(j.at("train_step") == s.train_step);
      CHECK(j.at("backend_pieces") == s.backend_pieces);
    }
  }
  CHECK(epochs == 2);
  CHECK(summaries == 1);
  // The checkpoint restores the trained weights.
  models::LanguageModel restored(c.model);
  torch::load(restored, (dir / "ckpt" / "model.pt").string());
  CHECK(models::parameter_count(*restored) == s.parameters);
  CHECK(std::filesystem::exists(dir / "ckpt" / "optimizer.pt"));
}
