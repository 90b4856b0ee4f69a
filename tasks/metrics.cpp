#include "tasks/metrics.h"

#include "tasks/task.h"

#include <ATen/ATen.h>

#include <limits>
#include <stdexcept>
#include <string>

namespace deltabench::tasks {
namespace {

void check(const at::Tensor& preds, const at::Tensor& targets) {
  if (preds.sizes() != targets.sizes() || preds.dim() != 2) {
    throw std::invalid_argument("metrics: preds and targets must both be [N, L]");
  }
}

}  // namespace

double mqar_accuracy(const at::Tensor& preds, const at::Tensor& targets) {
  Evaluator e;
  e.add_batch(preds, targets);
  return e.mqar_accuracy();
}

double micro_accuracy(const at::Tensor& preds, const at::Tensor& targets) {
  Evaluator e;
  e.add_batch(preds, targets);
  return e.micro_accuracy();
}

double macro_class_recall(const at::Tensor& preds, const at::Tensor& targets) {
  check(preds, targets);
  const auto mask = targets != kIgnoreIndex;
  const auto t = targets.masked_select(mask);
  if (t.numel() == 0) return std::numeric_limits<double>::quiet_NaN();
  const auto hit = (preds.masked_select(mask) == t).to(at::kDouble);
  const int64_t classes = t.max().item<int64_t>() + 1;
  const auto support = at::zeros({classes}, hit.options()).index_add_(0, t, at::ones_like(hit));
  const auto correct = at::zeros({classes}, hit.options()).index_add_(0, t, hit);
  const auto present = support > 0;
  return (correct.masked_select(present) / support.masked_select(present)).mean().item<double>();
}

void Evaluator::add_batch(const at::Tensor& preds_in, const at::Tensor& targets_in) {
  check(preds_in, targets_in);
  const auto preds = preds_in.to(at::kCPU), targets = targets_in.to(at::kCPU);
  const auto mask = targets != kIgnoreIndex;
  const auto hit = (preds == targets).logical_and(mask);
  const auto per_example_scored = mask.sum(1);  // [N]
  const auto per_example_hit = hit.sum(1);
  const auto has = per_example_scored > 0;
  example_accuracy_sum_ +=
      (per_example_hit.masked_select(has).to(at::kDouble) / per_example_scored.masked_select(has).to(at::kDouble))
          .sum()
          .item<double>();
  examples_ += has.sum().item<int64_t>();
  correct_ += hit.sum().item<int64_t>();
  scored_ += mask.sum().item<int64_t>();
  const double macro = macro_class_recall(preds, targets);
  if (macro == macro) {  // a batch with no scored token has no classes and counts for nothing
    macro_sum_ += macro;
    ++batches_;
  }
}

double Evaluator::mqar_accuracy() const {
  return examples_ ? example_accuracy_sum_ / static_cast<double>(examples_) : std::numeric_limits<double>::quiet_NaN();
}

double Evaluator::micro_accuracy() const {
  return scored_ ? static_cast<double>(correct_) / static_cast<double>(scored_) : std::numeric_limits<double>::quiet_NaN();
}

double Evaluator::mad_accuracy() const {
  return batches_ ? macro_sum_ / static_cast<double>(batches_) : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace deltabench::tasks
