#include "apps/deltabench/tasks_command.h"

#include "apps/deltabench/cli_checks.h"

#include "tasks/mad_settings.h"
#include "tasks/npy.h"
#include "tasks/registry.h"

#include <ATen/ATen.h>
#include <fmt/core.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace deltabench::app {
namespace {

using tasks::TaskError;

struct TaskSelection {
  std::string task;     // positional
  std::map<std::string, std::string> flags;  // every task parameter, as typed; given() picks those used
  std::string setting;  // --setting: a MAD benchmark setting
  std::string split = "train";
  int64_t seed = -1;    // -1: the task's default (MQAR 0, MAD 12345 as mad-lab)
  int64_t count = 3;
  std::string out;
  std::vector<std::pair<std::string, CLI::Option*>> options;  // snake_case name, its flag

  std::map<std::string, std::string> given() const {
    std::map<std::string, std::string> out;
    for (const auto& [name, option] : options) {
      if (option->count() > 0) out[name] = flags.at(name);
    }
    return out;
  }
};

std::string kebab(std::string s) {
  std::replace(s.begin(), s.end(), '_', '-');
  return s;
}

// Resolves task name, parameters, split and seed; generates the data.
struct Generated {
  std::string task;
  std::map<std::string, std::string> params;
  tasks::Split split;
  uint64_t seed;
  tasks::TaskData data;
};

Generated generate(const TaskSelection& sel) {
  Generated g;
  g.task = sel.task;
  if (!sel.setting.empty()) {
    const auto& setting = tasks::find_mad_setting(sel.setting);
    const std::string task(tasks::mad_task_name(setting.task));
    if (!g.task.empty() && g.task != task) {
      throw TaskError("setting " + sel.setting + " belongs to task " + task + ", not " + g.task);
    }
    g.task = task;
    g.params = setting.params;
  }
  if (g.task.empty()) throw TaskError("name a task (deltabench tasks list shows them) or a --setting");
  const auto& info = tasks::find_task(g.task);
  for (const auto& [k, v] : sel.given()) g.params[k] = v;
  if (sel.split != "train" && sel.split != "test") throw TaskError("--split must be train or test, got '" + sel.split + "'");
  g.split = sel.split == "train" ? tasks::Split::kTrain : tasks::Split::kTest;
  g.seed = sel.seed >= 0 ? static_cast<uint64_t>(sel.seed) : (info.has_splits ? 12345 : 0);
  g.data = tasks::generate_task(g.task, g.params, g.split, g.seed);
  // Show every parameter, the defaults included.
  const tasks::Params all(info.name, info.params, g.params);
  g.params = all.values();
  return g;
}

void print_header(const Generated& g) {
  const auto& info = tasks::find_task(g.task);
  fmt::print("{}: {}\n", g.task, info.summary);
  std::string params;
  for (const auto& spec : info.params) params += fmt::format(" --{} {}", kebab(spec.name), g.params.at(spec.name));
  fmt::print("parameters:{} --seed {}", params, g.seed);
  if (info.has_splits) fmt::print(" --split {}", g.split == tasks::Split::kTrain ? "train" : "test");
  fmt::print("\ndata: inputs and targets [{}, {}] int64; scored with {}\n", g.data.inputs.size(0), g.data.inputs.size(1),
             g.data.metric == tasks::Metric::kMqarAccuracy ? "MQAR accuracy (per-example mean over query tokens)"
                                                           : "MAD accuracy (macro class recall per batch)");
}

void print_example(const Generated& g, int64_t i) {
  const auto in = g.data.inputs[i];
  const auto tg = g.data.targets[i];
  const int64_t L = in.size(0);
  const int64_t scored = (tg != tasks::kIgnoreIndex).sum().item<int64_t>();
  fmt::print("\nexample {} ({} tokens, {} scored)\n", i, L, scored);
  constexpr int64_t kPerRow = 16;
  for (int64_t row = 0; row < L; row += kPerRow) {
    std::string line;
    for (int64_t t = row; t < std::min(L, row + kPerRow); ++t) line += fmt::format(" {:>5}", in[t].item<int64_t>());
    fmt::print("  {:>5} |{}\n", row, line);
  }
  if (scored == 0) return;
  if (scored > 40) {
    // MAD's training split scores the next token everywhere; a test split (and MQAR's sets) has its own
    // targets, only too many to list here.
    const bool next_token = g.split == tasks::Split::kTrain && tasks::find_task(g.task).has_splits;
    if (next_token) {
      fmt::print("  targets: {} positions scored (next-token targets); --split test shows the test targets\n", scored);
    } else {
      fmt::print("  targets: {} positions scored (more than 40: not listed)\n", scored);
    }
    return;
  }
  std::string marks;
  int64_t shown = 0;
  for (int64_t t = 0; t < L; ++t) {
    const int64_t target = tg[t].item<int64_t>();
    if (target == tasks::kIgnoreIndex) continue;
    marks += fmt::format("{}pos {}: {} -> {}", (shown++ % 4 == 0) ? "\n    " : "   ", t, in[t].item<int64_t>(), target);
  }
  fmt::print("  targets (position: input -> target to predict):{}\n", marks);
}

void list_tasks() {
  for (const auto& info : tasks::task_infos()) {
    fmt::print("{}: {}\n", info.name, info.summary);
    for (const auto& spec : info.params) {
      fmt::print("    --{:<22} {:<8} {}\n", kebab(spec.name), spec.default_value, spec.help);
    }
  }
  fmt::print("\nMAD benchmark settings ({}; use --setting NAME):\n", tasks::mad_settings().size());
  std::string task;
  for (const auto& s : tasks::mad_settings()) {
    const std::string t(tasks::mad_task_name(s.task));
    if (t != task) fmt::print("  {}\n", task = t);
    fmt::print("    {}\n", s.name);
  }
}

void add_selection_options(CLI::App* cmd, TaskSelection& sel) {
  cmd->add_option("task", sel.task, "task name (deltabench tasks list)");
  cmd->add_option("--setting", sel.setting, "a MAD benchmark setting, e.g. in-context-recall:vocab_size=32");
  cmd->add_option("--split", sel.split, "train or test (MAD tasks: their target formats differ)")->capture_default_str();
  cmd->add_option("--seed", sel.seed, "the generator's seed (MQAR: Zoology's multiquery_ar seed; default 0, MAD 12345)")
      ->check(integer_at_least(0));
  // Every task's parameters, as flags named after them; a flag the chosen task does not take is an
  // error that lists the ones it does.
  for (const auto& info : tasks::task_infos()) {
    for (const auto& spec : info.params) {
      if (sel.flags.contains(spec.name)) continue;
      sel.flags[spec.name] = "";
      auto* option = cmd->add_option("--" + kebab(spec.name), sel.flags[spec.name], spec.help);
      option->group("Task parameters (defaults: deltabench tasks list)");
      sel.options.emplace_back(spec.name, option);
    }
  }
}

}  // namespace

void add_tasks_command(CLI::App& app, int& status) {
  auto* tasks_cmd = app.add_subcommand("tasks", "look at the synthetic tasks and export their data");
  tasks_cmd->require_subcommand(1);

  tasks_cmd->add_subcommand("list", "list the tasks, their parameters and the MAD settings")->callback(list_tasks);

  auto show_sel = std::make_shared<TaskSelection>();
  auto* show = tasks_cmd->add_subcommand("show", "print a few examples as a person reads them");
  add_selection_options(show, *show_sel);
  show->add_option("--count", show_sel->count, "examples to print")->capture_default_str()->check(integer_at_least(1));
  show->callback([show, show_sel, &status] {
    const auto g = generate(*show_sel);
    print_header(g);
    for (int64_t i = 0; i < std::min(show_sel->count, g.data.inputs.size(0)); ++i) print_example(g, i);
    status = 0;
  });

  auto export_sel = std::make_shared<TaskSelection>();
  auto* exp = tasks_cmd->add_subcommand("export", "write PREFIX.inputs.npy and PREFIX.targets.npy for numpy");
  add_selection_options(exp, *export_sel);
  exp->add_option("--out", export_sel->out, "output prefix")->required();
  exp->callback([exp, export_sel, &status] {
    const auto g = generate(*export_sel);
    const std::filesystem::path prefix(export_sel->out);
    if (prefix.has_parent_path()) std::filesystem::create_directories(prefix.parent_path());
    const std::string inputs = export_sel->out + ".inputs.npy", targets = export_sel->out + ".targets.npy";
    tasks::write_npy(inputs, g.data.inputs);
    tasks::write_npy(targets, g.data.targets);
    print_header(g);
    fmt::print("wrote {}\n      {}\n", inputs, targets);
    status = 0;
  });
}

}  // namespace deltabench::app
