#pragma once
// Golden files: a test's output against a file under tests/fixtures. DELTABENCH_UPDATE_GOLDEN=1
// rewrites the file from this run instead; a mismatch leaves the run's output beside it as .actual.

#include "tests/support/catch.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace deltabench::testing {

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void check_golden(const std::string& actual, const std::string& path) {
  if (std::getenv("DELTABENCH_UPDATE_GOLDEN")) std::ofstream(path, std::ios::binary) << actual;
  if (actual != read_file(path)) {
    std::ofstream(path + ".actual", std::ios::binary) << actual;
    FAIL("the output differs from " + path + "; this run's is in " + path + ".actual");
  }
}

}  // namespace deltabench::testing
