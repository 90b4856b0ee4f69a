#pragma once
// Tables and plots of a suite from the results store, as the papers print them:
//   - MQAR tasks: accuracy by model x d_model for each task (sequence length), and Zoology's figure
//     (accuracy vs d_model, one panel per task, one line per model);
//   - MAD tasks: the DeltaNet paper's table (models x tasks with the average), with the published
//     numbers beside;
//   - an "ablations" suite: one row per model variant (switch setting), one column per task.
// A cell is the final test accuracy, averaged over seeds, then maximised over the suite's `select`
// axes; a cell with runs missing from the store says how many, instead of printing a number.

#include "report/format.h"
#include "sweep/store.h"
#include "sweep/suite.h"

#include <map>
#include <string>
#include <vector>

namespace deltabench::report {

using Records = std::map<std::string, sweep::RunRecord>;  // by config hash, as Store::runs returns

// The Markdown report (what table.md holds).
std::string render_markdown(const sweep::Suite& suite, const Records& records);

// table.md, table.tex, table.csv and, for MQAR tasks, mqar.{dat,gp,png,svg} under `out_dir`.
// Plots are rendered with `gnuplot` when it is on PATH; otherwise the script is left with a warning.
Written write_report(const sweep::Suite& suite, const Records& records, const std::string& out_dir);

// Loss and accuracy per epoch of one run (`run` is a run id or a prefix of its hash):
// curves-<hash>.{dat,gp,png,svg} under `out_dir`.
Written write_curves(const sweep::Suite& suite, const Records& records_with_history, const std::string& run,
                     const std::string& out_dir);

}  // namespace deltabench::report
