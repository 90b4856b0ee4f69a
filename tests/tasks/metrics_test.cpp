// Tests tasks/metrics.cpp on cases small enough to score by hand.

#include "tasks/metrics.h"
#include "tasks/task.h"
#include "tests/support/catch.h"

#include <ATen/ATen.h>

using namespace deltabench::tasks;

namespace {
at::Tensor rows(std::vector<std::vector<int64_t>> r) {
  std::vector<at::Tensor> out;
  for (auto& x : r) out.push_back(at::tensor(x, at::kLong));
  return at::stack(out);
}
constexpr int64_t X = kIgnoreIndex;
}  // namespace

TEST_CASE("metrics: per-example mean and micro average differ as they should", "[metrics]") {
  // Example 0: 1 of 1 right. Example 1: 0 of 3 right. Example 2: nothing scored (skipped).
  const auto targets = rows({{X, 5, X, X}, {7, 7, 8, X}, {X, X, X, X}});
  const auto preds = rows({{0, 5, 0, 0}, {1, 2, 3, 4}, {9, 9, 9, 9}});
  CHECK(mqar_accuracy(preds, targets) == Approx(0.5));
  CHECK(micro_accuracy(preds, targets) == Approx(0.25));
}

TEST_CASE("metrics: macro class recall averages the classes present", "[metrics]") {
  // Class 1: 2 of 3 recalled; class 2: 1 of 1. Macro: (2/3 + 1) / 2. Token accuracy: 3/4.
  const auto targets = rows({{1, 1, 1, 2, X}});
  const auto preds = rows({{1, 1, 0, 2, 2}});
  CHECK(macro_class_recall(preds, targets) == Approx(5.0 / 6.0));
  CHECK(micro_accuracy(preds, targets) == Approx(0.75));
}

TEST_CASE("metrics: the MAD score is the mean over batches", "[metrics]") {
  Evaluator e;
  e.add_batch(rows({{1, 2}}), rows({{1, 2}}));  // macro 1
  e.add_batch(rows({{0, 0}}), rows({{1, 1}}));  // macro 0
  e.add_batch(rows({{0, 0}}), rows({{X, X}}));  // nothing scored: ignored
  CHECK(e.mad_accuracy() == Approx(0.5));
  CHECK(e.micro_accuracy() == Approx(0.5));
  CHECK(e.scored_tokens() == 4);
}
