#include "tasks/dataset.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <stdexcept>
#include <string>

namespace deltabench::tasks {

DeviceDataset::DeviceDataset(const TaskData& data, const c10::Device& device) : data_(data) {
  if (data.inputs.sizes() != data.targets.sizes() || data.inputs.dim() != 2) {
    throw std::invalid_argument("DeviceDataset: inputs and targets must both be [N, L]");
  }
  inputs_ = data.inputs.to(device, at::kLong).contiguous();
  targets_ = data.targets.to(device, at::kLong).contiguous();
  data_.inputs = inputs_;
  data_.targets = targets_;
  start_epoch(0, 0, /*shuffle=*/false);
}

void DeviceDataset::start_epoch(uint64_t seed, int64_t epoch, bool shuffle) {
  const auto cpu_long = at::TensorOptions().dtype(at::kLong);
  if (!shuffle) {
    order_ = at::arange(size(), cpu_long).to(inputs_.device());
    return;
  }
  // One generator per (seed, epoch): an epoch's order does not depend on what ran before it.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed * 1000003ULL + static_cast<uint64_t>(epoch));
  order_ = at::randperm(size(), gen, cpu_long).to(inputs_.device());
}

Batch DeviceDataset::batch(int64_t i, int64_t batch_size) const {
  if (i < 0 || i >= num_batches(batch_size)) {
    throw std::out_of_range("DeviceDataset::batch: index " + std::to_string(i) + " outside [0, " +
                            std::to_string(num_batches(batch_size)) + ")");
  }
  const auto idx = order_.slice(0, i * batch_size, std::min(size(), (i + 1) * batch_size));
  return {inputs_.index_select(0, idx), targets_.index_select(0, idx)};
}

int64_t max_scored_positions(const at::Tensor& targets) {
  if (targets.numel() == 0) return 0;
  return (targets != kIgnoreIndex).sum(1).max().item<int64_t>();
}

at::Tensor scored_positions(const at::Tensor& targets, int64_t count) {
  const int64_t L = targets.size(1);
  // Unscored positions sort after every scored one; within each group, by position. Keys are distinct.
  const auto key = (targets == kIgnoreIndex).to(at::kLong) * L + at::arange(L, targets.options().dtype(at::kLong));
  return std::get<1>(key.sort(1)).narrow(1, 0, count).contiguous();
}

}  // namespace deltabench::tasks
