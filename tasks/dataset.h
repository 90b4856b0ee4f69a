#pragma once
// A task's data on the training device, served as shuffled batches. Each epoch's order is a
// permutation drawn on the CPU from (seed, epoch) and copied to the device once, so CPU and GPU
// runs see the same batches and a training step does no host work to get its batch.

#include "tasks/task.h"

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>

namespace deltabench::tasks {

struct Batch {
  at::Tensor inputs;   // [b, L] int64 on the device
  at::Tensor targets;  // [b, L]
};

// The most positions that carry a target (not kIgnoreIndex) in any one example: targets [N, L].
int64_t max_scored_positions(const at::Tensor& targets);

// Each example's positions that carry a target, in order, followed by unscored ones: targets [b, L]
// -> [b, count] int64 on targets' device. Static shapes and no host synchronisation: a training step
// gathers its scored positions with it, so that the LM head and the loss run only where a target is
// (MQAR scores num_kv_pairs of L positions) and the step can be captured.
at::Tensor scored_positions(const at::Tensor& targets, int64_t count);

class DeviceDataset {
 public:
  DeviceDataset(const TaskData& data, const c10::Device& device);

  int64_t size() const { return inputs_.size(0); }
  int64_t seq_len() const { return inputs_.size(1); }
  const TaskData& data() const { return data_; }

  // Batches per epoch; the last batch may be smaller.
  int64_t num_batches(int64_t batch_size) const { return (size() + batch_size - 1) / batch_size; }

  // Draws the order of epoch `epoch` (shuffled with `seed`, or in order when `shuffle` is false).
  void start_epoch(uint64_t seed, int64_t epoch, bool shuffle = true);

  // Batch i of the current epoch: device-side gathers only.
  Batch batch(int64_t i, int64_t batch_size) const;

 private:
  TaskData data_;     // on the device
  at::Tensor inputs_, targets_;
  at::Tensor order_;  // [N] int64 on the device
};

}  // namespace deltabench::tasks
