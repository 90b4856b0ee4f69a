// Tests tasks/dataset.cpp: each epoch serves every example once, in an order fixed by (seed, epoch).

#include "tasks/dataset.h"
#include "tests/support/catch.h"

#include <ATen/ATen.h>

#include <set>

using namespace deltabench::tasks;

namespace {
TaskData numbered(int64_t n) {
  // Row i holds i everywhere, so a batch's rows say which examples it holds.
  const auto ids = at::arange(n, at::kLong).unsqueeze(1).expand({n, 4}).contiguous();
  return {ids, ids + 1000, Metric::kMqarAccuracy, 2000};
}

std::vector<int64_t> epoch_order(DeviceDataset& d, uint64_t seed, int64_t epoch, int64_t batch_size) {
  d.start_epoch(seed, epoch);
  std::vector<int64_t> order;
  for (int64_t b = 0; b < d.num_batches(batch_size); ++b) {
    const auto batch = d.batch(b, batch_size);
    CHECK(at::equal(batch.targets, batch.inputs + 1000));  // inputs and targets stay paired
    for (int64_t r = 0; r < batch.inputs.size(0); ++r) order.push_back(batch.inputs[r][0].item<int64_t>());
  }
  return order;
}
}  // namespace

TEST_CASE("dataset: every example once per epoch, in a seeded order", "[dataset]") {
  DeviceDataset d(numbered(103), c10::Device(c10::kCPU));
  CHECK(d.num_batches(10) == 11);  // the last batch holds 3
  const auto a = epoch_order(d, 7, 0, 10);
  CHECK(std::set<int64_t>(a.begin(), a.end()).size() == 103);
  CHECK(a.size() == 103);
  CHECK(a == epoch_order(d, 7, 0, 10));  // same seed and epoch: same order
  CHECK(a != epoch_order(d, 7, 1, 10));  // next epoch: reshuffled
  CHECK(a != epoch_order(d, 8, 0, 10));
  d.start_epoch(7, 0, /*shuffle=*/false);
  CHECK(d.batch(0, 10).inputs[3][0].item<int64_t>() == 3);
  CHECK_THROWS_AS(d.batch(11, 10), std::out_of_range);
}
