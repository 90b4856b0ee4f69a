#pragma once
// Doubles in the JSON that deltabench writes (metrics files, resume states, runs exports): finite values
// at full precision (nlohmann-json writes the shortest text that reads back the same), NaN and the
// infinities as null, which read back as NaN.

#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>

namespace deltabench::train {

inline nlohmann::json json_number(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); }

inline double number_from_json(const nlohmann::json& j) {
  return j.is_null() ? std::numeric_limits<double>::quiet_NaN() : j.get<double>();
}

}  // namespace deltabench::train
