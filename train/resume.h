#pragma once
// A run's state at the end of an epoch, so that a run that is killed (a Slurm preemption, the end of
// a GPU window, a lost machine) goes on from its last saved epoch instead of from its first.
//
// One file, <dir>/state.pt (torch::save of a tensor list): the model's parameters and buffers, AdamW's
// moments and step counts, the random generators' states (CPU, and the run's CUDA device), and the
// trainer's progress as JSON bytes (epochs done, steps, tokens, time, the epoch history, every step's
// loss, the op-backend counts, the config hash, the total epochs and the commit). It is written to
// state.pt.partial and renamed over state.pt, so a kill while saving leaves the previous state whole.
//
// Resuming restores all of it: on the CPU a resumed run's losses and metrics equal the uninterrupted
// run's bit for bit (tests/train/resume_test.cpp); on CUDA they are the same computation, as
// deterministic as the kernels are. A state from another config hash, another epoch count, another
// commit or another kind of device (CPU or CUDA) is not used: the run starts over and the trainer says why.
// Another commit's is used where asked (TrainOptions::resume_any_commit, `run --resume-any-commit`), and the
// run's record names that commit.

#include "kernels/common/backend.h"
#include "models/language_model.h"
#include "models/pieces.h"
#include "train/step.h"
#include "train/trainer.h"

#include <c10/core/Device.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace deltabench::train {

struct ResumeState {
  std::string config_hash, commit;  // commit: where this state was saved
  // The commits the run trained at, each with the first epoch (1-based) it trained there, in order; its last is
  // `commit`. Read as one stretch at `commit` from states saved before it was kept.
  std::vector<std::pair<int64_t, std::string>> commits;
  int64_t total_epochs = 0;  // the run's [train] epochs (after any override): the schedule depends on it
  int64_t epochs_done = 0;   // completed epochs, each trained and evaluated
  int64_t tokens = 0;        // training tokens so far
  RunSummary summary;        // status "completed", steps, history, step_losses, best and final accuracy, wall_s
  BackendCounts train_calls, eval_calls;
  models::PieceCounts train_pieces;  // the pieces' forms in training so far (models/pieces.h)
};

// Writes <dir>/state.pt (creating dir), atomically. Throws std::runtime_error naming the path on failure.
void save_resume_state(const std::filesystem::path& dir, const ResumeState& state, models::LanguageModel& model,
                       const FusedAdamW& optimizer, const at::Device& device);

// The state in <dir>/state.pt, restored into `model`, `optimizer` and the random generators, when it
// exists and matches `config_hash`, `total_epochs`, `commit` and the kind of `device`; nullopt otherwise, with the reason in
// `*why_not` (empty when there is no state). With `any_commit` a state saved at another commit is taken too (its
// `commit` says which: the caller records it), for runs that outlast the code they started on, such as a GPU
// window's carried to the next session's. A state that matches but cannot be read (another
// model's shapes, a damaged file) throws std::runtime_error naming the file.
std::optional<ResumeState> load_resume_state(const std::filesystem::path& dir, const std::string& config_hash,
                                             int64_t total_epochs, const std::string& commit, bool any_commit,
                                             models::LanguageModel& model, FusedAdamW& optimizer,
                                             const at::Device& device, std::string* why_not);

}  // namespace deltabench::train
