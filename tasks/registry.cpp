#include "tasks/registry.h"

#include "tasks/mad.h"
#include "tasks/mqar.h"

namespace deltabench::tasks {

const std::vector<TaskInfo>& task_infos() {
  static const std::vector<TaskInfo> infos = [] {
    std::vector<TaskInfo> out = {{"mqar", "multi-query associative recall (Zoology's multiquery_ar)",
                                  mqar_param_specs(), false}};
    const std::map<MadTask, std::string> summaries = {
        {MadTask::kInContextRecall, "MAD in-context recall (multi-query)"},
        {MadTask::kNoisyInContextRecall, "MAD noisy in-context recall"},
        {MadTask::kFuzzyInContextRecall, "MAD fuzzy in-context recall (multi-token keys and values)"},
        {MadTask::kSelectiveCopying, "MAD selective copying"},
        {MadTask::kCompression, "MAD compression (targets are the inputs)"},
        {MadTask::kMemorization, "MAD memorization (one fixed key-value map)"},
    };
    for (const MadTask task : kMadTasks) {
      out.push_back({std::string(mad_task_name(task)), summaries.at(task), mad_param_specs(task), true});
    }
    return out;
  }();
  return infos;
}

const TaskInfo& find_task(std::string_view name) {
  std::string known;
  for (const auto& info : task_infos()) {
    if (info.name == name) return info;
    known += (known.empty() ? "" : ", ") + info.name;
  }
  throw TaskError("unknown task '" + std::string(name) + "' (known: " + known + ")");
}

TaskData generate_task(std::string_view name, const std::map<std::string, std::string>& given, Split split,
                       uint64_t seed) {
  const TaskInfo& info = find_task(name);
  const Params params(info.name, info.params, given);
  if (info.name == "mqar") return make_mqar(mqar_params(params), seed);
  for (const MadTask task : kMadTasks) {
    if (mad_task_name(task) == info.name) {
      auto splits = make_mad(mad_params(task, params), seed);
      return split == Split::kTrain ? std::move(splits.train) : std::move(splits.test);
    }
  }
  throw TaskError("no generator for task '" + info.name + "'");
}

}  // namespace deltabench::tasks
