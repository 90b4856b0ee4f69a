#pragma once
// A stored run as JSON and back. `deltabench runs export --format json` writes every field of each run
// with its epochs; `deltabench report <suite> --store <file>.json` reads such a file in place of a store,
// so that a committed export re-renders a suite's report without training (results/<suite>/runs.json).
// Doubles are written at full precision (NaN and infinities as null), so a report from the export equals
// the report from the store.

#include "sweep/store.h"
#include "train/trainer.h"

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <utility>

namespace deltabench::sweep {

// Every field of the runs table, in the store's order (the config as its canonical TOML text).
nlohmann::ordered_json run_json(const RunRecord& r);
// One epoch of a run, with the run's suite, hash and id.
nlohmann::ordered_json epoch_json(const RunRecord& r, const train::EpochMetrics& e);
// run_json with the run's epochs (their own fields) under "epochs_history".
nlohmann::ordered_json run_json_with_history(const RunRecord& r);

// The runs of `suite` in a JSON export (an array of run_json_with_history objects), keyed by hash as
// Store::runs gives them. Throws StoreError naming the file, the run's position and the key for a file
// that cannot be read, is not such an array, lacks a field or holds a run twice.
std::map<std::string, RunRecord> read_runs_json(const std::string& path, const std::string& suite);
// Every run of every suite in a JSON export, keyed by (suite, hash); the same errors.
std::map<std::pair<std::string, std::string>, RunRecord> read_all_runs_json(const std::string& path);

}  // namespace deltabench::sweep
