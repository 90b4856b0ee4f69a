#include "apps/deltabench/train_command.h"

#include "apps/deltabench/cli_checks.h"

#include "sweep/runner.h"
#include "train/trainer.h"

#include <fmt/core.h>

#include <memory>
#include <string>

namespace deltabench::app {
namespace {

struct TrainArgs {
  std::string config;
  std::string device, backend, recompute;
  int64_t epochs = 0;
  int64_t max_steps = -1;
  std::string metrics;
  bool eager = false;
};

std::string with_commas(int64_t n) {
  std::string s = std::to_string(n), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return out;
}

}  // namespace

void add_train_command(CLI::App& app, int& status) {
  auto args = std::make_shared<TrainArgs>();
  auto* cmd = app.add_subcommand("train", "train one configured experiment (a .toml file in configs/)");
  cmd->add_option("config", args->config, "experiment config file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--device", args->device, "auto, cpu, cuda or cuda:N (overrides [train] device; default auto: cuda where a GPU is visible)");
  cmd->add_option("--backend", args->backend,
                  "auto, reference or kernel: what runs the linear family's sequence ops (overrides [train] backend; "
                  "default auto)")
      ->check(CLI::IsMember({"auto", "reference", "kernel"}));
  cmd->add_option("--recompute", args->recompute,
                  "none, state or all: what the sm_90a training kernels' backward computes again rather than keep from "
                  "the forward, less memory for more time, the same results (overrides [train] recompute; default none)")
      ->check(CLI::IsMember({"none", "state", "all"}));
  cmd->add_option("--epochs", args->epochs, "overrides [train] epochs")->check(integer_at_least(1));
  cmd->add_option("--max-steps", args->max_steps, "stop after this many optimizer steps")->check(integer_at_least(1));
  cmd->add_option("--metrics", args->metrics, "JSON lines file (default runs/<name>.jsonl)");
  cmd->add_flag("--eager", args->eager, "train every step eagerly on CUDA (no captured CUDA graph)");
  cmd->callback([args, &status] {
    train::TrainOptions options;
    const auto config = train::load_experiment(args->config, &options.placement);
    if (!args->device.empty()) {
      options.placement.device = args->device;
      options.placement.device_origin = "--device";
    }
    train::check_device_spelling(options.placement.device, options.placement.device_origin);
    if (!args->backend.empty()) {
      options.placement.backend = args->backend;
      options.placement.backend_origin = "--backend";
    }
    if (!args->recompute.empty()) {
      options.placement.recompute = args->recompute;
      options.placement.recompute_origin = "--recompute";
    }
    if (args->epochs > 0) options.epochs = args->epochs;
    options.max_steps = args->max_steps;
    options.cuda_graph = !args->eager;
    options.metrics_path = args->metrics.empty() ? "runs/" + config.name + ".jsonl" : args->metrics;
    options.config_hash = config.hash;
    options.commit = sweep::git_commit();
    const auto s = train::run_experiment(config, options);
    std::string how = s.status;
    if (s.status == "early_stopped") how = fmt::format("early stop at {} (epoch {})", config.train.early_stop, s.epochs);
    if (s.status == "diverged") how = fmt::format("diverged at step {}", s.diverged_step);
    fmt::print("\nsummary: {} | best accuracy {:.4f} (epoch {}) | final {:.4f} | {} steps in {:.1f} s | {:.0f} tokens/s | "
               "{} parameters | {}\n",
               how, s.best_accuracy, s.best_epoch, s.final_accuracy, s.steps, s.wall_s, s.tokens_per_s,
               with_commas(s.parameters), s.device);
    fmt::print("backend: {}\n", s.backend());
    fmt::print("pieces: {}\n", s.backend_pieces);
    fmt::print("step: {}\n", s.train_step);
    fmt::print("metrics: {}\n", options.metrics_path);
    status = 0;
  });
}

}  // namespace deltabench::app
