#pragma once
// Task parameters as named strings, checked against a task's declared list and read with typed
// getters whose errors name the task, the parameter and what was expected. Names are snake_case
// here and in config files; the command line spells them --kebab-case.

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace deltabench::tasks {

// A user's mistake in a task's parameters: the message names the parameter and the constraint.
struct TaskError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// Upper bounds on every task's sizes: far above any published setting (Zoology: vocabulary 8192,
// L <= 2048, 100k examples; MAD: vocabulary <= 64, L <= 1024), and low enough that a typo
// (vocab_size = 1e9) is an error naming the parameter instead of gigabytes allocated without a word.
inline constexpr int64_t kMaxVocabSize = 1 << 20;
inline constexpr int64_t kMaxSeqLen = 1 << 17;
inline constexpr int64_t kMaxExamples = 10'000'000;
inline constexpr int64_t kMaxTokens = int64_t{1} << 31;  // examples x seq_len, per split

// "<name> must be <= <max> (got <value>)" unless value <= max.
void check_at_most(const std::string& task, const std::string& name, int64_t value, int64_t max);

struct ParamSpec {
  std::string name;           // snake_case
  std::string default_value;  // as it would be written on the command line
  std::string help;
};

class Params {
 public:
  // Unknown names are a TaskError that lists the known ones.
  Params(std::string task, const std::vector<ParamSpec>& specs, const std::map<std::string, std::string>& given);

  int64_t integer(const std::string& name) const;
  double real(const std::string& name) const;
  bool flag(const std::string& name) const;  // on/off, true/false, 1/0
  const std::string& text(const std::string& name) const;
  const std::string& task() const { return task_; }
  const std::map<std::string, std::string>& values() const { return values_; }

  // Throws TaskError("<task>: <message>") when `ok` is false.
  void require(bool ok, const std::string& message) const;

 private:
  std::string task_;
  std::map<std::string, std::string> values_;
};

}  // namespace deltabench::tasks
