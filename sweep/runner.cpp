#include "sweep/runner.h"

#include <ATen/Context.h>
#ifdef DELTABENCH_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif
#include <c10/util/Exception.h>
#include <fmt/core.h>
#include <sqlite3.h>
#include <torch/version.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>

namespace deltabench::sweep {
namespace {

std::string command_output(const std::string& command) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  if (!pipe) return "";
  std::string out;
  char buffer[256];
  while (fgets(buffer, sizeof buffer, pipe.get())) out += buffer;
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

std::string duration(double seconds) {
  const auto s = static_cast<int64_t>(seconds + 0.5);
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02d}s", s / 60, s % 60);
  return fmt::format("{}h{:02d}m", s / 3600, (s % 3600) / 60);
}

// "cpu", or "cuda (NVIDIA H100 80GB HBM3)": the trainer's device with the GPU's model name.
std::string device_name(const std::string& device) {
#ifdef DELTABENCH_HAVE_CUDA
  if (device.rfind("cuda", 0) == 0 && at::hasCUDA()) {
    const at::Device d(device);
    return device + " (" + at::cuda::getDeviceProperties(d.has_index() ? d.index() : 0)->name + ")";
  }
#endif
  return device;
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
#ifdef DELTABENCH_SOURCE_DIR
  const std::string dir = DELTABENCH_SOURCE_DIR;
#else
  const std::string dir = ".";
#endif
  const std::string commit = command_output("git -C '" + dir + "' rev-parse --short=12 HEAD 2>/dev/null");
  if (commit.empty()) return "unknown";
  // Outputs under results/ (reports this very run rewrites) do not make the code dirty.
  const bool dirty =
      !command_output("git -C '" + dir + "' status --porcelain --untracked-files=no -- . ':!results' 2>/dev/null").empty();
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

RunnerResult run_suite(const Suite& suite, Store& store, const RunnerOptions& options) {
  if (options.shards < 1 || options.shard < 0 || options.shard >= options.shards) {
    throw train::ConfigError(fmt::format("--shard: expected i/n with 0 <= i < n, got {}/{}", options.shard, options.shards));
  }
  const auto runs = expand(suite, options.device);
  const auto stored = store.runs(suite.name);
  RunnerResult result;
  result.total = runs.size();
  std::vector<const Run*> todo;
  for (const auto& run : runs) {
    if (static_cast<int64_t>(run.index % static_cast<size_t>(options.shards)) != options.shard) continue;
    ++result.in_shard;
    const auto it = stored.find(run.hash);
    if (it != stored.end() && is_final_status(it->second.status, options.retry_failed)) {
      ++result.done_before;
    } else {
      todo.push_back(&run);
    }
  }
  const std::string& p = options.prefix;
  if (options.progress) {
    fmt::print("{}suite {}: {} runs in the grid", p, suite.name, result.total);
    if (options.shards > 1) fmt::print(", {} in shard {}/{}", result.in_shard, options.shard, options.shards);
    fmt::print("; {} already in {}, {} to run\n", result.done_before, store.path(), todo.size());
    std::fflush(stdout);
  }
  if (options.dry_run) {
    for (const auto* run : todo) fmt::print("{}  would run {} ({})\n", p, run->id, run->hash);
    return result;
  }

  const std::string commit = git_commit(), versions = library_versions();
  const auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < todo.size(); ++i) {
    const Run& run = *todo[i];
    RunRecord record = to_record(suite, run);
    train::TrainOptions train_options;
    train_options.progress = false;
    try {
      const auto s = train::run_experiment(run.config, train_options);
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
      record.device = s.device;
      record.history = s.history;
    } catch (const c10::Error& e) {
      record.status = "failed";
      record.error = e.what_without_backtrace();
    } catch (const std::exception& e) {
      record.status = "failed";
      record.error = e.what();
    }
    record.device = device_name(record.device.empty() ? run.config.train.device : record.device);
    record.git_commit = commit;
    record.versions = versions;
    record.finished_at = utc_now();
    store.record(record);
    ++result.ran;
    if (record.status == "failed") ++result.failed;
    if (record.status == "diverged") ++result.diverged;

    if (options.progress) {
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const double eta = elapsed / static_cast<double>(i + 1) * static_cast<double>(todo.size() - i - 1);
      std::string outcome;
      if (record.status == "failed") {
        outcome = "FAILED: " + record.error;
      } else if (record.status == "diverged") {
        outcome = fmt::format("diverged at step {}", record.diverged_step);
      } else {
        outcome = fmt::format("accuracy {:.3f} ({} epochs, {:.1f} s)", record.final_accuracy, record.epochs, record.wall_s);
      }
      fmt::print("{}[{:>{}}/{}] {}: {} | elapsed {}, ETA {}\n", p, result.done_before + i + 1,
                 std::to_string(result.in_shard).size(), result.in_shard, run.id, outcome, duration(elapsed),
                 duration(eta));
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

}  // namespace deltabench::sweep
