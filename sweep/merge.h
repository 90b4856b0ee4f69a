#pragma once
// Combining results stores: one per Slurm array task (or per host) into one, since SQLite on a network
// file system is not safe for several writers. `deltabench store merge a.sqlite b.sqlite -o all.sqlite`.
//
// An input named *.json is a runs export (`deltabench runs export --format json`, such as a committed
// results/<suite>/runs.json): a suite's windows on a GPU machine go on from the committed export.
//
// Every finished run of every input is kept once per (suite, run hash), with its epochs; claims (the
// leases of processes training a run) are not results and are left out. Where inputs hold the same run:
//   - the same result (status, accuracies, best epoch, epochs, steps, divergence step): the record that
//     finished last is kept (merging again, or merging the output with an input, changes nothing);
//   - a failed record beside a finished one: the finished one (the run was retried and succeeded);
//   - different results: an error naming the run, both files and both results, and no output.
// The output is written as <out>.partial and renamed to <out> only when complete, so a merge killed
// midway leaves <out> as it was (or absent) and a file whose name says it is partial.

#include "sweep/store.h"

#include <string>
#include <vector>

namespace deltabench::sweep {

struct MergeSummary {
  int64_t runs = 0;        // runs in the output
  int64_t duplicates = 0;  // records that were the same run as one already taken
  std::vector<std::string> suites;
};

MergeSummary merge_stores(const std::vector<std::string>& inputs, const std::string& out);

}  // namespace deltabench::sweep
