#pragma once
// Runs one configured experiment to a scored result: builds the task data on the device, the model
// and AdamW, trains with a per-epoch cosine schedule, evaluates after every epoch with the task's
// metric, stops early at the threshold, and records a NaN or infinite loss as `diverged`.

#include "train/config.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace deltabench::train {

struct EpochMetrics {
  int64_t epoch = 0;      // 1-based
  int64_t steps = 0;      // optimizer steps so far
  double lr = 0;          // the epoch's learning rate
  double train_loss = 0;  // mean over the epoch's steps
  double test_loss = 0;
  double accuracy = 0;    // the task's metric: MQAR accuracy or MAD accuracy
  double mqar_accuracy = 0, micro_accuracy = 0, mad_accuracy = 0;
  double wall_s = 0;      // since the start of training
};

struct RunSummary {
  std::string status;  // "completed", "early_stopped" or "diverged"
  int64_t diverged_step = -1;
  double best_accuracy = 0, final_accuracy = 0;
  int64_t best_epoch = 0, epochs = 0, steps = 0;
  double wall_s = 0, tokens_per_s = 0;
  int64_t parameters = 0;
  std::string device;
  std::vector<EpochMetrics> history;
  std::vector<double> step_losses;  // every training step's loss, for reproducibility checks
};

struct TrainOptions {
  std::optional<std::string> device;     // overrides [train] device
  std::optional<int64_t> epochs;         // overrides [train] epochs
  int64_t max_steps = -1;                // stop after this many steps (tests, benchmarks)
  std::string metrics_path;              // JSON lines: one per epoch, then the summary
  bool progress = true;                  // progress lines on stdout
};

RunSummary run_experiment(const ExperimentConfig& config, const TrainOptions& options = {});

// The learning rate of epoch e (0-based): linear warmup, then cosine from lr to min_lr, per epoch
// as Zoology's and MAD's CosineAnnealingLR.
double scheduled_lr(const TrainConfig& train, int64_t epoch);

// Weight decay applies to matrices only: norms, biases, A_log and dt_bias are excluded by name.
bool excluded_from_weight_decay(const std::string& parameter_name);

// JSON for one epoch or for the summary: one line, no trailing newline.
std::string to_json(const EpochMetrics& m);
std::string to_json(const RunSummary& s, const ExperimentConfig& config);

}  // namespace deltabench::train
