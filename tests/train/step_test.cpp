// Tests train/step.cpp on the CPU: the fused AdamW against LibTorch's AdamW (both weight-decay
// groups), the on-device gradient clipping against clip_grad_norm_, and the step's loss buffer. The
// captured step is tested on the GPU (tests/train/cuda_test.cpp).

#include "models/language_model.h"
#include "tasks/dataset.h"
#include "tasks/registry.h"
#include "tests/support/catch.h"
#include "tests/support/source_dir.h"
#include "train/step.h"
#include "train/trainer.h"

#include <ATen/ATen.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

#include <cmath>
#include <string>
#include <vector>

using namespace deltabench;
using namespace deltabench::train;

namespace {

ExperimentConfig tiny_gated() {
  auto c = load_experiment(deltabench::testing::source_dir() + "/configs/mqar-tiny.toml");
  c.model.mixer = models::default_mixer(models::MixerKind::kGatedDeltaNet);  // A_log and dt_bias: no decay
  c.model.mixer.num_heads = 2;
  c.model.mixer.chunk_size = 16;
  return c;
}

// A batch of the config's task on the CPU.
tasks::Batch first_batch(const ExperimentConfig& c, int64_t size) {
  auto params = c.task.params;
  params["num_examples"] = std::to_string(size);
  const auto data = tasks::generate_task("mqar", params, tasks::Split::kTrain, 0);
  tasks::DeviceDataset set(data, at::kCPU);
  set.start_epoch(0, 0, false);
  return set.batch(0, size);
}

double max_relative_difference(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, ((a[i] - b[i]).norm() / (b[i].norm() + 1e-12)).item<double>());
  }
  return worst;
}

}  // namespace

TEST_CASE("step: the fused AdamW takes LibTorch AdamW's steps, decay on matrices only", "[step]") {
  const auto c = tiny_gated();
  const auto batch = first_batch(c, 16);
  torch::manual_seed(7);
  models::LanguageModel ours(c.model), theirs(c.model);
  {
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < ours->parameters().size(); ++i) theirs->parameters()[i].copy_(ours->parameters()[i]);
  }
  FusedAdamW fused(ours, c.train, at::kCPU);
  std::vector<at::Tensor> decay, no_decay;
  for (const auto& p : theirs->named_parameters()) (excluded_from_weight_decay(p.key()) ? no_decay : decay).push_back(p.value());
  REQUIRE(!no_decay.empty());
  std::vector<torch::optim::OptimizerParamGroup> groups;
  const auto options = [&](double wd) {
    auto o = std::make_unique<torch::optim::AdamWOptions>(3e-3);
    o->betas({c.train.beta1, c.train.beta2}).eps(c.train.eps).weight_decay(wd);
    return o;
  };
  groups.emplace_back(decay, options(c.train.weight_decay));
  groups.emplace_back(no_decay, options(0.0));
  torch::optim::AdamW reference(groups);
  fused.set_lr(3e-3);
  for (int step = 0; step < 5; ++step) {
    for (auto* model : {&ours, &theirs}) {
      const auto logits = (*model)->forward(batch.inputs);
      at::cross_entropy_loss(logits.reshape({-1, c.model.vocab_size}), batch.targets.reshape(-1), {}, at::Reduction::Mean,
                             tasks::kIgnoreIndex)
          .backward();
    }
    fused.step();
    fused.zero_grad();
    reference.step();
    reference.zero_grad();
  }
  const double diff = max_relative_difference(ours->parameters(), theirs->parameters());
  INFO("largest relative difference of a parameter after 5 steps: " << diff);
  CHECK(diff < 1e-5);
  // The state a checkpoint saves: two moments and a step count per parameter, the counts at 5.
  const auto state = fused.state();
  const size_t n = ours->parameters().size();
  REQUIRE(state.size() == 3 * n);
  CHECK(state[2 * n].item<float>() == 5.0f);
}

TEST_CASE("step: gradients are clipped on the device as clip_grad_norm_ clips them", "[step]") {
  for (const double max_norm : {0.5, 1e9}) {
    INFO("max_norm " << max_norm);
    torch::manual_seed(3);
    std::vector<at::Tensor> ours = {at::randn({4, 5}), at::randn({7}), at::randn({2, 2, 3})};
    std::vector<at::Tensor> params;
    for (const auto& g : ours) {
      auto p = at::zeros_like(g).requires_grad_(true);
      p.mutable_grad() = g.clone();
      params.push_back(p);
    }
    clip_grad_norm(ours, max_norm);
    torch::nn::utils::clip_grad_norm_(params, max_norm);
    for (size_t i = 0; i < ours.size(); ++i) CHECK(at::allclose(ours[i], params[i].grad(), 1e-6, 1e-7));
  }
}

TEST_CASE("step: losses come back in order when read, once; the buffer's size is enforced", "[step]") {
  const auto c = tiny_gated();
  const auto batch = first_batch(c, 8);
  torch::manual_seed(1);
  models::LanguageModel model(c.model);
  FusedAdamW optimizer(model, c.train, at::kCPU);
  StepOptions o;
  o.vocab_size = c.model.vocab_size;
  o.scored = tasks::max_scored_positions(batch.targets);
  o.grad_clip = 1.0;
  o.capture = true;  // asked for, but the CPU has no graphs: the step says it ran eagerly
  o.capacity = 3;
  TrainStep step(model, optimizer, o, at::kCPU);
  step.run(batch);
  step.run(batch);
  const auto first = step.read_losses();
  REQUIRE(first.size() == 2);
  CHECK(std::isfinite(first[0]));
  CHECK(first[1] < first[0]);  // the same batch twice: the first step lowered its loss
  CHECK(step.read_losses().empty());
  step.run(batch);
  CHECK(step.read_losses().size() == 1);
  CHECK(step.steps() == 3);
  CHECK_THROWS_WITH(step.run(batch), testing::contains("more steps than the 3"));
  CHECK(step.mode() == "eager (cpu)");
  CHECK_FALSE(step.captured());
}
