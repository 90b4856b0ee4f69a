#pragma once
// One training step without a host synchronisation: the forward, the loss at the scored positions,
// the backward, gradient clipping and AdamW (ATen's fused kernel), with the loss written into a
// buffer on the device that the trainer reads when it reports. On CUDA, after a few eager warm-up
// steps, the whole step is captured once as a CUDA graph on static input buffers and replayed for
// every full batch; a partial batch (another shape) runs eagerly, and a step that cannot be captured
// leaves the run eager with the reason in `mode()`.

#include "models/language_model.h"
#include "tasks/dataset.h"
#include "train/config.h"

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace deltabench::train {

// bf16 autocast on CUDA for the guard's lifetime (torch.autocast's enter and exit). A captured step
// runs with the cast cache off (as torch.cuda.graphs does): cached casts would outlive the capture.
class AutocastGuard {
 public:
  explicit AutocastGuard(bool on, bool cache = true);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool on_, cache_before_ = true;
};

// Makes this thread's run stream current on a CUDA device for the guard's lifetime (nothing on the
// CPU). A step can be captured only off the legacy default stream, and the stream is one per thread
// and device, the same for every run: cuBLAS keeps a workspace per (handle, stream) for the life of
// the process, so a fresh pool stream per run left its workspaces behind in a worker that trains
// hundreds of runs (64 MiB a run on the H200: tests/train/cuda_test.cpp, five runs in one process).
class RunStreamGuard {
 public:
  explicit RunStreamGuard(const at::Device& device);
  ~RunStreamGuard();
  RunStreamGuard(const RunStreamGuard&) = delete;
  RunStreamGuard& operator=(const RunStreamGuard&) = delete;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// AdamW through ATen's `_fused_adamw_` (torch.optim.AdamW(fused=True)): one kernel for all
// parameters. Two groups: weight decay on matrices, none on norms, biases, A_log and dt_bias. On CUDA
// the learning rate and the step counts are device tensors, so the update can be captured.
class FusedAdamW {
 public:
  FusedAdamW(models::LanguageModel& model, const TrainConfig& train, const at::Device& device);
  // A device fill on CUDA: no synchronisation, and a captured step sees the new value.
  void set_lr(double lr);
  // Steps every parameter that has a gradient.
  void step();
  // Gradients set to none (a captured backward then allocates them in the graph's pool).
  void zero_grad();
  // Parameters' gradients, in group order, those that are defined.
  std::vector<at::Tensor> grads() const;
  // The moments and step counts, for a checkpoint: exp_avg..., exp_avg_sq..., step...
  std::vector<at::Tensor> state() const;
  // Copies `state` (state()'s order, any device) into the moments and step counts. Throws
  // std::invalid_argument naming the first tensor whose count or shape differs.
  void load_state(const std::vector<at::Tensor>& state);

 private:
  struct Group {
    std::vector<at::Tensor> params, exp_avg, exp_avg_sq, steps;
    double weight_decay = 0;
  };
  std::vector<Group> groups_;
  at::Tensor lr_;  // [] fp32 on the device (CUDA only)
  double lr_value_ = 0, beta1_ = 0, beta2_ = 0, eps_ = 0;
  bool device_lr_ = false;
};

// Scales the gradients so that their global L2 norm is at most `max_norm`, on the device
// (clip_grad_norm_ without its host read of the norm).
void clip_grad_norm(const std::vector<at::Tensor>& grads, double max_norm);

struct StepOptions {
  int64_t vocab_size = 0;
  int64_t scored = 0;        // positions per example that carry a target (tasks::max_scored_positions)
  double grad_clip = 0;      // 0: no clipping
  bool autocast = false;     // bf16 autocast (CUDA)
  bool capture = false;      // capture the step as a CUDA graph after `warmup` eager steps (CUDA only)
  int64_t warmup = 3;
  int64_t capacity = 0;      // most steps this run takes: the size of the loss buffer
};

class TrainStep {
 public:
  TrainStep(models::LanguageModel& model, FusedAdamW& optimizer, const StepOptions& options, const at::Device& device);
  ~TrainStep();
  TrainStep(const TrainStep&) = delete;
  TrainStep& operator=(const TrainStep&) = delete;

  // One optimizer step on `batch` (replayed when it has the captured shape).
  void run(const tasks::Batch& batch);
  // The losses of the steps run since the last read, in order: one copy to the host.
  std::vector<double> read_losses();
  int64_t steps() const { return issued_; }
  // A resumed run: the next step is step `steps` (its loss goes to that slot). Before the first run().
  void resume_at(int64_t steps);
  // "captured (CUDA graph) after 3 eager steps; 2 eager steps for partial batches", "eager (cpu)",
  // "eager: the step could not be captured: ..." (a note for the run's record).
  std::string mode() const;
  bool captured() const { return graph_ != nullptr; }

 private:
  void body(const at::Tensor& inputs, const at::Tensor& targets);
  void capture(const tasks::Batch& batch);

  models::LanguageModel& model_;
  FusedAdamW& optimizer_;
  StepOptions options_;
  at::Device device_;
  at::Tensor losses_;  // [capacity] fp32 on the device
  at::Tensor index_;   // [1] int64 on the device: the next step's slot
  int64_t issued_ = 0, read_ = 0, eager_after_capture_ = 0, captured_at_ = -1;
  int64_t first_ = 0;  // the first step this object runs (resume_at): warm-up counts from here
  at::Tensor static_inputs_, static_targets_;
  struct Graph;
  std::unique_ptr<Graph> graph_;
  std::string failure_;  // why the step is not captured, when it was tried
};

// Evaluation's forward without host synchronisation: predictions (argmax at the scored positions)
// and the summed loss stay on the device until the caller reads them. On CUDA the forward of a full
// batch is captured once as a CUDA graph (in eval mode, without gradients) and replayed; a partial
// batch runs eagerly.
class EvalStep {
 public:
  EvalStep(models::LanguageModel& model, const StepOptions& options, const at::Device& device);
  ~EvalStep();
  EvalStep(const EvalStep&) = delete;
  EvalStep& operator=(const EvalStep&) = delete;

  // Adds the batch's summed loss to `loss_sum` (a device scalar) and returns its predictions and
  // targets at the scored positions ([b, scored], on the device; owned by the caller).
  std::pair<at::Tensor, at::Tensor> run(const tasks::Batch& batch, at::Tensor& loss_sum);
  bool captured() const { return graph_ != nullptr; }
  // "captured (CUDA graph)", "eager (cpu)", "eager: the forward could not be captured: ...".
  std::string mode() const;

 private:
  struct Outputs {
    at::Tensor preds, targets, loss;
  };
  Outputs forward(const at::Tensor& inputs, const at::Tensor& targets);

  models::LanguageModel& model_;
  StepOptions options_;
  at::Device device_;
  at::Tensor static_inputs_, static_targets_;
  Outputs static_out_;
  struct Graph;
  std::unique_ptr<Graph> graph_;
  std::string failure_;
};

}  // namespace deltabench::train
