#pragma once
// The tasks' scores, each named as the paper computes it. Predictions and targets are [N, L]
// int64; positions with target kIgnoreIndex are not scored.

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace deltabench::tasks {

// Zoology (Feb 2024 on): per example, the accuracy over its scored tokens; then the mean over
// examples that have any. The headline "valid/accuracy".
double mqar_accuracy(const at::Tensor& preds, const at::Tensor& targets);

// Zoology's paper era (Dec 2023): correct scored tokens over all scored tokens (micro average).
double micro_accuracy(const at::Tensor& preds, const at::Tensor& targets);

// torchmetrics MulticlassAccuracy(average='macro', ignore_index=-100) on one batch: the recall of
// each class present among the targets, averaged over those classes.
double macro_class_recall(const at::Tensor& preds, const at::Tensor& targets);

// Accumulates a whole evaluation batch by batch, and reports every score.
class Evaluator {
 public:
  void add_batch(const at::Tensor& preds, const at::Tensor& targets);

  double mqar_accuracy() const;    // mean over examples of per-example accuracy
  double micro_accuracy() const;   // token accuracy over all scored tokens
  double mad_accuracy() const;     // mad-lab: mean over batches of macro class recall
  int64_t scored_tokens() const { return scored_; }

 private:
  double example_accuracy_sum_ = 0;
  int64_t examples_ = 0;
  int64_t correct_ = 0, scored_ = 0;
  double macro_sum_ = 0;
  int64_t batches_ = 0;
};

}  // namespace deltabench::tasks
