#pragma once
// The source tree a test reads its fixtures and configs from: DELTABENCH_SOURCE_DIR from the environment where
// set, else the tree the test was built from. A binary built on one machine and run on another (the GPU
// machine's prebuilt tests, scripts/device_prebuild.sh) finds the files in the tree it runs beside.

#include <cstdlib>
#include <string>

namespace deltabench::testing {

inline std::string source_dir() {
  if (const char* given = std::getenv("DELTABENCH_SOURCE_DIR"); given && *given) return given;
  return DELTABENCH_SOURCE_DIR;
}

}  // namespace deltabench::testing
