#include "tasks/params.h"

#include <cmath>
#include <string>

namespace deltabench::tasks {

Params::Params(std::string task, const std::vector<ParamSpec>& specs,
               const std::map<std::string, std::string>& given)
    : task_(std::move(task)) {
  for (const auto& spec : specs) values_[spec.name] = spec.default_value;
  for (const auto& [name, value] : given) {
    if (!values_.contains(name)) {
      std::string known;
      for (const auto& spec : specs) known += (known.empty() ? "" : ", ") + spec.name;
      throw TaskError(task_ + ": unknown parameter '" + name + "' (known: " + known + ")");
    }
    values_[name] = value;
  }
}

const std::string& Params::text(const std::string& name) const {
  const auto it = values_.find(name);
  if (it == values_.end()) throw TaskError(task_ + ": no parameter '" + name + "'");
  return it->second;
}

int64_t Params::integer(const std::string& name) const {
  const std::string& s = text(name);
  size_t used = 0;
  int64_t value = 0;
  try {
    value = std::stoll(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != s.size()) {
    throw TaskError(task_ + ": " + name + " must be an integer, got '" + s + "'");
  }
  return value;
}

double Params::real(const std::string& name) const {
  const std::string& s = text(name);
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != s.size() || !std::isfinite(value)) {
    throw TaskError(task_ + ": " + name + " must be a finite number, got '" + s + "'");
  }
  return value;
}

bool Params::flag(const std::string& name) const {
  const std::string& s = text(name);
  if (s == "on" || s == "true" || s == "1") return true;
  if (s == "off" || s == "false" || s == "0") return false;
  throw TaskError(task_ + ": " + name + " must be on or off, got '" + s + "'");
}

void check_at_most(const std::string& task, const std::string& name, int64_t value, int64_t max) {
  if (value > max) {
    throw TaskError(task + ": " + name + " must be <= " + std::to_string(max) + " (got " + std::to_string(value) + ")");
  }
}

void Params::require(bool ok, const std::string& message) const {
  if (!ok) throw TaskError(task_ + ": " + message);
}

}  // namespace deltabench::tasks
