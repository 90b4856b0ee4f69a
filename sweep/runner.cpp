#include "sweep/runner.h"

#include "sweep/process.h"
#include "tasks/params.h"
#include "tasks/registry.h"
#include "train/config.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <fmt/core.h>
#include <fmt/ranges.h>
#include <sqlite3.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <ctime>
#include <filesystem>
#include <memory>
#include <system_error>

namespace deltabench::sweep {
namespace {

// A child's standard output without its trailing newline; empty when it failed.
std::string output_of(const std::vector<std::string>& argv) {
  auto r = run_process(argv);
  if (!r.started || r.exit_code != 0) return "";
  while (!r.output.empty() && (r.output.back() == '\n' || r.output.back() == ' ')) r.output.pop_back();
  return r.output;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

RunRecord to_record(const Suite& suite, const Run& run) {
  RunRecord r;
  r.suite = suite.name;
  r.hash = run.hash;
  r.id = run.id;
  r.task = run.task;
  r.model = run.model;
  r.d_model = run.d_model;
  r.lr = run.lr;
  r.weight_decay = run.weight_decay;
  r.seed = run.seed;
  r.config = run.config_toml;
  return r;
}

}  // namespace

std::string git_commit() {
  // A copy of the tree without its own history (the GPU machine's) names its commit this way.
  if (const char* given = std::getenv("DELTABENCH_COMMIT"); given && *given) return given;
#ifdef DELTABENCH_SOURCE_DIR
  const std::string dir = DELTABENCH_SOURCE_DIR;
#else
  const std::string dir = ".";
#endif
  const std::string commit = output_of({"git", "-C", dir, "rev-parse", "--short=12", "HEAD"});
  if (commit.empty()) return "unknown";
  // Outputs under results/ (reports this very run rewrites) do not make the code dirty.
  const bool dirty =
      !output_of({"git", "-C", dir, "status", "--porcelain", "--untracked-files=no", "--", ".", ":!results"}).empty();
  return dirty ? commit + "-dirty" : commit;
}

std::string library_versions() {
#ifdef DELTABENCH_VERSION
  std::string out = std::string("deltabench ") + DELTABENCH_VERSION;
#else
  std::string out = "deltabench";
#endif
  out += std::string("; torch ") + TORCH_VERSION + "; sqlite " + sqlite3_libversion();
#ifdef DELTABENCH_CUDA_VERSION
  out += std::string("; cuda ") + DELTABENCH_CUDA_VERSION;
#else
  out += "; cuda none";
#endif
  return out;
}

namespace {

bool finished(const RunRecord& r) { return r.status == "completed" || r.status == "early_stopped"; }

// The prediction at width d from the longest finished run at each width (d_model -> seconds): d's own where there
// is one, else the nearest width's by ratio (of two as near, the wider: the slower guess), scaled up by the ratio
// where d is wider, never down.
double at_width(const std::map<int64_t, double>& longest, int64_t d) {
  if (const auto it = longest.find(d); it != longest.end()) return it->second;
  const auto distance = [&](int64_t w) { return std::abs(std::log(static_cast<double>(w) / static_cast<double>(d))); };
  auto nearest = longest.begin();
  for (auto it = longest.begin(); it != longest.end(); ++it) {
    if (distance(it->first) <= distance(nearest->first)) nearest = it;
  }
  return nearest->second * std::max(1.0, static_cast<double>(d) / static_cast<double>(nearest->first));
}

// The tokens an epoch trains on (train examples x seq_len), where the task has a seq_len.
std::optional<double> tokens_per_epoch(const train::TaskConfig& task) {
  const auto& info = tasks::find_task(task.name);
  const bool has_length =
      std::any_of(info.params.begin(), info.params.end(), [](const tasks::ParamSpec& s) { return s.name == "seq_len"; });
  if (!has_length) return std::nullopt;
  const tasks::Params p(task.name, info.params, task.params);
  return static_cast<double>(train::example_counts(task).first) * static_cast<double>(p.integer("seq_len"));
}

// The same for a stored run, from its record's configuration; none where that no longer parses (a record of an
// older protocol) or its task has no seq_len: such a record is no guide to another task.
std::optional<double> tokens_per_epoch(const RunRecord& r) {
  if (r.config.empty()) return std::nullopt;
  try {
    return tokens_per_epoch(train::parse_experiment(r.config, "the stored run " + r.id).task);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace

std::optional<Prediction> predict_run(const Run& run, const std::map<std::string, RunRecord>& stored) {
  // Per width (d_model) of the finished runs it rests on: the longest run, and the slowest seconds an epoch.
  struct Widths {
    std::map<int64_t, double> longest, per_epoch;
    void add(const RunRecord& r) {
      auto& wall = longest[r.d_model];
      wall = std::max(wall, r.wall_s);
      if (r.epochs > 0) {
        auto& rate = per_epoch[r.d_model];
        rate = std::max(rate, r.wall_s / static_cast<double>(r.epochs));
      }
    }
  };
  // The prediction from `w` scaled by `ratio`, with the time for every epoch of the run's budget where that is
  // more than a quarter longer (the runs it rests on stopped early).
  const auto predicted = [&](const Widths& w, double ratio, std::string basis) {
    Prediction p{at_width(w.longest, run.d_model) * ratio, std::move(basis), std::nullopt, 0};
    const int64_t budget = run.config.train.epochs;
    if (!w.per_epoch.empty() && budget > 0) {
      const double all = at_width(w.per_epoch, run.d_model) * ratio * static_cast<double>(budget);
      if (all > 1.25 * p.seconds) {
        p.all_epochs_seconds = all;
        p.budget_epochs = budget;
      }
    }
    return p;
  };
  Widths own;  // the run's task and model
  for (const auto& [hash, r] : stored) {
    if (r.task == run.task && r.model == run.model && finished(r)) own.add(r);
  }
  if (!own.longest.empty()) return predicted(own, 1.0, "its task and model's finished runs");
  // None of its task: the model's finished runs at the task nearest in tokens an epoch, scaled by the ratio of the
  // tokens (as many epochs, each as long per token).
  struct Task {
    std::optional<double> tokens;
    Widths widths;
  };
  std::map<std::string, Task> others;
  for (const auto& [hash, r] : stored) {
    if (r.model != run.model || r.task == run.task || !finished(r)) continue;
    auto [it, fresh] = others.try_emplace(r.task);
    if (fresh) it->second.tokens = tokens_per_epoch(r);
    it->second.widths.add(r);
  }
  if (others.empty()) return std::nullopt;
  const auto tokens = tokens_per_epoch(run.config.task);
  if (!tokens) return std::nullopt;
  const std::string* nearest_name = nullptr;
  const Task* nearest = nullptr;
  const auto distance = [&](double t) { return std::abs(std::log(t / *tokens)); };
  for (const auto& [name, task] : others) {
    if (!task.tokens) continue;
    // Of two as near, the longer task: the slower guess.
    if (!nearest || distance(*task.tokens) < distance(*nearest->tokens) ||
        (distance(*task.tokens) == distance(*nearest->tokens) && *task.tokens > *nearest->tokens)) {
      nearest = &task;
      nearest_name = &name;
    }
  }
  if (!nearest) return std::nullopt;
  const double ratio = *tokens / *nearest->tokens;
  return predicted(nearest->widths, ratio,
                   fmt::format("its model's finished runs at {}, times {:.3g} for the tokens an epoch", *nearest_name, ratio));
}

std::optional<double> predict_run_seconds(const Run& run, const std::map<std::string, RunRecord>& stored) {
  const auto p = predict_run(run, stored);
  return p ? std::optional<double>(p->seconds) : std::nullopt;
}

RunnerResult run_suite(const Suite& suite, Store& store, const RunnerOptions& options) {
  const auto begun = std::chrono::steady_clock::now();
  if (options.time_limit_s < 0) {
    throw train::ConfigError(fmt::format("--time-limit: expected seconds >= 0 (0: none), got {}", options.time_limit_s));
  }
  if (options.shards < 1 || options.shard < 0 || options.shard >= options.shards) {
    throw train::ConfigError(fmt::format("--shard: expected i/n with 0 <= i < n, got {}/{}", options.shard, options.shards));
  }
  const auto runs = expand(suite);
  check_selection(runs, options.only);
  auto stored = store.runs(suite.name);
  RunnerResult result;
  result.total = runs.size();
  const auto mine = [&](const Run& run) {
    return selected(run, options.only) && static_cast<int64_t>(run.index % static_cast<size_t>(options.shards)) == options.shard;
  };
  // This suite's runs that another suite of the store finished: copied, not trained again (RunnerOptions::reuse).
  std::map<std::string, size_t> reused_from;  // suite -> runs copied from it
  std::set<std::string> would_copy;           // a dry run's: the hashes it would copy
  if (options.reuse) {
    std::set<std::string> wanted;  // this process's runs not yet in this suite
    for (const auto& run : runs) {
      if (mine(run) && !stored.contains(run.hash)) wanted.insert(run.hash);
    }
    std::map<std::string, RunRecord> elsewhere;  // hash -> the first other suite's finished record of it
    for (const auto& other : store.suites()) {
      if (other == suite.name || wanted.empty()) continue;
      // Epochs are read only from a suite that has one of the wanted runs (a store's suites can hold 100,000s).
      const auto has = [&](const auto& records) {
        return std::any_of(records.begin(), records.end(), [&](const auto& kv) { return wanted.contains(kv.first); });
      };
      if (!has(store.runs(other))) continue;
      for (auto& [hash, record] : store.runs(other, /*with_history=*/true)) {
        if (!wanted.contains(hash) || record.status == "failed" || !is_final_status(record.status)) continue;
        elsewhere.emplace(hash, std::move(record));
        wanted.erase(hash);
      }
    }
    for (const auto& run : runs) {
      if (!mine(run) || stored.contains(run.hash)) continue;
      const auto it = elsewhere.find(run.hash);
      if (it == elsewhere.end()) continue;
      ++reused_from[it->second.suite];
      ++result.reused;
      if (options.dry_run) {
        would_copy.insert(run.hash);
        continue;
      }
      // Its results and epochs as trained there; its id and axis values as this suite names them.
      RunRecord copy = it->second;
      const RunRecord named = to_record(suite, run);
      copy.suite = named.suite, copy.id = named.id, copy.task = named.task, copy.model = named.model;
      copy.d_model = named.d_model, copy.lr = named.lr, copy.weight_decay = named.weight_decay, copy.seed = named.seed;
      copy.train_step += (copy.train_step.empty() ? "" : "; ") + std::string("copied from suite ") + it->second.suite;
      store.record(copy);
      stored[run.hash] = std::move(copy);
    }
  }
  std::vector<const Run*> todo;
  for (const auto& run : runs) {
    if (!selected(run, options.only)) continue;
    ++result.selected;
    if (!mine(run)) continue;
    ++result.in_shard;
    if (would_copy.contains(run.hash)) continue;
    const auto it = stored.find(run.hash);
    if (it != stored.end() && is_final_status(it->second.status, options.retry_failed)) {
      ++result.done_before;
      if (it->second.status == "failed") ++result.failed_before;
    } else {
      todo.push_back(&run);
    }
  }
  // Runs with a saved state first (train/resume.h): they are furthest along, and a window or job that
  // ends soon should finish them rather than start others. Otherwise the grid's order.
  size_t resumable = 0;
  if (!options.resume_dir.empty()) {
    const auto has_state = [&](const Run* run) {
      std::error_code ec;
      return std::filesystem::exists(std::filesystem::path(options.resume_dir) / run->hash / "state.pt", ec);
    };
    const auto first_fresh = std::stable_partition(todo.begin(), todo.end(), has_state);
    resumable = static_cast<size_t>(first_fresh - todo.begin());
  }
  const std::string& p = options.prefix;
  // Where it trains is settled before anything runs: a wrong device is one error, and no run is
  // recorded as failed because of it. A dry run trains nothing and needs no device.
  train::ResolvedDevice device;
  BackendChoice backend = BackendChoice::kAuto;
  const Recompute recompute = train::parse_recompute(options.placement.recompute, options.placement.recompute_origin);
  if (!options.dry_run) {
    device = train::resolve_device(options.placement.device, options.placement.device_origin);
    backend = train::resolve_backend(options.placement, device);
  }
  if (options.progress) {
    fmt::print("{}suite {}: {} runs in the grid", p, suite.name, result.total);
    if (!options.only.empty()) fmt::print(", {} selected by --only", result.selected);
    if (options.shards > 1) fmt::print(", {} in shard {}/{}", result.in_shard, options.shard, options.shards);
    fmt::print("; {} already in {}, {} to run", result.done_before, store.path(), todo.size());
    if (!options.dry_run) {
      fmt::print(", on {} (backend {}) with {} CPU threads", device.name, train::backend_text(backend, recompute),
                 at::get_num_threads());
    }
    fmt::print("\n");
    if (result.reused > 0) {
      std::vector<std::string> from;
      for (const auto& [other, n] : reused_from) from.push_back(fmt::format("{} ({})", other, n));
      fmt::print("{}{} run(s) {} from suite {}: the same experiments (task, model, protocol and seed), {}not trained "
                 "again (--no-reuse trains them)\n",
                 p, result.reused, options.dry_run ? "would be copied" : "copied", fmt::join(from, ", "),
                 options.dry_run ? "" : "counted among those already in the store, ");
    }
    if (resumable > 0) {
      fmt::print("{}{} run(s) go on from their saved state (in {}), first\n", p, resumable, options.resume_dir);
    }
    if (result.failed_before > 0) {
      fmt::print("{}{} failed run(s) recorded earlier are skipped; --retry-failed trains them again\n", p,
                 result.failed_before);
    }
    std::fflush(stdout);
  }
  // --time-limit: a fresh run predicted to outlast what is left is not started (RunnerOptions says why); given,
  // run i's prediction (the dry run has it for every run).
  const auto too_long = [&](size_t i, const std::optional<Prediction>& predicted) -> std::optional<std::string> {
    if (options.time_limit_s <= 0 || i < resumable) return std::nullopt;
    const double left = options.time_limit_s - std::chrono::duration<double>(std::chrono::steady_clock::now() - begun).count();
    if (!predicted || predicted->seconds <= left) return std::nullopt;
    return fmt::format("left for a later window: predicted {:.0f} s ({}), {:.0f} s left of --time-limit {:.0f}",
                       predicted->seconds, predicted->basis, std::max(0.0, left), options.time_limit_s);
  };
  if (options.dry_run) {
    for (size_t i = 0; i < todo.size(); ++i) {
      const auto predicted = predict_run(*todo[i], stored);
      const auto later = too_long(i, predicted);
      std::string why;
      if (later) {
        why = ": " + *later;
      } else if (predicted) {  // for planning a window
        why = fmt::format(": predicted {:.0f} s ({})", predicted->seconds, predicted->basis);
        if (predicted->all_epochs_seconds) {
          why += fmt::format("; {:.0f} s if it trains all {} epochs", *predicted->all_epochs_seconds, predicted->budget_epochs);
        }
      }
      fmt::print("{}  would {} {} ({}){}\n", p, later ? "not start" : "run", todo[i]->id, todo[i]->hash, why);
    }
    return result;
  }

  const std::string commit = git_commit(), versions = library_versions();
  const auto owner = this_process();
  const auto start = std::chrono::steady_clock::now();
  const auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  const int width = static_cast<int>(std::to_string(result.in_shard).size());
  size_t position = result.done_before;  // runs of this shard finished or passed over so far
  for (size_t i = 0; i < todo.size(); ++i) {
    const Run& run = *todo[i];
    const auto predicted = options.time_limit_s > 0 ? predict_run(run, stored) : std::nullopt;
    if (const auto later = too_long(i, predicted)) {
      ++position;
      ++result.left_for_later;
      if (options.progress) {
        fmt::print("{}[{:>{}}/{}] {}: {}\n", p, position, width, result.in_shard, run.id, *later);
        std::fflush(stdout);
      }
      continue;
    }
    const auto claim = store.claim(suite.name, run.hash, owner, options.retry_failed, options.stale_claim_s);
    if (claim != ClaimResult::kClaimed) {
      ++position;
      if (claim == ClaimResult::kTaken) ++result.claimed_elsewhere;
      if (options.progress) {
        fmt::print("{}[{:>{}}/{}] {}: {}\n", p, position, width, result.in_shard, run.id,
                   claim == ClaimResult::kTaken ? "being trained by another process, skipped" : "finished by another process");
        std::fflush(stdout);
      }
      continue;
    }
    ++position;
    // The ETA of the shard: the mean time of the runs trained so far times those left.
    const auto shard_eta = [&](double run_elapsed, double run_eta) {
      const double left_after = static_cast<double>(todo.size() - i - 1);
      const double per_run = result.ran > 0 ? (elapsed() - run_elapsed) / static_cast<double>(result.ran) : run_elapsed + run_eta;
      return run_eta + left_after * per_run;
    };
    if (options.progress) {
      fmt::print("{}[{:>{}}/{}] {}: training on {}\n", p, position, width, result.in_shard, run.id, device.name);
      std::fflush(stdout);
    }
    RunRecord record = to_record(suite, run);
    train::TrainOptions train_options;
    train_options.placement = options.placement;
    if (!options.placement.checkpoint.empty()) train_options.placement.checkpoint = options.placement.checkpoint + "/" + run.hash;
    if (!options.resume_dir.empty()) train_options.resume_dir = options.resume_dir + "/" + run.hash;
    train_options.resume_interval_s = options.resume_interval_s;
    train_options.resume_any_commit = options.resume_any_commit;
    train_options.progress = false;
    // The claim's heartbeat comes with the trainer's progress callback: at least five a stale period, so
    // that a live run is never taken over, whatever --progress-interval says about printed lines.
    train_options.progress_interval_s = std::min(options.progress_interval_s, options.stale_claim_s / 5);
    train_options.cuda_graph = options.cuda_graph;
    auto last_line = std::chrono::steady_clock::now();
    train_options.config_hash = run.hash;
    train_options.commit = commit;
    train_options.on_progress = [&](const train::Progress& pr) {
      store.heartbeat(suite.name, run.hash, owner);
      if (!options.progress) return;
      if (pr.epoch_end) {
        fmt::print("{}[{:>{}}/{}] {} on {}: epoch {}/{} accuracy {:.3f} | run ETA {} | shard ETA {}\n", p, position, width,
                   result.in_shard, run.id, device.name, pr.epoch, pr.epochs, pr.accuracy,
                   train::format_duration(pr.eta_s), train::format_duration(shard_eta(pr.elapsed_s, pr.eta_s)));
      } else {
        if (std::chrono::duration<double>(std::chrono::steady_clock::now() - last_line).count() < options.progress_interval_s) {
          return;  // a heartbeat only
        }
        fmt::print("{}[{:>{}}/{}] {} on {}: epoch {}/{} step {}/{} loss {:.4f} | run ETA {} | shard ETA {}\n", p, position,
                   width, result.in_shard, run.id, device.name, pr.epoch, pr.epochs, pr.step, pr.steps_per_epoch, pr.loss,
                   train::format_duration(pr.eta_s), train::format_duration(shard_eta(pr.elapsed_s, pr.eta_s)));
      }
      last_line = std::chrono::steady_clock::now();
      std::fflush(stdout);
    };
    int64_t resumed_after = 0;
    try {
      const auto s = train::run_experiment(run.config, train_options);
      resumed_after = s.resumed_after_epoch;
      record.status = s.status;
      record.best_accuracy = s.best_accuracy;
      record.final_accuracy = s.final_accuracy;
      record.best_epoch = s.best_epoch;
      record.epochs = s.epochs;
      record.steps = s.steps;
      record.diverged_step = s.diverged_step;
      record.parameters = s.parameters;
      record.wall_s = s.wall_s;
      record.tokens_per_s = s.tokens_per_s;
      record.threads = s.threads;
      record.backend_train_forward = s.backend_train_forward;
      record.backend_train_backward = s.backend_train_backward;
      record.backend_eval_forward = s.backend_eval_forward;
      record.backend_pieces = s.backend_pieces;
      record.train_step = s.train_step;
      record.history = s.history;
    } catch (const c10::Error& e) {
      record.status = "failed";
      record.error = e.what_without_backtrace();
    } catch (const std::exception& e) {
      record.status = "failed";
      record.error = e.what();
    }
    record.device = device.name;
    record.gpu_name = device.gpu_name;
    if (record.threads == 0) record.threads = at::get_num_threads();
    record.git_commit = commit;
    record.versions = versions;
    record.finished_at = utc_now();
    store.record(record);
    ++result.ran;
    if (record.status == "failed") ++result.failed;
    if (record.status == "diverged") ++result.diverged;

    if (options.progress) {
      const double eta = elapsed() / static_cast<double>(result.ran) * static_cast<double>(todo.size() - i - 1);
      std::string outcome;
      if (record.status == "failed") {
        outcome = "FAILED: " + record.error;
      } else if (record.status == "diverged") {
        outcome = fmt::format("diverged at step {}", record.diverged_step);
      } else {
        outcome = fmt::format("accuracy {:.3f} ({} epochs, {:.1f} s)", record.final_accuracy, record.epochs, record.wall_s);
      }
      if (resumed_after > 0) outcome += fmt::format(", resumed after epoch {}", resumed_after);
      fmt::print("{}[{:>{}}/{}] {}: {} | elapsed {}, ETA {}\n", p, position, width, result.in_shard, run.id, outcome,
                 train::format_duration(elapsed()), train::format_duration(eta));
      std::fflush(stdout);
    }
    if (options.abort_after >= 0 && static_cast<int64_t>(result.ran) >= options.abort_after) {
      fmt::print("{}--abort-after {}: stopping here, as a kill would\n", p, options.abort_after);
      std::fflush(stdout);
      std::_Exit(75);
    }
  }
  return result;
}

int64_t default_runs_per_gpu(size_t runs_to_do, double largest_run_bytes, double free_gpu_bytes) {
  int64_t n = std::min<int64_t>(kDefaultRunsPerGpu, static_cast<int64_t>(runs_to_do));
  if (largest_run_bytes > 0 && std::isfinite(free_gpu_bytes)) {
    const double fit = std::floor(0.8 * std::max(0.0, free_gpu_bytes) / largest_run_bytes);
    n = std::min<int64_t>(n, static_cast<int64_t>(std::min(fit, 1e6)));
  }
  return std::max<int64_t>(1, n);
}

}  // namespace deltabench::sweep
