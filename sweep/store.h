#pragma once
// The results store: one SQLite file (WAL mode, so several runner processes can write at once).
// A run is written whole in one transaction, after it finishes, so killing a writer at any moment
// loses at most the runs in flight and never leaves half a run behind.
//
// Tables: runs (one row per (suite, config hash): identity, full config, status, final metrics,
// wall time, tokens/s, device, git commit, library versions) and epochs (per-epoch metrics).

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
  std::string device;           // "cpu", or "cuda (<GPU model>)"
  std::string git_commit, versions, finished_at;
  std::vector<train::EpochMetrics> history;
};

// Statuses that end a run for good: a resumed suite skips them. A failed run is retried only when
// asked (`deltabench run --retry-failed`).
bool is_final_status(const std::string& status, bool retry_failed = false);

class Store {
 public:
  explicit Store(const std::string& path);  // creates the file and schema if needed
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Inserts or replaces the run and its epochs in one transaction.
  void record(const RunRecord& run);

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
