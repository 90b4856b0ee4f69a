#pragma once
// `deltabench run SUITE`: the grid, resumable, sharded, into the results store, ending in the report.
// `deltabench report SUITE`: tables and plots of what the store holds, and training curves on request.
// `deltabench kernel-report CSV`: the CUDA kernels' tables and throughput curves (report/kernels.h).

#include <CLI/CLI.hpp>

namespace deltabench::app {

void add_suite_commands(CLI::App& app, int& status);

}  // namespace deltabench::app
