#pragma once
// Validators for the command line whose messages a person can read: "--epochs: expected an integer
// >= 1, got 0" rather than CLI11's PositiveNumber range, which prints the largest double in full.

#include <CLI/CLI.hpp>

#include <charconv>
#include <cstdint>
#include <string>

namespace deltabench::app {

inline CLI::Validator integer_at_least(int64_t min, int64_t max = INT64_MAX) {
  const std::string range = max == INT64_MAX ? ">= " + std::to_string(min)
                                             : "in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
  return CLI::Validator(
      [min, max, range](std::string& text) -> std::string {
        int64_t value = 0;
        const auto r = std::from_chars(text.data(), text.data() + text.size(), value);
        if (r.ec != std::errc{} || r.ptr != text.data() + text.size()) return "expected an integer " + range + ", got '" + text + "'";
        if (value < min || value > max) return "expected an integer " + range + ", got " + text;
        return {};
      },
      "INT " + range);
}

}  // namespace deltabench::app
