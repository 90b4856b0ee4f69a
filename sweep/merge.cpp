#include "sweep/merge.h"

#include "sweep/record_json.h"

#include <fmt/core.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <tuple>
#include <utility>

namespace deltabench::sweep {
namespace {

auto result_of(const RunRecord& r) {
  return std::tie(r.status, r.best_accuracy, r.final_accuracy, r.best_epoch, r.epochs, r.steps, r.diverged_step);
}

std::string describe(const RunRecord& r) {
  return fmt::format("{} (best accuracy {:.6g} at epoch {}, final {:.6g}, {} epochs, {} steps)", r.status,
                     r.best_accuracy, r.best_epoch, r.final_accuracy, r.epochs, r.steps);
}

struct Taken {
  RunRecord record;
  std::string from;  // the input it came from
};

}  // namespace

MergeSummary merge_stores(const std::vector<std::string>& inputs, const std::string& out) {
  namespace fs = std::filesystem;
  if (inputs.empty()) throw StoreError("store merge: no input stores given");
  if (out.empty()) throw StoreError("store merge: no output given (-o FILE)");
  if (out.ends_with(".json")) {
    throw StoreError("store merge: -o " + out + ": the output is a results store (SQLite); name it *.sqlite (`deltabench "
                     "runs export --format json` writes an export of it)");
  }
  const fs::path target(out), partial(out + ".partial");
  for (const auto& side : {out + "-wal", out + "-shm"}) {
    if (fs::exists(side) && std::find(inputs.begin(), inputs.end(), out) == inputs.end()) {
      throw StoreError(fmt::format("store merge: {} exists: a process may still be writing {}; stop it, or merge "
                                   "into another file", side, out));
    }
  }
  // (suite, hash) -> the record kept; the inputs are read whole before the output is written.
  std::map<std::pair<std::string, std::string>, Taken> kept;
  MergeSummary summary;
  std::set<std::string> seen_inputs;
  for (const auto& path : inputs) {
    if (!seen_inputs.insert(fs::weakly_canonical(path).string()).second) {
      throw StoreError(fmt::format("store merge: {} is given twice", path));
    }
    // A store, or a runs export (`runs export --format json`: a committed results/<suite>/runs.json).
    std::map<std::pair<std::string, std::string>, RunRecord> records;
    if (path.ends_with(".json")) {
      records = read_all_runs_json(path);
    } else {
      const Store store(path, Store::Open::kExisting);
      for (const auto& suite : store.suites()) {
        for (auto& [hash, record] : store.runs(suite, /*with_history=*/true)) {
          records.emplace(std::make_pair(suite, hash), std::move(record));
        }
      }
    }
    for (auto& [key, record] : records) {
      const auto& suite = key.first;
      const auto it = kept.find(key);
      if (it == kept.end()) {
        kept.emplace(key, Taken{std::move(record), path});
        continue;
      }
      ++summary.duplicates;
      auto& have = it->second;
      const bool have_failed = have.record.status == "failed", new_failed = record.status == "failed";
      if (have_failed != new_failed) {
        if (have_failed) have = Taken{record, path};  // retried and finished: the finished record
        continue;
      }
      if (!have_failed && result_of(have.record) != result_of(record)) {
        throw StoreError(fmt::format(
            "store merge: run {} of suite {} (hash {}) has different results in {}: {} and in {}: {}; nothing "
            "was written",
            record.id, suite, key.second, have.from, describe(have.record), path, describe(record)));
      }
      if (record.finished_at > have.record.finished_at) have = Taken{record, path};
    }
  }
  std::error_code ignored;
  for (const auto& p : {partial, fs::path(partial.string() + "-wal"), fs::path(partial.string() + "-shm")}) {
    fs::remove(p, ignored);  // a killed merge's leftovers
  }
  {
    Store merged(partial.string(), Store::Open::kCreate);
    std::set<std::string> suites;
    for (const auto& [key, taken] : kept) {
      merged.record(taken.record);
      suites.insert(key.first);
    }
    summary.suites.assign(suites.begin(), suites.end());
    summary.runs = static_cast<int64_t>(kept.size());
  }  // closing the last connection folds the WAL into the file
  if (fs::exists(partial.string() + "-wal")) {
    throw StoreError(fmt::format("store merge: {} kept its write-ahead log; {} was not replaced", partial.string(), out));
  }
  fs::remove(fs::path(out + "-shm"), ignored);
  fs::rename(partial, target);
  return summary;
}

}  // namespace deltabench::sweep
