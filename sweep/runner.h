#pragma once
// Runs a suite: expands the grid, skips runs the store already holds, trains the rest one by one
// and records each as it finishes. `shard`/`shards` split the grid by index (run i belongs to
// shard i mod n), so that processes on several GPUs or cores can share one grid and one store.

#include "sweep/store.h"
#include "sweep/suite.h"

#include <cstdint>
#include <string>

namespace deltabench::sweep {

struct RunnerOptions {
  std::string device;           // replaces [train] device in every run (not part of a run's identity)
  int64_t shard = 0, shards = 1;
  bool retry_failed = false;    // run again runs recorded as failed (diverged runs are never retried)
  bool dry_run = false;         // list what would run, train nothing
  int64_t abort_after = -1;     // tests: end the process after recording this many runs, as a kill would
  bool progress = true;
  std::string prefix;           // printed before every progress line ("[shard 1/2] ")
};

struct RunnerResult {
  size_t total = 0;     // runs in the grid
  size_t in_shard = 0;  // runs this shard owns
  size_t done_before = 0, ran = 0, failed = 0, diverged = 0;
};

RunnerResult run_suite(const Suite& suite, Store& store, const RunnerOptions& options);

// "abc123def456" (with "-dirty" when tracked files outside results/ differ), or "unknown" outside a
// git checkout.
std::string git_commit();
// "deltabench 0.1.0; torch 2.11.0; sqlite 3.40.1; cuda 13.0" (cuda: the build's, or "none").
std::string library_versions();

}  // namespace deltabench::sweep
