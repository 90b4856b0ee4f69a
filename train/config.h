#pragma once
// One experiment as a config file: the task and its data, the model with every switch, and the
// training protocol. Unknown keys, keys that do not apply to the chosen mixer, and bad values are
// ConfigErrors naming the file, the line, the key and what was expected.

#include "models/config.h"
#include "train/toml.h"

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>

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
  std::string device = "cpu";
  std::string precision = "auto";  // auto: bf16 autocast on CUDA, fp32 on CPU; or fp32
  std::string checkpoint;          // a directory; empty: none
};

struct ExperimentConfig {
  std::string name;    // the file's stem unless given
  std::string source;  // the file it came from
  uint64_t seed = 123; // model initialisation, dropout and batch order
  TaskConfig task;
  models::ModelConfig model;
  TrainConfig train;
};

ExperimentConfig load_experiment(const std::string& path);
ExperimentConfig parse_experiment(const std::string& text, const std::string& source);
// From an already parsed file (a suite builds each run's table from its base and overrides).
ExperimentConfig build_experiment(const toml::Table& root, const std::string& source);

}  // namespace deltabench::train
