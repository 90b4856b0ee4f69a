#include "tasks/mad_settings.h"

#include "tasks/params.h"

#include <utility>

namespace deltabench::tasks {
namespace {

struct TaskGrid {
  MadTask task;
  std::map<std::string, std::string> baseline;
  std::vector<std::pair<std::string, std::vector<std::string>>> changes;  // in mad-lab's order
};

const std::vector<std::string> kTrainSizes = {"6400", "3200", "1600", "800"};

std::vector<TaskGrid> grids() {
  return {
      {MadTask::kInContextRecall,
       {{"vocab_size", "16"}, {"seq_len", "128"}, {"num_train_examples", "12800"}},
       {{"vocab_size", {"32", "64", "128"}}, {"seq_len", {"256", "512", "1024"}}, {"num_train_examples", kTrainSizes}}},
      {MadTask::kNoisyInContextRecall,
       {{"vocab_size", "32"}, {"noise_vocab_size", "16"}, {"seq_len", "128"}, {"num_train_examples", "12800"},
        {"frac_noise", "0.2"}},
       {{"vocab_size", {"48", "80", "144"}},  // mad-lab: "adding 16 for noise vocab"
        {"seq_len", {"256", "512", "1024"}},
        {"num_train_examples", kTrainSizes},
        {"frac_noise", {"0.4", "0.6", "0.8"}}}},
      {MadTask::kFuzzyInContextRecall,
       {{"vocab_size", "16"}, {"seq_len", "128"}, {"num_train_examples", "12800"}, {"k_motif_size", "3"},
        {"v_motif_size", "3"}},
       {{"vocab_size", {"32", "64", "128"}}, {"seq_len", {"256", "512", "1024"}}, {"num_train_examples", kTrainSizes}}},
      {MadTask::kSelectiveCopying,
       {{"vocab_size", "16"}, {"seq_len", "256"}, {"num_train_examples", "12800"}, {"num_tokens_to_copy", "16"}},
       {{"vocab_size", {"32", "64", "128"}},
        {"seq_len", {"512", "1024"}},
        {"num_train_examples", kTrainSizes},
        {"num_tokens_to_copy", {"32", "64", "96"}}}},
      {MadTask::kCompression,
       {{"vocab_size", "16"}, {"seq_len", "32"}, {"num_train_examples", "12800"}},
       {{"vocab_size", {"32", "64", "128"}}, {"seq_len", {"64", "128", "256"}}, {"num_train_examples", kTrainSizes}}},
      {MadTask::kMemorization,
       {{"vocab_size", "256"}, {"seq_len", "32"}, {"num_train_examples", "256"}},
       {{"vocab_size", {"512", "1024", "2048", "4096", "8192"}}}},
  };
}

std::vector<MadSetting> build(MadProtocol protocol) {
  std::vector<MadSetting> out;
  for (const auto& grid : grids()) {
    const std::string task(mad_task_name(grid.task));
    out.push_back({task + ":baseline", grid.task, grid.baseline});
    for (const auto& [param, values] : grid.changes) {
      for (const auto& value : values) {
        auto params = grid.baseline;
        params[param] = value;
        if (protocol == MadProtocol::kPublished && param == "num_tokens_to_copy") {
          params["pass_num_tokens_to_copy"] = "false";
        }
        out.push_back({task + ":" + param + "=" + value, grid.task, params});
      }
    }
  }
  return out;
}

}  // namespace

std::string_view mad_protocol_name(MadProtocol protocol) {
  return protocol == MadProtocol::kPublished ? "published" : "fixed";
}

const std::vector<MadSetting>& mad_settings(MadProtocol protocol) {
  static const std::vector<MadSetting> published = build(MadProtocol::kPublished), fixed = build(MadProtocol::kFixed);
  return protocol == MadProtocol::kPublished ? published : fixed;
}

const MadSetting& find_mad_setting(std::string_view name, MadProtocol protocol) {
  for (const auto& s : mad_settings(protocol)) {
    if (s.name == name) return s;
  }
  throw TaskError("unknown MAD setting '" + std::string(name) +
                  "' (66 settings, e.g. in-context-recall:baseline, noisy-in-context-recall:frac_noise=0.4; "
                  "`deltabench tasks list` shows them all)");
}

}  // namespace deltabench::tasks
