#pragma once
// One experiment as a config file: the task and its data, the model with every switch, and the
// training protocol. Unknown keys, keys that do not apply to the chosen mixer, and bad values are
// ConfigErrors naming the file, the line, the key and what was expected.

#include "models/config.h"
#include "train/placement.h"
#include "train/toml.h"

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>

namespace deltabench::train {

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct TaskConfig {
  std::string name;                           // a task of tasks/registry.h
  std::map<std::string, std::string> params;  // its parameters, as the registry takes them
  int64_t train_examples = 0;                 // MQAR: the train set's num_examples; MAD: num_train_examples
  int64_t test_examples = 0;
  uint64_t train_seed = 0;                    // MQAR: Zoology's paper era used 0 and 10; MAD: its stream's seed
  uint64_t test_seed = 10;                    // MQAR only
};

// The train and test example counts `task` will generate (its own keys or the task's defaults).
std::pair<int64_t, int64_t> example_counts(const TaskConfig& task);

struct TrainConfig {
  int64_t epochs = 10;
  int64_t batch_size = 64;
  int64_t eval_batch_size = 0;  // 0: batch_size (MAD's macro accuracy is averaged per batch)
  double lr = 1e-3;
  double min_lr = 0.0;          // the cosine schedule's floor
  int64_t warmup_epochs = 0;    // linear warmup, per epoch like the schedule
  double weight_decay = 0.1;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double grad_clip = 1.0;       // max global norm; 0: off
  double early_stop = 0.99;     // stop once test accuracy reaches it; 0: off
  std::string precision = "auto";  // auto: bf16 autocast on CUDA, fp32 on CPU; or fp32
  // Where it trains ([train] device, checkpoint) is a Placement (train/placement.h), not identity.
};

struct ExperimentConfig {
  std::string hash;    // run_hash of the canonical TOML of what it trains (placement keys left out)
  std::string name;    // the file's stem unless given
  std::string source;  // the file it came from
  uint64_t seed = 123; // model initialisation, dropout and batch order
  TaskConfig task;
  models::ModelConfig model;
  TrainConfig train;
};

// `placement`, when given, receives [train] device and checkpoint with their origin (file, line,
// key); without it those keys are an error (a suite's runs take their placement from the suite).
ExperimentConfig load_experiment(const std::string& path, Placement* placement = nullptr);
ExperimentConfig parse_experiment(const std::string& text, const std::string& source, Placement* placement = nullptr);
// From an already parsed file (a suite builds each run's table from its base and overrides).
ExperimentConfig build_experiment(const toml::Table& root, const std::string& source, Placement* placement = nullptr);

// 64-bit FNV-1a of `text` as 16 hex digits.
std::string fnv1a_hex(const std::string& text);

// The version of what a config means, part of every run's hash: raised whenever the same config would
// train something else (the model's initialisation, a task's data, a metric), so that a resumed store
// never passes a run of the old code off as one of the new. The stores keep each run's commit besides.
//   1: until 2026-12-04 (no prefix in the hash).
//   2: short convolutions drawn from N(0, 0.02) as FLA's models; memorization's map from the data's seed;
//      MAD's selective-copying settings under the published protocol.
inline constexpr int kRunProtocol = 2;

// A run's identity: fnv1a_hex of "deltabench-run-protocol <kRunProtocol>" and the canonical TOML.
std::string run_hash(const std::string& canonical_toml);

// Keys of [train] that say where a run trains, not what it trains.
inline constexpr const char* kPlacementKeys[] = {"device", "backend", "recompute", "checkpoint"};

}  // namespace deltabench::train
