#include "apps/deltabench/runs_command.h"

#include "report/format.h"
#include "sweep/record_json.h"
#include "sweep/store.h"

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

namespace deltabench::app {
namespace {

struct RunsArgs {
  std::string store = "runs/deltabench.sqlite";
  std::string suite, status, model, task;  // filters; empty: all
  std::string run;                         // show: an id or a hash prefix
  std::string format = "csv", out;         // export
  bool epochs = false;                     // export: per-epoch rows instead of per-run rows
};

using sweep::RunRecord;
using sweep::epoch_json;
using sweep::run_json;

std::vector<RunRecord> select_runs(const RunsArgs& a, bool with_history) {
  sweep::Store store(a.store, sweep::Store::Open::kExisting);
  std::vector<std::string> suites = a.suite.empty() ? store.suites() : std::vector<std::string>{a.suite};
  std::vector<RunRecord> out;
  for (const auto& suite : suites) {
    for (auto& [hash, r] : store.runs(suite, with_history)) {
      if (!a.status.empty() && r.status != a.status) continue;
      if (!a.model.empty() && r.model != a.model) continue;
      if (!a.task.empty() && r.task != a.task) continue;
      out.push_back(std::move(r));
    }
  }
  return out;
}

// A JSON value as a CSV field: strings unquoted (then CSV-quoted where needed), numbers at full precision.
std::string csv_value(const nlohmann::ordered_json& v) {
  if (v.is_string()) return report::csv_field(v.get<std::string>());
  if (v.is_null()) return "";
  return report::csv_field(v.dump());
}

std::string to_csv(const std::vector<nlohmann::ordered_json>& rows) {
  if (rows.empty()) return "";
  std::string out;
  for (auto it = rows.front().begin(); it != rows.front().end(); ++it) out += (it == rows.front().begin() ? "" : ",") + it.key();
  out += "\n";
  for (const auto& row : rows) {
    bool first = true;
    for (const auto& [key, value] : row.items()) {
      out += (first ? "" : ",") + csv_value(value);
      first = false;
    }
    out += "\n";
  }
  return out;
}

}  // namespace

void add_runs_command(CLI::App& app, int& status) {
  auto a = std::make_shared<RunsArgs>();
  auto* runs = app.add_subcommand("runs", "browse and export the results store: list, show, export");
  runs->require_subcommand(1);
  const auto filters = [a](CLI::App* cmd) {
    cmd->add_option("--store", a->store, "the SQLite results store (must exist)")->capture_default_str();
    cmd->add_option("--suite", a->suite, "only this suite's runs");
    cmd->add_option("--status", a->status, "only runs with this status")
        ->check(CLI::IsMember({"completed", "early_stopped", "diverged", "failed"}));
    cmd->add_option("--model", a->model, "only this model variant");
    cmd->add_option("--task", a->task, "only this task variant");
  };

  auto* list = runs->add_subcommand("list", "one line per run: suite, id, status, accuracy, device, backend");
  filters(list);
  list->callback([a, &status] {
    const auto rows = select_runs(*a, false);
    report::Table t;
    t.header = {"suite", "id", "hash", "status", "final acc", "epochs", "wall s", "device", "backend (train fwd/bwd, eval fwd)"};
    for (const auto& r : rows) {
      t.rows.push_back({r.suite, r.id, r.hash, r.status, fmt::format("{:.4f}", r.final_accuracy), std::to_string(r.epochs),
                        fmt::format("{:.1f}", r.wall_s), r.device,
                        r.backend_train_forward.empty() ? "not recorded"
                                                        : r.backend_train_forward + " / " + r.backend_train_backward + ", " +
                                                              r.backend_eval_forward});
    }
    fmt::print("{}", rows.empty() ? std::string("no runs match\n") : report::markdown(t));
    fmt::print("{} run(s) in {}\n", rows.size(), a->store);
    status = 0;
  });

  auto* show = runs->add_subcommand("show", "every field of one run, its config and its epochs, as JSON");
  filters(show);
  show->add_option("run", a->run, "the run's id or a prefix of its hash")->required();
  show->callback([a, &status] {
    const auto rows = select_runs(*a, true);
    const RunRecord* found = nullptr;
    for (const auto& r : rows) {
      if (r.id != a->run && r.hash.rfind(a->run, 0) != 0) continue;
      if (found) {
        throw sweep::StoreError(fmt::format("runs show {}: more than one run matches ({} of suite {}, {} of suite {}); "
                                            "give --suite or more of the hash",
                                            a->run, found->id, found->suite, r.id, r.suite));
      }
      found = &r;
    }
    if (!found) throw sweep::StoreError("runs show " + a->run + ": no run in " + a->store + " has that id or hash prefix");
    fmt::print("{}\n", sweep::run_json_with_history(*found).dump(2));
    status = 0;
  });

  auto* exp = runs->add_subcommand("export", "per-run (or per-epoch) rows as CSV or JSON, every stored field");
  filters(exp);
  exp->add_option("--format", a->format, "csv or json")->capture_default_str()->check(CLI::IsMember({"csv", "json"}));
  exp->add_flag("--epochs", a->epochs,
                "one row per epoch of each run instead of one per run (JSON without it: each run with its epochs, "
                "which `deltabench report --store <file>.json` reads)");
  exp->add_option("--out", a->out, "write to this file (default: standard output)");
  exp->callback([a, &status] {
    const bool json = a->format == "json";
    const auto rows = select_runs(*a, a->epochs || json);
    std::vector<nlohmann::ordered_json> items;
    for (const auto& r : rows) {
      if (!a->epochs) {
        items.push_back(json ? sweep::run_json_with_history(r) : run_json(r));
        continue;
      }
      for (const auto& e : r.history) items.push_back(epoch_json(r, e));
    }
    const std::string text = json ? nlohmann::ordered_json(items).dump(2) + "\n" : to_csv(items);
    if (a->out.empty()) {
      std::cout << text;
    } else {
      report::Written w;
      report::write_file(a->out, text, w);
      fmt::print(stderr, "wrote {} row(s) to {}\n", items.size(), a->out);
    }
    status = 0;
  });
}

}  // namespace deltabench::app
