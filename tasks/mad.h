#pragma once
// MAD's six synthetic tasks with mad-lab's semantics (../shared/reference/tasks.md, section 3),
// drawn from deltabench's own seeded generator (tasks/rng.h). Where a mad-lab quirk is kept on
// purpose, tasks/README.md says so.

#include "tasks/params.h"
#include "tasks/task.h"

#include <cstdint>
#include <string_view>
#include <vector>

namespace deltabench::tasks {

enum class MadTask {
  kInContextRecall,
  kNoisyInContextRecall,
  kFuzzyInContextRecall,
  kSelectiveCopying,
  kCompression,
  kMemorization,
};
// The tokens selective copying copied in mad-lab before 35772e8, whatever the setting said: the
// generator's default (MadParams::pass_num_tokens_to_copy).
inline constexpr int64_t kMadLabCopies = 16;

inline constexpr MadTask kMadTasks[] = {MadTask::kInContextRecall, MadTask::kNoisyInContextRecall,
                                        MadTask::kFuzzyInContextRecall, MadTask::kSelectiveCopying,
                                        MadTask::kCompression, MadTask::kMemorization};

std::string_view mad_task_name(MadTask task);  // mad-lab's names: "in-context-recall", ...

struct MadParams {
  MadTask task = MadTask::kInContextRecall;
  int64_t vocab_size = 16;
  int64_t seq_len = 128;
  int64_t num_train_examples = 12800;
  int64_t num_test_examples = 1280;
  double frac_noise = 0.0;
  int64_t noise_vocab_size = 0;
  int64_t k_motif_size = 1;         // fuzzy recall
  int64_t v_motif_size = 1;         // fuzzy recall
  int64_t num_tokens_to_copy = 16;  // selective copying
  // false: copy kMadLabCopies tokens whatever num_tokens_to_copy says, as mad-lab's MADConfig did until
  // commit 35772e8 (December 2024; mad-lab issue #7): the generator never received the setting, and the
  // benchmark data (Zenodo 10843663, March 2024) and the published MAD numbers predate the fix.
  bool pass_num_tokens_to_copy = true;
};

// Each task's parameters, with the defaults of its MAD baseline.
const std::vector<ParamSpec>& mad_param_specs(MadTask task);
MadParams mad_params(MadTask task, const Params& params);

// Throws TaskError naming the parameter and the constraint.
void validate(const MadParams& params);

// Length of every example's inputs and targets (in-context and noisy recall: seq_len - 1).
int64_t mad_example_length(const MadParams& params);

struct MadSplits {
  TaskData train;  // recall tasks: full next-token targets
  TaskData test;   // recall tasks: targets only where a value is recalled
};

// Train then test from one seeded stream, as mad-lab draws them.
MadSplits make_mad(const MadParams& params, uint64_t seed);

}  // namespace deltabench::tasks
