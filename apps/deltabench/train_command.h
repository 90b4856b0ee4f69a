#pragma once
// `deltabench train CONFIG`: one experiment, with progress, per-epoch JSON lines and a summary.

#include <CLI/CLI.hpp>

namespace deltabench::app {

void add_train_command(CLI::App& app, int& status);

}  // namespace deltabench::app
