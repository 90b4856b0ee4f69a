#pragma once

#include "sweep/process.h"
// Golden files: a test's output against a file under tests/fixtures. DELTABENCH_UPDATE_GOLDEN=1
// rewrites the file from this run instead; a mismatch leaves the run's output beside it as .actual.

#include "tests/support/catch.h"

#include <cstdlib>
#include <filesystem>
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

// The figure a report writer drew with gnuplot: <dir>/<stem>.png, a real PNG, and <stem>.svg naming
// `label`. Where gnuplot is missing the writer must have warned once per figure instead (`warnings`:
// its count; `figures`: how many figures it draws in all).
inline void check_figure(const std::filesystem::path& dir, const std::string& stem, size_t warnings,
                         const std::string& label, size_t figures = 1) {
  if (!sweep::on_path("gnuplot")) {
    CHECK(warnings == figures);
    return;
  }
  CHECK(warnings == 0);
  const auto png = read_file((dir / (stem + ".png")).string());
  REQUIRE(png.size() > 1000);
  CHECK(png.substr(0, 8) == "\x89PNG\r\n\x1a\n");
  const auto svg = read_file((dir / (stem + ".svg")).string());
  CHECK(svg.find("<svg") != std::string::npos);
  CHECK(svg.find(label) != std::string::npos);
}

}  // namespace deltabench::testing
