#include "apps/deltabench/suite_commands.h"

#include "report/kernels.h"
#include "report/report.h"
#include "sweep/runner.h"

#include <ATen/Parallel.h>
#include <fmt/core.h>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

extern char** environ;

namespace deltabench::app {
namespace {

const char* kDefaultStore = "runs/deltabench.sqlite";

struct RunArgs {
  std::string suite, store = kDefaultStore, device, shard, out;
  int64_t jobs = 1, threads = 0, abort_after = -1;
  bool retry_failed = false, dry_run = false, no_report = false;
};

struct ReportArgs {
  std::string suite, store = kDefaultStore, out, curves;
};

std::pair<int64_t, int64_t> parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  try {
    if (slash != std::string::npos) {
      size_t a = 0, b = 0;
      const int64_t i = std::stoll(text.substr(0, slash), &a), n = std::stoll(text.substr(slash + 1), &b);
      if (a == slash && b == text.size() - slash - 1 && n >= 1 && i >= 0 && i < n) return {i, n};
    }
  } catch (const std::exception&) {
  }
  throw train::ConfigError("--shard: expected i/n with 0 <= i < n (for example 0/2), got '" + text + "'");
}

void print_written(const report::Written& w) {
  for (const auto& f : w.files) fmt::print("  wrote {}\n", f);
  for (const auto& warning : w.warnings) fmt::print(stderr, "deltabench report: warning: {}\n", warning);
}

int write_suite_report(const sweep::Suite& suite, const std::string& store_path, const std::string& out_dir) {
  sweep::Store store(store_path);
  const auto dir = out_dir.empty() ? "results/" + suite.name : out_dir;
  fmt::print("report of suite {} from {} into {}/\n", suite.name, store_path, dir);
  const auto w = report::write_report(suite, store.runs(suite.name), dir);
  print_written(w);
  return 0;
}

// Runs the grid in `jobs` processes, shard i of n each, and waits for them.
int run_in_processes(const RunArgs& a, const std::string& suite_file) {
  std::vector<pid_t> children;
  for (int64_t i = 0; i < a.jobs; ++i) {
    std::vector<std::string> args = {"deltabench", "run", suite_file, "--store", a.store, "--shard",
                                     fmt::format("{}/{}", i, a.jobs), "--threads", std::to_string(a.threads > 0 ? a.threads : 1),
                                     "--no-report"};
    if (!a.device.empty()) args.insert(args.end(), {"--device", a.device});
    if (a.retry_failed) args.push_back("--retry-failed");
    if (a.abort_after >= 0) args.insert(args.end(), {"--abort-after", std::to_string(a.abort_after)});
    std::vector<char*> argv;
    for (auto& s : args) argv.push_back(s.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), environ) != 0) {
      throw std::runtime_error("--jobs: cannot start a worker process");
    }
    children.push_back(pid);
  }
  int failures = 0;
  for (const pid_t pid : children) {
    int wstatus = 0;
    waitpid(pid, &wstatus, 0);
    if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
      ++failures;
      if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 75) return 75;  // --abort-after, passed on
    }
  }
  if (failures) fmt::print(stderr, "deltabench run: {} of {} worker processes failed\n", failures, a.jobs);
  return failures ? 1 : 0;
}

}  // namespace

void add_suite_commands(CLI::App& app, int& status) {
  auto ra = std::make_shared<RunArgs>();
  auto* run = app.add_subcommand("run", "run a suite's grid into the results store (resumable), then write its report");
  run->add_option("suite", ra->suite, "a suite name (configs/suites/<name>.toml) or a suite file")->required();
  run->add_option("--store", ra->store, "the SQLite results store")->capture_default_str();
  run->add_option("--device", ra->device, "cpu or cuda, for every run (not part of a run's identity)");
  run->add_option("--shard", ra->shard, "i/n: run only the runs whose grid index is i mod n (one process per GPU)");
  run->add_option("--jobs", ra->jobs, "split the grid over this many worker processes on this machine")
      ->capture_default_str()->check(CLI::Range(1, 256));
  run->add_option("--threads", ra->threads, "CPU threads per process (default: LibTorch's; 1 per worker with --jobs)")
      ->check(CLI::Range(1, 1024));
  run->add_option("--out", ra->out, "the report's directory (default results/<suite>)");
  run->add_flag("--retry-failed", ra->retry_failed, "run again runs recorded as failed");
  run->add_flag("--dry-run", ra->dry_run, "list the runs still to do and train nothing");
  run->add_flag("--no-report", ra->no_report, "do not write the report at the end");
  run->add_option("--abort-after", ra->abort_after, "tests: exit (status 75) after recording this many runs")->group("");
  run->callback([ra, &status] {
    const auto file = sweep::find_suite_file(ra->suite);
    const auto suite = sweep::load_suite(file);
    if (ra->jobs > 1 && !ra->shard.empty()) throw train::ConfigError("--jobs and --shard: give one, not both");
    if (ra->threads > 0) at::set_num_threads(static_cast<int>(ra->threads));
    if (ra->jobs > 1 && !ra->dry_run) {
      sweep::Store store(ra->store);  // create the schema once, before the workers race for it
      status = run_in_processes(*ra, file);
      if (status == 0 && !ra->no_report) status = write_suite_report(suite, ra->store, ra->out);
      return;
    }
    sweep::RunnerOptions o;
    o.device = ra->device;
    if (!ra->shard.empty()) std::tie(o.shard, o.shards) = parse_shard(ra->shard);
    if (o.shards > 1) o.prefix = fmt::format("[shard {}/{}] ", o.shard, o.shards);
    o.retry_failed = ra->retry_failed;
    o.dry_run = ra->dry_run;
    o.abort_after = ra->abort_after;
    sweep::Store store(ra->store);
    const auto r = sweep::run_suite(suite, store, o);
    if (!ra->dry_run) {
      fmt::print("{}done: {} runs trained ({} diverged, {} failed), {} were already in the store\n", o.prefix, r.ran,
                 r.diverged, r.failed, r.done_before);
    }
    status = 0;
    if (!ra->no_report && !ra->dry_run && o.shards == 1) status = write_suite_report(suite, ra->store, ra->out);
  });

  auto rp = std::make_shared<ReportArgs>();
  auto* rep = app.add_subcommand("report", "write a suite's tables (Markdown, LaTeX, CSV) and plots from the store");
  rep->add_option("suite", rp->suite, "a suite name (configs/suites/<name>.toml) or a suite file")->required();
  rep->add_option("--store", rp->store, "the SQLite results store")->capture_default_str();
  rep->add_option("--out", rp->out, "output directory (default results/<suite>)");
  rep->add_option("--curves", rp->curves, "also plot loss and accuracy per epoch of this run (its id or a hash prefix)");
  rep->callback([rp, &status] {
    const auto suite = sweep::load_suite(sweep::find_suite_file(rp->suite));
    status = write_suite_report(suite, rp->store, rp->out);
    if (!rp->curves.empty()) {
      sweep::Store store(rp->store);
      const auto dir = rp->out.empty() ? "results/" + suite.name : rp->out;
      print_written(report::write_curves(suite, store.runs(suite.name, true), rp->curves, dir));
    }
  });

  auto kr = std::make_shared<std::pair<std::string, std::string>>("", "results/kernels");  // csv, out
  auto* kernels = app.add_subcommand(
      "kernel-report", "tables and throughput curves of the CUDA kernels beside FLA and SDPA, from fla_compare.py's CSV");
  kernels->add_option("csv", kr->first, "the CSV of median times that bench/fla_compare.py writes")->required();
  kernels->add_option("--out", kr->second, "output directory")->capture_default_str();
  kernels->callback([kr, &status] {
    fmt::print("kernel report from {} into {}/\n", kr->first, kr->second);
    print_written(report::write_kernel_report(report::read_kernel_timings(kr->first), kr->second));
    status = 0;
  });
}

}  // namespace deltabench::app
