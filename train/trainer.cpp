#include "train/trainer.h"

#include "models/language_model.h"
#include "tasks/dataset.h"
#include "tasks/metrics.h"
#include "tasks/registry.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/core/GradMode.h>
#include <fmt/core.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/serialize.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <string>

namespace deltabench::train {
namespace {

using Clock = std::chrono::steady_clock;

// bf16 autocast on CUDA for the guard's lifetime (torch.autocast's enter and exit).
class AutocastGuard {
 public:
  explicit AutocastGuard(bool on) : on_(on) {
    if (!on_) return;
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    at::autocast::increment_nesting();
  }
  ~AutocastGuard() {
    if (!on_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(at::kCUDA, false);
  }

 private:
  bool on_;
};

struct Data {
  tasks::TaskData train, test;
};

Data make_data(const TaskConfig& t) {
  Data d;
  if (t.name == "mqar") {
    auto params = t.params;
    const auto defaults = tasks::Params("mqar", tasks::find_task("mqar").params, params);
    const std::string n = defaults.text("num_examples");
    params["num_examples"] = t.train_examples > 0 ? std::to_string(t.train_examples) : n;
    d.train = tasks::generate_task("mqar", params, tasks::Split::kTrain, t.train_seed);
    params["num_examples"] = t.test_examples > 0 ? std::to_string(t.test_examples) : n;
    d.test = tasks::generate_task("mqar", params, tasks::Split::kTest, t.test_seed);
  } else {
    d.train = tasks::generate_task(t.name, t.params, tasks::Split::kTrain, t.train_seed);
    d.test = tasks::generate_task(t.name, t.params, tasks::Split::kTest, t.train_seed);
  }
  return d;
}

// AdamW with weight decay on matrices only: norms, biases, A_log and dt_bias are excluded.
std::vector<torch::optim::OptimizerParamGroup> param_groups(models::LanguageModel& model, const TrainConfig& t) {
  std::vector<at::Tensor> decay, no_decay;
  for (const auto& p : model->named_parameters()) {
    (excluded_from_weight_decay(p.key()) ? no_decay : decay).push_back(p.value());
  }
  const auto options = [&](double wd) {
    auto o = std::make_unique<torch::optim::AdamWOptions>(t.lr);
    o->betas({t.beta1, t.beta2}).eps(t.eps).weight_decay(wd);
    return o;
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, options(t.weight_decay));
  groups.emplace_back(no_decay, options(0.0));
  return groups;
}

void synchronize(const at::Device& device) {
  if (device.is_cuda()) at::detail::getCUDAHooks().deviceSynchronize(device.index() < 0 ? 0 : device.index());
}

std::string duration(double s) {
  if (s < 60) return fmt::format("{:.0f}s", s);
  if (s < 3600) return fmt::format("{:.0f}m{:02.0f}s", std::floor(s / 60), std::fmod(s, 60));
  return fmt::format("{:.0f}h{:02.0f}m", std::floor(s / 3600), std::fmod(s, 3600) / 60);
}

std::string number(double x) {
  if (std::isnan(x)) return "null";
  if (std::isinf(x)) return x > 0 ? "1e999" : "-1e999";
  return fmt::format("{:.6g}", x);
}

}  // namespace

bool excluded_from_weight_decay(const std::string& name) {
  return name.find("norm") != std::string::npos || name.ends_with("bias") || name.ends_with("A_log");
}

double scheduled_lr(const TrainConfig& t, int64_t epoch) {
  if (epoch < t.warmup_epochs) return t.lr * static_cast<double>(epoch + 1) / static_cast<double>(t.warmup_epochs + 1);
  const int64_t span = std::max<int64_t>(1, t.epochs - t.warmup_epochs);
  const double progress = static_cast<double>(epoch - t.warmup_epochs) / static_cast<double>(span);
  return t.min_lr + (t.lr - t.min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
}

std::string to_json(const EpochMetrics& m) {
  return fmt::format(
      R"({{"type": "epoch", "epoch": {}, "steps": {}, "lr": {}, "train_loss": {}, "test_loss": {}, "accuracy": {}, )"
      R"("mqar_accuracy": {}, "micro_accuracy": {}, "mad_accuracy": {}, "wall_s": {}}})",
      m.epoch, m.steps, number(m.lr), number(m.train_loss), number(m.test_loss), number(m.accuracy),
      number(m.mqar_accuracy), number(m.micro_accuracy), number(m.mad_accuracy), number(m.wall_s));
}

std::string to_json(const RunSummary& s, const ExperimentConfig& c) {
  return fmt::format(
      R"({{"type": "summary", "name": "{}", "status": "{}", "diverged_step": {}, "best_accuracy": {}, "best_epoch": {}, )"
      R"("final_accuracy": {}, "epochs": {}, "steps": {}, "wall_s": {}, "tokens_per_s": {}, "parameters": {}, "device": "{}"}})",
      c.name, s.status, s.diverged_step, number(s.best_accuracy), s.best_epoch, number(s.final_accuracy), s.epochs,
      s.steps, number(s.wall_s), number(s.tokens_per_s), s.parameters, s.device);
}

RunSummary run_experiment(const ExperimentConfig& c, const TrainOptions& opt) {
  TrainConfig t = c.train;
  if (opt.epochs) t.epochs = *opt.epochs;
  const at::Device device(opt.device.value_or(t.device));
  if (device.is_cuda() && !at::hasCUDA()) {
    throw ConfigError(c.source + ": [train] device: \"" + device.str() + "\" requested, but no CUDA device is visible");
  }
  const bool autocast = device.is_cuda() && t.precision == "auto";
  const int64_t eval_batch = t.eval_batch_size > 0 ? t.eval_batch_size : t.batch_size;

  const Data data = make_data(c.task);
  tasks::DeviceDataset train_set(data.train, device), test_set(data.test, device);
  const int64_t V = c.model.vocab_size;
  if (data.train.vocab_size > V) {
    throw ConfigError(c.source + ": [model] vocab_size " + std::to_string(V) + " is smaller than the task's " +
                      std::to_string(data.train.vocab_size));
  }

  torch::manual_seed(c.seed);
  models::LanguageModel model(c.model);
  model->to(device);
  torch::optim::AdamW optimizer(param_groups(model, t));

  RunSummary summary;
  summary.device = device.str();
  summary.parameters = models::parameter_count(*model);
  std::ofstream metrics;
  if (!opt.metrics_path.empty()) {
    const std::filesystem::path p(opt.metrics_path);
    if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
    metrics.open(p);
    if (!metrics) throw ConfigError("cannot write metrics to " + opt.metrics_path);
  }
  if (opt.progress) {
    fmt::print("{}: {} on {} | {} train / {} test examples of length {} | {} parameters | {} epochs of {} steps\n",
               c.name, models::to_string(c.model.mixer.kind), device.str(), train_set.size(), test_set.size(),
               train_set.seq_len(), summary.parameters, t.epochs, train_set.num_batches(t.batch_size));
    std::fflush(stdout);
  }

  const auto start = Clock::now();
  auto last_print = start;
  const auto since = [&](Clock::time_point from) { return std::chrono::duration<double>(Clock::now() - from).count(); };
  const int64_t steps_per_epoch = train_set.num_batches(t.batch_size);
  const int64_t total_steps = steps_per_epoch * t.epochs;
  int64_t tokens = 0;
  summary.status = "completed";

  for (int64_t epoch = 0; epoch < t.epochs && summary.status == "completed"; ++epoch) {
    const double lr = scheduled_lr(t, epoch);
    for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
    train_set.start_epoch(c.seed, epoch);
    model->train();
    double loss_sum = 0;
    int64_t epoch_steps = 0;
    for (int64_t b = 0; b < steps_per_epoch; ++b) {
      const auto batch = train_set.batch(b, t.batch_size);
      at::Tensor loss;
      {
        AutocastGuard guard(autocast);
        const auto logits = model->forward(batch.inputs);
        loss = at::cross_entropy_loss(logits.reshape({-1, V}).to(at::kFloat), batch.targets.reshape(-1), {},
                                      at::Reduction::Mean, tasks::kIgnoreIndex);
      }
      const double value = loss.item<double>();
      ++summary.steps;
      summary.step_losses.push_back(value);
      if (!std::isfinite(value)) {
        summary.status = "diverged";
        summary.diverged_step = summary.steps;
        if (opt.progress) fmt::print("diverged: loss {} at step {}\n", value, summary.steps);
        break;
      }
      optimizer.zero_grad();
      loss.backward();
      if (t.grad_clip > 0) torch::nn::utils::clip_grad_norm_(model->parameters(), t.grad_clip);
      optimizer.step();
      loss_sum += value;
      ++epoch_steps;
      tokens += batch.inputs.numel();
      if (opt.progress && since(last_print) > 10.0) {
        last_print = Clock::now();
        const double rate = static_cast<double>(summary.steps) / since(start);
        fmt::print("  epoch {}/{} step {}/{} loss {:.4f} | {:.1f} steps/s | ETA {}\n", epoch + 1, t.epochs, b + 1,
                   steps_per_epoch, value, rate, duration(static_cast<double>(total_steps - summary.steps) / rate));
        std::fflush(stdout);
      }
      if (opt.max_steps > 0 && summary.steps >= opt.max_steps) break;
    }
    if (summary.status == "diverged") break;

    // Evaluation on the test set, in order, with the task's metric.
    model->eval();
    tasks::Evaluator evaluator;
    double test_loss = 0;
    {
      c10::NoGradGuard no_grad;
      AutocastGuard guard(autocast);
      test_set.start_epoch(0, 0, /*shuffle=*/false);
      for (int64_t b = 0; b < test_set.num_batches(eval_batch); ++b) {
        const auto batch = test_set.batch(b, eval_batch);
        const auto logits = model->forward(batch.inputs).to(at::kFloat);
        test_loss += at::cross_entropy_loss(logits.reshape({-1, V}), batch.targets.reshape(-1), {},
                                            at::Reduction::Sum, tasks::kIgnoreIndex)
                         .item<double>();
        evaluator.add_batch(logits.argmax(-1), batch.targets);
      }
    }
    EpochMetrics m;
    m.epoch = epoch + 1;
    m.steps = summary.steps;
    m.lr = lr;
    m.train_loss = epoch_steps ? loss_sum / static_cast<double>(epoch_steps) : NAN;
    m.test_loss = test_loss / static_cast<double>(std::max<int64_t>(1, evaluator.scored_tokens()));
    m.mqar_accuracy = evaluator.mqar_accuracy();
    m.micro_accuracy = evaluator.micro_accuracy();
    m.mad_accuracy = evaluator.mad_accuracy();
    m.accuracy = data.test.metric == tasks::Metric::kMqarAccuracy ? m.mqar_accuracy : m.mad_accuracy;
    synchronize(device);
    m.wall_s = since(start);
    summary.history.push_back(m);
    summary.epochs = m.epoch;
    summary.final_accuracy = m.accuracy;
    if (m.accuracy > summary.best_accuracy || summary.best_epoch == 0) {
      summary.best_accuracy = m.accuracy;
      summary.best_epoch = m.epoch;
    }
    if (metrics.is_open()) metrics << to_json(m) << "\n" << std::flush;
    if (opt.progress) {
      const double rate = static_cast<double>(summary.steps) / m.wall_s;
      fmt::print("epoch {}/{} | loss {:.4f} | test loss {:.4f} | accuracy {:.4f} (best {:.4f}) | lr {:.2e} | {:.1f} steps/s | ETA {}\n",
                 m.epoch, t.epochs, m.train_loss, m.test_loss, m.accuracy, summary.best_accuracy, lr, rate,
                 duration(static_cast<double>(total_steps - summary.steps) / rate));
      std::fflush(stdout);
      last_print = Clock::now();
    }
    if (t.early_stop > 0 && m.accuracy >= t.early_stop) summary.status = "early_stopped";
    if (opt.max_steps > 0 && summary.steps >= opt.max_steps) break;
  }

  synchronize(device);
  summary.wall_s = since(start);
  summary.tokens_per_s = static_cast<double>(tokens) / summary.wall_s;
  if (!t.checkpoint.empty()) {
    std::filesystem::create_directories(t.checkpoint);
    torch::save(model, t.checkpoint + "/model.pt");
    torch::save(optimizer, t.checkpoint + "/optimizer.pt");
  }
  if (metrics.is_open()) metrics << to_json(summary, c) << "\n";
  return summary;
}

}  // namespace deltabench::train
