#include "apps/deltabench/suite_commands.h"

#include "apps/deltabench/cli_checks.h"
#include "bench/kernel_cases.h"
#include "report/kernels.h"
#include "report/report.h"
#include "sweep/merge.h"
#include "sweep/record_json.h"
#include "sweep/runner.h"
#include "sweep/slurm.h"
#include "train/trainer.h"

#include <ATen/Parallel.h>
#include <fmt/core.h>
#include <fmt/ranges.h>

#include <csignal>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace deltabench::app {
namespace {

const char* kDefaultStore = "runs/deltabench.sqlite";

struct RunArgs {
  std::string suite, store = kDefaultStore, device, backend, recompute, gpus, shard, worker, out, checkpoint_dir, resume_dir;
  std::vector<std::string> only;         // --only, as given (the workers get them so)
  std::vector<sweep::RunSelection> selection;  // --only, parsed
  int64_t jobs = 1, per_gpu = 0, threads = 0, abort_after = -1;
  double progress_interval = 10, resume_interval = 30, time_limit = 0;
  bool retry_failed = false, dry_run = false, no_report = false, eager = false, shard_store = false, no_resume = false;
  bool resume_any_commit = false;
  bool no_reuse = false;
};

struct ReportArgs {
  std::string suite, store = kDefaultStore, out, curves;
  bool force = false;
};

// "i/n" with 0 <= i < n; `flag` names the option in the error.
std::pair<int64_t, int64_t> parse_fraction(const std::string& flag, const std::string& text) {
  const auto slash = text.find('/');
  try {
    if (slash != std::string::npos) {
      size_t a = 0, b = 0;
      const int64_t i = std::stoll(text.substr(0, slash), &a), n = std::stoll(text.substr(slash + 1), &b);
      if (a == slash && b == text.size() - slash - 1 && n >= 1 && i >= 0 && i < n) return {i, n};
    }
  } catch (const std::exception&) {
  }
  throw train::ConfigError(flag + ": expected i/n with 0 <= i < n (for example 0/2), got '" + text + "'");
}

// "0,1,3" -> {0, 1, 3}, each a visible GPU.
std::vector<int64_t> parse_gpus(const std::string& text, int64_t visible) {
  std::vector<int64_t> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    size_t used = 0;
    int64_t i = -1;
    try {
      i = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size() || i < 0) {
      throw train::ConfigError("--gpus: expected GPU indices separated by commas (for example 0,1), got '" + text + "'");
    }
    if (i >= visible) {
      throw train::ConfigError("--gpus: GPU " + std::to_string(i) + " requested, but " + std::to_string(visible) +
                               " CUDA device(s) are visible");
    }
    out.push_back(i);
  }
  if (out.empty()) throw train::ConfigError("--gpus: expected at least one GPU index, got '" + text + "'");
  return out;
}

void print_written(const report::Written& w) {
  for (const auto& f : w.files) fmt::print("  wrote {}\n", f);
  for (const auto& warning : w.warnings) fmt::print(stderr, "deltabench report: warning: {}\n", warning);
}

// Writes the report of `suite` from the store at `store_path`, which must exist. A suite with no runs
// in the store writes nothing over an existing report unless `force`.
int write_suite_report(const sweep::Suite& suite, const std::string& store_path, const std::string& out_dir, bool force) {
  const auto dir = out_dir.empty() ? "results/" + suite.name : out_dir;
  // A store, or a runs export (`runs export --format json`, committed as results/<suite>/runs.json).
  const auto records = store_path.ends_with(".json") ? sweep::read_runs_json(store_path, suite.name)
                                                     : sweep::Store(store_path, sweep::Store::Open::kExisting).runs(suite.name);
  if (records.empty() && !force) {
    throw report::ReportError(fmt::format(
        "{} holds no runs of suite '{}': not writing a report over {}/ (run the suite first, or pass --force to write "
        "an empty one)",
        store_path, suite.name, dir));
  }
  fmt::print("report of suite {} from {} into {}/\n", suite.name, store_path, dir);
  print_written(report::write_report(suite, records, dir));
  return 0;
}

// The suite's placement with the command's flags over it.
train::Placement placement_of(const sweep::Suite& suite, const RunArgs& a) {
  train::Placement p = suite.placement;
  if (!a.device.empty()) {
    p.device = a.device;
    p.device_origin = "--device";
  }
  if (!a.backend.empty()) {
    p.backend = a.backend;
    p.backend_origin = "--backend";
  }
  if (!a.recompute.empty()) {
    p.recompute = a.recompute;
    p.recompute_origin = "--recompute";
  }
  if (!a.checkpoint_dir.empty()) {
    p.checkpoint = a.checkpoint_dir;
    p.checkpoint_origin = "--checkpoint-dir";
  }
  p.threads = a.threads;
  return p;
}

// "12 runs recorded in 3m10s: 227.4 runs per hour".
void print_rate(size_t runs, double seconds, const std::string& prefix) {
  if (runs == 0 || seconds <= 0) return;
  fmt::print("{}{} runs recorded in {}: {:.1f} runs per hour\n", prefix, runs, train::format_duration(seconds),
             3600.0 * static_cast<double>(runs) / seconds);
  std::fflush(stdout);
}

// Starts `args` as a child that the kernel kills when this process dies (no orphans, even after a
// kill -9 of the parent). fork + exec rather than posix_spawn: only the child can ask for that.
pid_t spawn_worker(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("--jobs: cannot start a worker process (fork failed)");
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(126);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  return pid;
}

// Runs the grid in `jobs` worker processes that share it through the store's claims. With CUDA,
// worker i trains on GPU gpus[i mod gpus.size()].
int run_in_processes(const RunArgs& a, const std::string& suite_file, const train::ResolvedDevice& device) {
  std::vector<int64_t> gpus;
  if (device.device.is_cuda()) {
    if (!a.gpus.empty()) {
      gpus = parse_gpus(a.gpus, train::visible_gpus());
    } else {
      for (int64_t i = 0; i < train::visible_gpus(); ++i) gpus.push_back(i);
    }
  }
  const int64_t cores = std::max<int64_t>(1, std::thread::hardware_concurrency());
  const int64_t threads = a.threads > 0 ? a.threads : std::max<int64_t>(1, cores / a.jobs);
  std::vector<pid_t> children;
  for (int64_t i = 0; i < a.jobs; ++i) {
    const std::string where = gpus.empty() ? "cpu" : "cuda:" + std::to_string(gpus[static_cast<size_t>(i) % gpus.size()]);
    std::vector<std::string> args = {"deltabench", "run", suite_file, "--store", a.store, "--worker",
                                     fmt::format("{}/{}", i, a.jobs), "--device", where, "--threads",
                                     std::to_string(threads), "--no-report", "--progress-interval",
                                     fmt::format("{}", a.progress_interval)};
    if (!a.checkpoint_dir.empty()) args.insert(args.end(), {"--checkpoint-dir", a.checkpoint_dir});
    if (a.no_resume) {
      args.push_back("--no-resume");
    } else {
      args.insert(args.end(), {"--resume-dir", a.resume_dir, "--resume-interval", fmt::format("{}", a.resume_interval)});
      if (a.resume_any_commit) args.push_back("--resume-any-commit");
    }
    if (!a.backend.empty()) args.insert(args.end(), {"--backend", a.backend});
    if (!a.recompute.empty()) args.insert(args.end(), {"--recompute", a.recompute});
    for (const auto& s : a.only) args.insert(args.end(), {"--only", s});
    if (a.retry_failed) args.push_back("--retry-failed");
    if (a.no_reuse) args.push_back("--no-reuse");
    if (a.eager) args.push_back("--eager");
    if (a.abort_after >= 0) args.insert(args.end(), {"--abort-after", std::to_string(a.abort_after)});
    if (a.time_limit > 0) args.insert(args.end(), {"--time-limit", fmt::format("{}", a.time_limit)});
    children.push_back(spawn_worker(args));
  }
  int failures = 0, aborted = 0;
  for (const pid_t pid : children) {
    int wstatus = 0;
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 75) {
      ++aborted;  // --abort-after, passed on
    } else if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
      ++failures;
    }
  }
  if (aborted) return 75;
  if (failures) fmt::print(stderr, "deltabench run: {} of {} worker processes exited with an error\n", failures, a.jobs);
  return failures ? 1 : 0;
}

// sweep::default_runs_per_gpu for the selected runs of `suite` the store does not hold yet.
int64_t default_per_gpu(const sweep::Suite& suite, const RunArgs& a, const at::Device& device) {
  const auto runs = sweep::expand(suite);
  std::map<std::string, sweep::RunRecord> recorded;
  if (std::filesystem::exists(a.store)) recorded = sweep::Store(a.store, sweep::Store::Open::kExisting).runs(suite.name);
  size_t to_do = 0;
  double largest = 0;
  for (const auto& run : runs) {
    if (!sweep::selected(run, a.selection)) continue;
    if (!recorded.contains(run.hash)) ++to_do;
    largest = std::max(largest, train::estimate_memory(run.config).total());
  }
  return sweep::default_runs_per_gpu(to_do, largest, train::available_bytes(device));
}

}  // namespace

void add_suite_commands(CLI::App& app, int& status) {
  auto ra = std::make_shared<RunArgs>();
  auto* run = app.add_subcommand("run", "run a suite's grid into the results store (resumable), then write its report");
  run->add_option("suite", ra->suite, "a suite name (configs/suites/<name>.toml) or a suite file")->required();
  run->add_option("--store", ra->store, "the SQLite results store")->capture_default_str();
  run->add_option("--device", ra->device,
                  "auto, cpu, cuda or cuda:N for every run (default: the suite's [base.train] device, else auto: cuda "
                  "where a GPU is visible); not part of a run's identity");
  run->add_option("--backend", ra->backend,
                  "auto, reference or kernel: what runs the linear family's sequence ops (default: the suite's "
                  "[base.train] backend, else auto); not part of a run's identity")
      ->check(CLI::IsMember({"auto", "reference", "kernel"}));
  run->add_option("--recompute", ra->recompute,
                  "none, state or all: what the sm_90a training kernels' backward computes again rather than keep from "
                  "the forward, less memory for more time, the same results (default: the suite's [base.train] "
                  "recompute, else none); not part of a run's identity")
      ->check(CLI::IsMember({"none", "state", "all"}));
  run->add_option("--only", ra->only,
                  "AXIS=V1,V2: train only the runs whose AXIS (task, model, d_model, lr, weight_decay or seed) takes "
                  "one of the values (a task or model ending in * is a prefix: task=fuzzy-in-context-recall:*); "
                  "repeat for several axes (a run must be in each). The report still covers every run in the store");
  run->add_option("--gpus", ra->gpus, "with --jobs and CUDA: the GPUs the workers take in turn (default: all visible)");
  run->add_option("--shard", ra->shard,
                  "i/n: run only the runs whose grid index is i mod n (one process per host or GPU; in a Slurm job "
                  "array the array task's index and count, unless given)");
  run->add_flag("--shard-store", ra->shard_store,
                "a shard writes its own store beside --store (<name>.shard-i-of-n.sqlite), always where --store is on a "
                "network file system; combine them with deltabench store merge");
  run->add_option("--jobs", ra->jobs, "worker processes on this machine sharing the grid (with CUDA, one GPU each in turn)")
      ->capture_default_str()->check(integer_at_least(1, 256));
  run->add_option("--per-gpu", ra->per_gpu,
                  "with CUDA: runs training at once on each GPU (N x GPUs worker processes; small models leave a GPU idle)")
      ->check(integer_at_least(1, 64));
  run->add_flag("--eager", ra->eager, "train every step eagerly on CUDA (no captured CUDA graph)");
  run->add_option("--threads", ra->threads, "CPU threads per process (default: LibTorch's; cores / jobs with --jobs)")
      ->check(integer_at_least(1, 1024));
  run->add_option("--checkpoint-dir", ra->checkpoint_dir,
                  "save each run's model and optimizer under DIR/<run hash>/ (default: the suite's [base.train] checkpoint)");
  run->add_option("--resume-dir", ra->resume_dir,
                  "each run in flight saves its state at the end of an epoch under DIR/<run hash>/, and a run killed "
                  "there goes on from it (default: <store>.resume beside the store)");
  run->add_option("--resume-interval", ra->resume_interval, "seconds at least between a run's saved states")
      ->capture_default_str()->check(CLI::Range(0.0, 86400.0));
  run->add_flag("--no-resume", ra->no_resume, "save no run states: a killed run starts over");
  run->add_flag("--resume-any-commit", ra->resume_any_commit,
                "go on from a run's saved state also where it was saved at another commit (by default such a run "
                "starts over); the run's record names each commit it trained at and from which epoch");
  run->add_option("--out", ra->out, "the report's directory (default results/<suite>)");
  run->add_flag("--retry-failed", ra->retry_failed, "run again runs recorded as failed");
  run->add_flag("--no-reuse", ra->no_reuse,
                "train again runs another suite of the store has finished (by default they are copied into this "
                "suite: the same task, model, protocol and seed)");
  run->add_flag("--dry-run", ra->dry_run, "list the runs still to do in an existing store and train nothing");
  run->add_option("--time-limit", ra->time_limit,
                  "seconds this run has (a GPU window's): a run not yet begun whose task and model's finished runs say "
                  "it would outlast what is left is not started, and left for a later run (0: no limit)")
      ->check(CLI::Range(0.0, 1e7));
  run->add_flag("--no-report", ra->no_report, "do not write the report at the end");
  run->add_option("--progress-interval", ra->progress_interval, "seconds between progress lines within a run")
      ->capture_default_str()->check(CLI::Range(0.0, 3600.0));
  run->add_option("--worker", ra->worker, "set by --jobs: this worker's i/n")->group("");
  run->add_option("--abort-after", ra->abort_after, "tests: exit (status 75) after recording this many runs")->group("");
  run->callback([ra, &status] {
    const auto file = sweep::find_suite_file(ra->suite);
    const auto suite = sweep::load_suite(file);
    ra->selection.clear();
    for (const auto& s : ra->only) ra->selection.push_back(sweep::parse_selection(s));
    if (!ra->selection.empty()) sweep::check_selection(sweep::expand(suite), ra->selection);
    // A Slurm job array task is a shard of the grid (sweep/slurm.h), unless --shard says otherwise.
    if (ra->shard.empty() && ra->worker.empty()) {
      if (const auto slurm = sweep::slurm_array_shard()) {
        if (ra->jobs > 1 || ra->per_gpu > 0) {
          throw train::ConfigError("--jobs or --per-gpu in a Slurm array task: each array task is one shard of the grid; "
                                   "give --shard i/n to split a task's share further, or run without the array");
        }
        ra->shard = fmt::format("{}/{}", slurm->first, slurm->second);
        fmt::print("suite: Slurm array task {} of {} (SLURM_ARRAY_TASK_ID): --shard {}\n", slurm->first,
                    slurm->second, ra->shard);
      }
    }
    if (!ra->shard.empty() && !ra->dry_run) {
      const auto [i, n] = parse_fraction("--shard", ra->shard);
      const bool network = sweep::on_network_filesystem(ra->store);
      if (n > 1 && (ra->shard_store || network)) {
        const auto own = sweep::shard_store_path(ra->store, i, n);
        fmt::print("suite: shard {}/{} writes its own store {}{} (deltabench store merge combines the shards')\n", i, n,
                   own, network ? ", since " + ra->store + " is on a network file system" : "");
        ra->store = own;
      }
    } else if (ra->shard_store && ra->shard.empty()) {
      throw train::ConfigError("--shard-store: goes with --shard i/n or a Slurm array task");
    }
    if (ra->no_resume && !ra->resume_dir.empty()) throw train::ConfigError("--resume-dir and --no-resume: give one, not both");
    if (ra->no_resume && ra->resume_any_commit) {
      throw train::ConfigError("--resume-any-commit and --no-resume: give one, not both");
    }
    if (!ra->no_resume && ra->resume_dir.empty()) ra->resume_dir = ra->store + ".resume";  // the store's own, shard or not
    if (ra->jobs > 1 && !ra->shard.empty()) throw train::ConfigError("--jobs and --shard: give one, not both");
    if (ra->per_gpu > 0 && ra->jobs > 1) throw train::ConfigError("--jobs and --per-gpu: give one, not both");
    if (ra->per_gpu > 0 && !ra->shard.empty()) throw train::ConfigError("--per-gpu and --shard: give one, not both");
    const auto placement = placement_of(suite, *ra);
    // Where it trains is checked before the store is touched: a wrong device records nothing. A dry run
    // trains nothing, so it lists a GPU suite's runs left on a machine without one too (planning windows).
    train::ResolvedDevice device;
    if (!ra->dry_run) {
      device = train::resolve_device(placement.device, placement.device_origin);
      train::resolve_backend(placement, device);
    } else {
      train::check_device_spelling(placement.device, placement.device_origin);
    }
    const bool chosen =
        ra->jobs > 1 || ra->per_gpu > 0 || !ra->shard.empty() || !ra->worker.empty() || ra->abort_after >= 0;
    if (device.device.is_cuda() && !chosen && !ra->dry_run) {
      ra->per_gpu = default_per_gpu(suite, *ra, device.device);
      fmt::print("suite {}: {} run(s) at once on each GPU (the default on CUDA; --per-gpu N to choose)\n", suite.name,
                 ra->per_gpu);
    }
    if (!ra->gpus.empty() && ra->jobs == 1 && ra->per_gpu == 0) {
      throw train::ConfigError("--gpus: goes with --jobs N or --per-gpu N (workers on those GPUs)");
    }
    if (ra->per_gpu > 0 && !ra->dry_run) {
      if (!device.device.is_cuda()) {
        throw train::ConfigError(fmt::format("--per-gpu: needs CUDA, but runs train on {} ({}); use --jobs on the CPU",
                                             device.name, placement.device_origin));
      }
      const auto gpus = ra->gpus.empty() ? train::visible_gpus()
                                         : static_cast<int64_t>(parse_gpus(ra->gpus, train::visible_gpus()).size());
      ra->jobs = ra->per_gpu * std::max<int64_t>(1, gpus);
    }
    if (ra->threads > 0) at::set_num_threads(static_cast<int>(ra->threads));
    const auto started = std::chrono::steady_clock::now();
    const auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(); };
    if (ra->jobs > 1 && !ra->dry_run) {
      size_t recorded_before = 0;
      {
        sweep::Store store(ra->store);  // create the schema once, before the workers race for it
        recorded_before = store.runs(suite.name).size();
      }
      fmt::print("suite {}: {} worker processes on {}\n", suite.name, ra->jobs,
                 device.device.is_cuda() ? std::string("the GPUs ") + (ra->gpus.empty() ? "(all visible)" : ra->gpus)
                                         : std::string("the CPU"));
      std::fflush(stdout);
      status = run_in_processes(*ra, file, device);
      const size_t recorded = sweep::Store(ra->store).runs(suite.name).size() - recorded_before;
      print_rate(recorded, elapsed(), "");
      // The report is written also when some runs failed (the exit status still says so).
      if (status != 75 && !ra->no_report) {
        const int report_status = write_suite_report(suite, ra->store, ra->out, false);
        if (status == 0) status = report_status;
      }
      return;
    }
    sweep::RunnerOptions o;
    o.placement = placement;
    if (!ra->shard.empty()) std::tie(o.shard, o.shards) = parse_fraction("--shard", ra->shard);
    if (o.shards > 1) o.prefix = fmt::format("[shard {}/{}] ", o.shard, o.shards);
    if (!ra->worker.empty()) {
      const auto [i, n] = parse_fraction("--worker", ra->worker);
      o.prefix = fmt::format("[worker {}/{} {}] ", i, n, placement.device);
    }
    o.only = ra->selection;
    o.retry_failed = ra->retry_failed;
    o.reuse = !ra->no_reuse;
    o.dry_run = ra->dry_run;
    o.abort_after = ra->abort_after;
    o.progress_interval_s = ra->progress_interval;
    o.cuda_graph = !ra->eager;
    if (!ra->no_resume) o.resume_dir = ra->resume_dir;
    o.resume_interval_s = ra->resume_interval;
    o.resume_any_commit = ra->resume_any_commit;
    o.time_limit_s = ra->time_limit;
    sweep::Store store(ra->store, ra->dry_run ? sweep::Store::Open::kExisting : sweep::Store::Open::kCreate);
    const auto r = sweep::run_suite(suite, store, o);
    status = 0;
    if (!ra->dry_run) {
      fmt::print("{}done: {} runs trained ({} diverged, {} failed), {} were already in the store", o.prefix, r.ran,
                 r.diverged, r.failed, r.done_before);
      if (r.claimed_elsewhere) fmt::print(", {} being trained by other processes", r.claimed_elsewhere);
      if (r.left_for_later) fmt::print(", {} left for a later run by --time-limit", r.left_for_later);
      fmt::print("\n");
      print_rate(r.ran, elapsed(), o.prefix);
      if (r.failed > 0) {
        fmt::print(stderr, "{}deltabench run: {} run(s) failed (their errors are in the store: deltabench runs list "
                   "--status failed); --retry-failed trains them again\n", o.prefix, r.failed);
        status = 1;
      }
    }
    if (!ra->no_report && !ra->dry_run && o.shards == 1 && ra->worker.empty()) {
      const int report_status = write_suite_report(suite, ra->store, ra->out, false);
      if (status == 0) status = report_status;
    }
  });

  auto rp = std::make_shared<ReportArgs>();
  auto* rep = app.add_subcommand("report", "write a suite's tables (Markdown, LaTeX, CSV) and plots from the store");
  rep->add_option("suite", rp->suite, "a suite name (configs/suites/<name>.toml) or a suite file")->required();
  rep->add_option("--store", rp->store, "the SQLite results store (must exist), or a runs export (<file>.json: runs export --format json)")->capture_default_str();
  rep->add_option("--out", rp->out, "output directory (default results/<suite>)");
  rep->add_option("--curves", rp->curves, "also plot loss and accuracy per epoch of this run (its id or a hash prefix)");
  rep->add_flag("--force", rp->force, "write the report even when the store holds no runs of the suite");
  rep->callback([rp, &status] {
    const auto suite = sweep::load_suite(sweep::find_suite_file(rp->suite));
    status = write_suite_report(suite, rp->store, rp->out, rp->force);
    if (!rp->curves.empty()) {
      sweep::Store store(rp->store, sweep::Store::Open::kExisting);
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

  auto ma = std::make_shared<std::pair<std::vector<std::string>, std::string>>();  // inputs, output
  auto* store_cmd = app.add_subcommand("store", "work on results stores: merge");
  store_cmd->require_subcommand(1);
  auto* merge = store_cmd->add_subcommand(
      "merge", "combine stores (a Slurm array's shards) into one: each run once, conflicting results refused");
  merge->add_option("stores", ma->first, "the stores to combine (SQLite stores, or runs exports: <file>.json)")->required()->check(CLI::ExistingFile);
  merge->add_option("-o,--out", ma->second, "the merged store (written whole, then renamed into place)")->required();
  merge->callback([ma, &status] {
    const auto summary = sweep::merge_stores(ma->first, ma->second);
    fmt::print("merged {} store(s) into {}: {} runs ({} records of runs already taken), suites: {}\n", ma->first.size(),
               ma->second, summary.runs, summary.duplicates, fmt::join(summary.suites, ", "));
    status = 0;
  });

  auto* listing = app.add_subcommand(
      "kernel-cases", "the kernel benchmark cases of the registry (bench/kernel_cases.toml), one 'op B T H K V dtype' line each");
  listing->callback([&status] {
    for (const auto& c : bench::kernel_cases().cases) {
      fmt::print("{} {} {} {} {} {} {}\n", c.op, c.B, c.T, c.H, c.K, c.V, c.dtype);
    }
    status = 0;
  });
}

}  // namespace deltabench::app
