#pragma once
// `deltabench smoke`: every reference op once on one shape, timed, and checked against the fp64
// recurrent definition (the main job is now `deltabench run quick`).

#include <c10/core/Device.h>

#include <cstdint>
#include <string>

namespace deltabench::app {

struct SmokeOptions {
  std::string device = "cpu";
  int64_t batch = 4, seq_len = 512, heads = 4, head_dim = 64, chunk_size = 64;
  int repeats = 3;
  uint64_t seed = 0;
};

// Prints the table; returns false when an op's error against the fp64 definition exceeds 1e-4.
bool run_smoke(const SmokeOptions& options);

}  // namespace deltabench::app
