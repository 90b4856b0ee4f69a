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

namespace {

// MQAR's or a MAD task's validated parameters.
struct Resolved {
  bool mqar = false;
  MqarParams mqar_params;
  MadParams mad_params;
};

Resolved resolve(std::string_view name, const std::map<std::string, std::string>& given) {
  const TaskInfo& info = find_task(name);
  const Params params(info.name, info.params, given);
  Resolved r;
  if (info.name == "mqar") {
    r.mqar = true;
    r.mqar_params = mqar_params(params);
    return r;
  }
  for (const MadTask task : kMadTasks) {
    if (mad_task_name(task) == info.name) {
      r.mad_params = mad_params(task, params);
      return r;
    }
  }
  throw TaskError("no generator for task '" + info.name + "'");
}

}  // namespace

void validate_task_params(std::string_view name, const std::map<std::string, std::string>& params) {
  resolve(name, params);
}

int64_t task_vocab_size(std::string_view name, const std::map<std::string, std::string>& params) {
  const auto r = resolve(name, params);
  return r.mqar ? r.mqar_params.vocab_size : r.mad_params.vocab_size;
}

int64_t task_sequence_length(std::string_view name, const std::map<std::string, std::string>& params) {
  const auto r = resolve(name, params);
  return r.mqar ? r.mqar_params.seq_len : mad_example_length(r.mad_params);
}

TaskData generate_task(std::string_view name, const std::map<std::string, std::string>& given, Split split,
                       uint64_t seed) {
  const auto r = resolve(name, given);
  if (r.mqar) return make_mqar(r.mqar_params, seed);
  auto splits = make_mad(r.mad_params, seed);
  return split == Split::kTrain ? std::move(splits.train) : std::move(splits.test);
}

}  // namespace deltabench::tasks
