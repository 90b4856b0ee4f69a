// deltabench: synthetic tasks, models, kernels and benchmarks for the delta-rule family.

#include "apps/deltabench/cli_checks.h"
#include "apps/deltabench/smoke.h"
#include "apps/deltabench/runs_command.h"
#include "apps/deltabench/suite_commands.h"
#include "apps/deltabench/tasks_command.h"
#include "apps/deltabench/train_command.h"
#include "train/config.h"
#include "tasks/params.h"
#include "report/report.h"
#include "sweep/store.h"

#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>
#include <torch/version.h>
#include <fmt/core.h>

#include <exception>

namespace {

void print_info() {
  fmt::print("deltabench {}\n", DELTABENCH_VERSION);
  fmt::print("torch      {}\n", TORCH_VERSION);
#ifdef DELTABENCH_HAVE_CUDA
  fmt::print("cuda build yes (kernels for sm_90a, sm_80)\n");
#else
  fmt::print("cuda build no (reference ops only)\n");
#endif
  fmt::print("cuda devs  {}\n", at::hasCUDA() ? at::getNumGPUs() : 0);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"deltabench: benchmarks and synthetic tasks for the delta-rule family"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("deltabench ") + DELTABENCH_VERSION + " (torch " + TORCH_VERSION + ")");

  app.add_subcommand("info", "print versions and the devices this build can use")->callback(print_info);

  deltabench::app::SmokeOptions smoke;
  auto* smoke_cmd = app.add_subcommand("smoke", "time every reference op once and check it against fp64");
  smoke_cmd->add_option("--device", smoke.device, "cpu or cuda")->capture_default_str();
  smoke_cmd->add_option("--batch", smoke.batch)->capture_default_str()->check(deltabench::app::integer_at_least(1));
  smoke_cmd->add_option("--seq-len", smoke.seq_len)->capture_default_str()->check(deltabench::app::integer_at_least(1));
  smoke_cmd->add_option("--heads", smoke.heads)->capture_default_str()->check(deltabench::app::integer_at_least(1));
  smoke_cmd->add_option("--head-dim", smoke.head_dim)->capture_default_str()->check(deltabench::app::integer_at_least(1));
  smoke_cmd->add_option("--chunk-size", smoke.chunk_size)->capture_default_str()->check(CLI::IsMember({16, 32, 64}));
  smoke_cmd->add_option("--repeats", smoke.repeats)->capture_default_str()->check(deltabench::app::integer_at_least(1));
  smoke_cmd->add_option("--seed", smoke.seed)->capture_default_str()->check(deltabench::app::integer_at_least(0));

  int status = 0;
  deltabench::app::add_tasks_command(app, status);
  deltabench::app::add_train_command(app, status);
  deltabench::app::add_suite_commands(app, status);
  deltabench::app::add_runs_command(app, status);
  smoke_cmd->callback([&] { status = deltabench::app::run_smoke(smoke) ? 0 : 1; });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const deltabench::sweep::StoreError& e) {
    fmt::print(stderr, "deltabench: {}\n", e.what());
    return 2;
  } catch (const deltabench::train::ConfigError& e) {
    fmt::print(stderr, "deltabench: {}\n", e.what());
    return 2;
  } catch (const deltabench::tasks::TaskError& e) {
    fmt::print(stderr, "deltabench: {}\n", e.what());
    return 2;
  } catch (const c10::Error& e) {
    fmt::print(stderr, "deltabench: {}\n", e.what_without_backtrace());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "deltabench: {}\n", e.what());
    return 2;
  }
  return status;
}
