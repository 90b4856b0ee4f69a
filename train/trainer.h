#pragma once
// Runs one configured experiment to a scored result: builds the task data on the device, the model
// and AdamW, trains with a per-epoch cosine schedule, evaluates after every epoch with the task's
// metric, stops early at the threshold, and records a NaN or infinite loss as `diverged`.

#include "models/language_model.h"
#include "train/config.h"
#include "train/placement.h"

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
  std::string device;    // "cpu" or "cuda:0 (NVIDIA H200)"
  std::string gpu_name;  // empty on the CPU
  int64_t threads = 0;   // LibTorch intra-op threads
  // What served the sequence ops (kernels/common/backend.h): training's forward and backward, and
  // evaluation's forward. Softmax attention calls no deltabench op: "aten".
  std::string backend_train_forward, backend_train_backward, backend_eval_forward;
  std::string backend() const;
  // What served the pieces around them in training (models/pieces.h): "embedding kernel, LayerNorm
  // kernel, short conv kernel, q/k L2 norm kernel, RMSNorm kernel", "none" where training took no step.
  std::string backend_pieces;
  // How the training step and evaluation ran: "captured (CUDA graph) after 3 eager steps; evaluation
  // captured (CUDA graph)", "eager (cpu); evaluation eager (cpu)", or eager with the reason a capture
  // failed (train/step.h).
  std::string train_step;  // "train fwd reference, bwd reference (ATen autograd); eval fwd kernel"
  std::vector<EpochMetrics> history;
  std::vector<double> step_losses;  // every training step's loss, for reproducibility checks
  int64_t resumed_after_epoch = 0;  // the epochs a resume state brought (TrainOptions::resume_dir); 0: none
};

// Where training stands, for a caller that prints progress its own way (a suite's worker).
struct Progress {
  int64_t epoch = 0, epochs = 0;       // 1-based epoch in progress
  int64_t step = 0, steps_per_epoch = 0;  // step within the epoch
  int64_t steps = 0, total_steps = 0;  // optimizer steps so far, and at most
  double loss = 0;                     // the last step's loss
  double elapsed_s = 0, eta_s = 0;     // this run's in this process (a resumed run's earlier time not in it)
  bool epoch_end = false;              // after an evaluation: `accuracy` holds its result
  double accuracy = 0;
};

struct TrainOptions {
  Placement placement;                   // where to train (device "auto" by default)
  std::optional<int64_t> epochs;         // overrides [train] epochs
  int64_t max_steps = -1;                // stop after this many steps (tests, benchmarks); -1: no limit
  std::string metrics_path;              // JSON lines: one per epoch, then the summary
  std::string config_hash, commit;       // written into the metrics file's summary
  bool cuda_graph = true;                // on CUDA, capture the training step and replay it (train/step.h)
  bool progress = true;                  // progress lines on stdout (when on_progress is not set)
  double progress_interval_s = 10;       // between progress reports within an epoch
  std::function<void(const Progress&)> on_progress;  // replaces the printed lines
  // Where the run saves its state at the end of an epoch (train/resume.h), at most once every
  // resume_interval_s, and from which it goes on when a state of the same config, epoch count and
  // commit is there; the state is removed when the run ends. Empty: no resume state.
  std::string resume_dir;
  double resume_interval_s = 30;
  // Also go on from a state saved at another commit: its commit is named in the record's train_step.
  bool resume_any_commit = false;
};

// What a run will take at most, estimated from the config before anything is allocated: the task
// data (host and device copies), the parameters with AdamW's state and gradients, and one step's
// activations (logits dominate). `largest` names the config key that contributes most.
struct MemoryEstimate {
  double data_bytes = 0, model_bytes = 0, activation_bytes = 0;
  double total() const { return data_bytes + model_bytes + activation_bytes; }
  std::string largest;  // "[task] train_examples", "[model] vocab_size", "[train] batch_size", ...
};
MemoryEstimate estimate_memory(const ExperimentConfig& config);

// Throws ConfigError (naming the largest contributor's key, the estimate and what is available)
// when the estimate exceeds `available_bytes`.
void check_memory(const ExperimentConfig& config, double available_bytes, const std::string& where);

RunSummary run_experiment(const ExperimentConfig& config, const TrainOptions& options = {});

// The LM head at the positions that carry a target only: `scored` positions per example
// (tasks::scored_positions), padded with unscored ones, which the loss ignores. MQAR scores
// num_kv_pairs of L positions, so at Zoology's L = 256 this is 16 instead of 256 head rows per example;
// the loss and its gradients equal the full head's to rounding.
struct ScoredLogits {
  at::Tensor logits;   // [b, scored, vocab]
  at::Tensor targets;  // [b, scored], kIgnoreIndex at padding
};
ScoredLogits scored_logits(models::LanguageModel& model, const at::Tensor& inputs, const at::Tensor& targets,
                           int64_t scored);

// The learning rate of epoch e (0-based): linear warmup, then cosine from lr to min_lr, per epoch
// as Zoology's and MAD's CosineAnnealingLR.
double scheduled_lr(const TrainConfig& train, int64_t epoch);

// Weight decay applies to matrices only: norms, biases, A_log and dt_bias are excluded by name.
bool excluded_from_weight_decay(const std::string& parameter_name);

// JSON for one epoch or for the summary: one line, no trailing newline.
std::string to_json(const EpochMetrics& m);
std::string to_json(const RunSummary& s, const ExperimentConfig& config, const TrainOptions& options = {});

// "59.6 s" -> "1m00s": whole seconds, minutes and hours as a person reads them.
std::string format_duration(double seconds);

}  // namespace deltabench::train
