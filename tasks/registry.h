#pragma once
// Every task by name, with its parameter list: what `deltabench tasks` and the config files use.

#include "tasks/params.h"
#include "tasks/task.h"

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace deltabench::tasks {

struct TaskInfo {
  std::string name;     // "mqar", "in-context-recall", ...
  std::string summary;  // one line
  std::vector<ParamSpec> params;
  bool has_splits;      // MAD: train and test drawn from one stream; MQAR: one set per seed
};

const std::vector<TaskInfo>& task_infos();
const TaskInfo& find_task(std::string_view name);  // TaskError listing the known names

// Generates `name` with `params` (snake_case names; unknown ones are errors). For MQAR the split is
// ignored: train and test sets come from different seeds.
TaskData generate_task(std::string_view name, const std::map<std::string, std::string>& params, Split split,
                       uint64_t seed);

// Checks `params` against the task without generating anything (TaskError on a bad one).
void validate_task_params(std::string_view name, const std::map<std::string, std::string>& params);

// Vocabulary size and input length L of the data `params` would give.
int64_t task_vocab_size(std::string_view name, const std::map<std::string, std::string>& params);
int64_t task_sequence_length(std::string_view name, const std::map<std::string, std::string>& params);

}  // namespace deltabench::tasks
