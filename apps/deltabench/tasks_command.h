#pragma once
// `deltabench tasks list | show | export`: look at the synthetic tasks and share their data.

#include <CLI/CLI.hpp>

namespace deltabench::app {

// Adds the `tasks` subcommand to `app`; its callbacks set `status` to the exit code.
void add_tasks_command(CLI::App& app, int& status);

}  // namespace deltabench::app
