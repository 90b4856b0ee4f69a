#pragma once
// `deltabench runs list|show|export`: the results store without SQL. Filters by suite, status,
// model and task; per-run and per-epoch rows as a table, CSV or JSON (nlohmann-json: escaped strings,
// doubles at full precision).

#include <CLI/CLI.hpp>

namespace deltabench::app {

void add_runs_command(CLI::App& app, int& status);

}  // namespace deltabench::app
