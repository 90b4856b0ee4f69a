#pragma once
// What every task generator returns: int64 inputs and targets [N, L], with -100 where no loss or
// accuracy is taken, and the metric the task is scored with.

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace deltabench::tasks {

inline constexpr int64_t kIgnoreIndex = -100;

enum class Metric {
  kMqarAccuracy,  // Zoology: per example, the accuracy over its query tokens; then the mean
  kMadAccuracy,   // mad-lab: macro-averaged class recall per batch, then the mean over batches
};

enum class Split { kTrain, kTest };

struct TaskData {
  at::Tensor inputs;   // [N, L] int64
  at::Tensor targets;  // [N, L] int64, kIgnoreIndex where unscored
  Metric metric = Metric::kMqarAccuracy;
  int64_t vocab_size = 0;  // every token is in [0, vocab_size)
};

}  // namespace deltabench::tasks
