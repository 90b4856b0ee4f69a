#pragma once
// The results store: one SQLite file (WAL mode, so several runner processes can write at once).
// A run is written whole in one transaction, after it finishes, so killing a writer at any moment
// loses at most the runs in flight and never leaves half a run behind.
//
// Tables: runs (one row per (suite, config hash): identity, full config, status, final metrics,
// wall time, tokens/s, device, GPU, threads, the op backends that ran, git commit, library
// versions), epochs (per-epoch metrics) and claims (a run being trained: host, pid, heartbeat),
// so that processes sharing a store never train the same run twice.

#include "train/trainer.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

struct sqlite3;

namespace deltabench::sweep {

struct StoreError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct RunRecord {
  std::string suite, hash, id;  // id: "<task>/<model>/d64/lr0.001/wd0.1/s123"
  std::string task, model;
  int64_t d_model = 0;
  double lr = 0, weight_decay = 0;
  int64_t seed = 0;
  std::string config;           // canonical TOML
  std::string status;           // completed, early_stopped, diverged, failed
  std::string error;            // failed: the exception's message
  double best_accuracy = 0, final_accuracy = 0;
  int64_t best_epoch = 0, epochs = 0, steps = 0, diverged_step = -1, parameters = 0;
  double wall_s = 0, tokens_per_s = 0;
  std::string device;           // "cpu", or "cuda:0 (<GPU model>)"
  std::string gpu_name;         // empty on the CPU
  int64_t threads = 0;          // LibTorch intra-op threads
  std::string backend_train_forward, backend_train_backward, backend_eval_forward;  // kernels/common/backend.h
  std::string train_step;       // "captured (CUDA graph) after 3 eager steps", "eager (cpu)", ... (train/step.h)
  std::string backend_pieces;   // "embedding kernel, LayerNorm kernel, ..." (models/pieces.h); empty: not recorded
  std::string git_commit, versions, finished_at;
  std::vector<train::EpochMetrics> history;
};

// Statuses that end a run for good: a resumed suite skips them. A failed run is retried only when
// asked (`deltabench run --retry-failed`).
bool is_final_status(const std::string& status, bool retry_failed = false);

// Who trains a run: this host and process.
struct ClaimOwner {
  std::string host;
  int64_t pid = 0;
};
ClaimOwner this_process();

enum class ClaimResult { kClaimed, kDone, kTaken };

class Store {
 public:
  enum class Open { kCreate, kExisting };
  // kCreate creates the file and schema if needed; kExisting throws StoreError when there is no
  // store at `path` (a report or a dry run never creates one).
  explicit Store(const std::string& path, Open open = Open::kCreate);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Inserts or replaces the run and its epochs, and drops its claim, in one transaction.
  void record(const RunRecord& run);

  // Takes the run for `owner` unless the store holds it as finished (a failed run counts as finished
  // unless `retry_failed`), or another process holds a live claim. A claim is stale, and retaken,
  // when its heartbeat is older than `stale_after_s`, or when its process on this host has exited.
  ClaimResult claim(const std::string& suite, const std::string& hash, const ClaimOwner& owner, bool retry_failed,
                    double stale_after_s);
  void heartbeat(const std::string& suite, const std::string& hash, const ClaimOwner& owner);
  void release(const std::string& suite, const std::string& hash, const ClaimOwner& owner);
  // Live claims of `suite` (host, pid, heartbeat age), for `deltabench runs list`.
  struct Claim {
    std::string hash, host;
    int64_t pid = 0;
    double age_s = 0;
  };
  std::vector<Claim> claims(const std::string& suite) const;

  // Suites that have runs in the store.
  std::vector<std::string> suites() const;

  // Every run of `suite` by hash, with its epochs when `with_history`.
  std::map<std::string, RunRecord> runs(const std::string& suite, bool with_history = false) const;

  const std::string& path() const { return path_; }

 private:
  void exec(const std::string& sql) const;
  sqlite3* db_ = nullptr;
  std::string path_;
  mutable bool last_error_busy_ = false;  // the last exec failed on a lock another connection held

};

}  // namespace deltabench::sweep
