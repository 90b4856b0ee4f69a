#pragma once
// Runs a suite: expands the grid, and for each run this process owns (shard i of n takes the runs
// whose index is i mod n) claims it in the store, trains it where the placement says, and records
// it as it finishes. Claims (sweep/store.h) make any number of processes on one store safe: each
// run is trained once, a killed process's runs are retaken, and workers without shards share the
// grid dynamically.

#include "sweep/store.h"
#include "sweep/suite.h"
#include "train/placement.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace deltabench::sweep {

struct RunnerOptions {
  train::Placement placement;   // resolved before the first run; never part of a run's identity
  int64_t shard = 0, shards = 1;
  std::vector<RunSelection> only;  // --only: the runs of the grid this process may train (none: all)
  bool retry_failed = false;    // run again runs recorded as failed (diverged runs are never retried)
  bool dry_run = false;         // list what would run, train nothing
  int64_t abort_after = -1;     // tests: end the process after recording this many runs, as a kill would
  bool progress = true;
  bool cuda_graph = true;       // on CUDA, capture each run's training step (train/step.h)
  double progress_interval_s = 10;  // between progress lines (and claim heartbeats) within a run
  double stale_claim_s = 300;   // a claim without a heartbeat for this long is retaken
  std::string prefix;           // printed before every progress line ("[worker 1/2 cuda:1] ")
  // Each run in flight saves its state at the end of an epoch in <resume_dir>/<run hash>/ and a run
  // killed there goes on from it when it is trained again (train/resume.h). Empty: none.
  std::string resume_dir;
  double resume_interval_s = 30;  // at least between a run's saved states
  bool resume_any_commit = false;  // also go on from states saved at another commit (TrainOptions::resume_any_commit)
  // --time-limit: the seconds this process has (a GPU window's, the process stopped at its end). A fresh run whose
  // predicted time (predict_run_seconds) exceeds what is left is not started, and left for a later window: it would
  // be killed unfinished, its time lost with a machine that goes back. Runs with a saved state are always taken.
  // 0: none.
  double time_limit_s = 0;
  // A run of this suite that another suite of the store has finished (the same hash: the same task, model,
  // protocol and seed; completed, early stopped or diverged, not failed) is copied into this suite, its results
  // and epochs as trained there, its id and axis values this suite's, and its train_step ending "; copied from
  // suite <name>", rather than trained again. false (--no-reuse): trained again.
  bool reuse = true;
};

// The seconds a run of the grid is expected to take, from the finished runs of its suite in `stored`: the longest
// of those of its task and model at its d_model, else at the nearest d_model scaled by the ratio of the widths
// (a wider model is at least as slow). Where its task and model have no finished run, the same from the model's
// runs at the task nearest in tokens an epoch (train examples x seq_len), scaled by the ratio of those tokens (as
// many epochs, each as long per token: an attention model's cost a token grows with the length, so there it
// guesses low); none where the model has no finished run at a task with a seq_len. The records' wall times come
// from whatever GPU and runs at once trained them, so this is a guide, not a bound.
struct Prediction {
  double seconds = 0;
  std::string basis;  // "its task and model's finished runs", or "its model's finished runs at L128, scaled by ..."
  // Where the runs it rests on stopped early: the time if this one trains every epoch of its budget instead (their
  // slowest seconds an epoch, scaled as `seconds` is, times the budget). A narrow model may not stop where wider ones
  // did (zoology-mqar's Gated DeltaNet at L 512, d_model 64: predicted 88 s from d_model 128's early-stopped runs,
  // its runs about 45 minutes with 8 at once).
  std::optional<double> all_epochs_seconds;
  int64_t budget_epochs = 0;  // the run's epochs, where all_epochs_seconds is set
};
std::optional<Prediction> predict_run(const Run& run, const std::map<std::string, RunRecord>& stored);
// predict_run's seconds.
std::optional<double> predict_run_seconds(const Run& run, const std::map<std::string, RunRecord>& stored);

struct RunnerResult {
  size_t total = 0;     // runs in the grid
  size_t selected = 0;  // of them, in --only's selection (all without one)
  size_t in_shard = 0;  // selected runs this shard owns
  size_t done_before = 0, ran = 0, failed = 0, diverged = 0;
  size_t failed_before = 0;      // of done_before: failed runs skipped (--retry-failed retrains them)
  size_t claimed_elsewhere = 0;  // runs another live process was training
  size_t left_for_later = 0;     // fresh runs not started: predicted past --time-limit
  size_t reused = 0;             // of done_before: copied from another suite's finished runs (RunnerOptions::reuse);
                                 // in a dry run, those it would copy (not in done_before)
};

RunnerResult run_suite(const Suite& suite, Store& store, const RunnerOptions& options);

// How many runs `deltabench run` trains at once on each GPU when no --jobs, --per-gpu or --shard
// says: kDefaultRunsPerGpu, fewer where the grid has fewer runs to do or where that many of its
// largest runs (train::estimate_memory) would not fit in 80% of the GPU's free memory; at least 1.
// The 4 is measured (H200, train/NOTES.md "Several runs on one GPU"): four copies of a Zoology run
// started together finished 1.86 times as many DeltaNet runs per hour at L 256 as one, and 3.8
// times as many attention runs at L 64; two gave 1.33 and 2.3.
inline constexpr int64_t kDefaultRunsPerGpu = 4;
int64_t default_runs_per_gpu(size_t runs_to_do, double largest_run_bytes, double free_gpu_bytes);

// "abc123def456" (with "-dirty" when tracked files outside results/ differ), or "unknown" outside a
// git checkout.
std::string git_commit();
// "deltabench 0.1.0; torch 2.11.0; sqlite 3.40.1; cuda 13.0" (cuda: the build's, or "none").
std::string library_versions();

}  // namespace deltabench::sweep
