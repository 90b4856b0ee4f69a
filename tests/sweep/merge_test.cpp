// Tests sweep/merge.cpp: overlapping stores, conflicts (refused, nothing written), idempotence, a
// retried failure, a killed merge's leftovers, and a runs export (JSON) as an input.

#include "sweep/merge.h"

#include "sweep/record_json.h"

#include "tests/support/catch.h"
#include "tests/support/run_record.h"
#include "tests/support/temp_dir.h"

#include <filesystem>
#include <fstream>
#include <string>

using namespace deltabench;
namespace fs = std::filesystem;

namespace {

// The store tests' run (tests/support/run_record.h), one epoch, finished at `finished` with `status`.
sweep::RunRecord record(const std::string& hash, double accuracy, const std::string& finished = "2026-12-01T00:00:00Z",
                        const std::string& status = "completed") {
  auto r = testing::make_record(hash, accuracy, /*epochs=*/1);
  r.id = "task/model/d16/lr0.001/wd0/s" + hash;
  r.status = status;
  r.finished_at = finished;
  return r;
}

std::string store_with(const fs::path& dir, const std::string& name, const std::vector<sweep::RunRecord>& runs) {
  const auto path = (dir / name).string();
  sweep::Store s(path);
  for (const auto& r : runs) s.record(r);
  return path;
}

std::map<std::string, sweep::RunRecord> runs_of(const std::string& path) {
  return sweep::Store(path, sweep::Store::Open::kExisting).runs("s", true);
}

}  // namespace

TEST_CASE("store merge: every run once, the same run's latest record, epochs along") {
  testing::TempDir dir("deltabench-merge-test");
  const auto a = store_with(dir.path(), "a.sqlite", {record("h1", 0.5), record("h2", 0.6)});
  // h2 again, the same result finished later on another machine; h3 new.
  auto later = record("h2", 0.6, "2026-12-02T00:00:00Z");
  later.device = "cuda:0 (H200)";
  const auto b = store_with(dir.path(), "b.sqlite", {later, record("h3", 0.7)});
  const auto out = (dir.path() / "all.sqlite").string();
  const auto summary = sweep::merge_stores({a, b}, out);
  CHECK(summary.runs == 3);
  CHECK(summary.duplicates == 1);
  CHECK(summary.suites == std::vector<std::string>{"s"});
  const auto merged = runs_of(out);
  REQUIRE(merged.size() == 3);
  CHECK(merged.at("h2").device == "cuda:0 (H200)");
  CHECK(merged.at("h3").history.size() == 1);
  CHECK(merged.at("h3").history[0].accuracy == 0.7);
  CHECK_FALSE(fs::exists(out + ".partial"));
  // Idempotent: merging again, or the output with an input, gives the same runs.
  sweep::merge_stores({a, b}, out);
  CHECK(runs_of(out).size() == 3);
  const auto again = (dir.path() / "again.sqlite").string();
  sweep::merge_stores({out, a}, again);
  const auto twice = runs_of(again);
  REQUIRE(twice.size() == 3);
  for (const auto& [hash, r] : merged) {
    CHECK(twice.at(hash).best_accuracy == r.best_accuracy);
    CHECK(twice.at(hash).finished_at == r.finished_at);
  }
}

TEST_CASE("store merge: different results for one run are refused, and nothing is written") {
  testing::TempDir dir("deltabench-merge-test");
  const auto a = store_with(dir.path(), "a.sqlite", {record("h1", 0.5)});
  const auto b = store_with(dir.path(), "b.sqlite", {record("h1", 0.25)});
  const auto out = (dir.path() / "all.sqlite").string();
  CHECK_THROWS_WITH(sweep::merge_stores({a, b}, out),
                    deltabench::testing::contains("run task/model/d16/lr0.001/wd0/sh1 of suite s (hash h1) has "
                                                  "different results in " + a + ": completed (best accuracy 0.5"));
  CHECK_FALSE(fs::exists(out));
  CHECK_FALSE(fs::exists(out + ".partial"));
  // An output already there stays as it was.
  sweep::merge_stores({a}, out);
  CHECK_THROWS(sweep::merge_stores({a, b}, out));
  CHECK(runs_of(out).at("h1").best_accuracy == 0.5);
}

TEST_CASE("store merge: a failed record gives way to the same run finished") {
  testing::TempDir dir("deltabench-merge-test");
  auto failed = record("h1", 0.0, "2026-12-03T00:00:00Z", "failed");
  failed.error = "out of memory";
  const auto a = store_with(dir.path(), "a.sqlite", {failed});
  const auto b = store_with(dir.path(), "b.sqlite", {record("h1", 0.9)});
  const auto out = (dir.path() / "all.sqlite").string();
  sweep::merge_stores({a, b}, out);
  CHECK(runs_of(out).at("h1").status == "completed");
  sweep::merge_stores({b, a}, out);
  CHECK(runs_of(out).at("h1").status == "completed");
}

TEST_CASE("store merge: a killed merge's partial file is never the output, and the next merge replaces it") {
  testing::TempDir dir("deltabench-merge-test");
  const auto a = store_with(dir.path(), "a.sqlite", {record("h1", 0.5)});
  const auto out = (dir.path() / "all.sqlite").string();
  std::ofstream(out + ".partial") << "half a store";  // what a kill midway leaves: named partial
  CHECK_FALSE(fs::exists(out));
  sweep::merge_stores({a}, out);
  CHECK(runs_of(out).size() == 1);
  CHECK_FALSE(fs::exists(out + ".partial"));
  // Errors: no input, an input twice, an input that is no store.
  CHECK_THROWS_WITH(sweep::merge_stores({}, out), "store merge: no input stores given");
  CHECK_THROWS_WITH(sweep::merge_stores({a, a}, out), deltabench::testing::contains("is given twice"));
  CHECK_THROWS_AS(sweep::merge_stores({(dir.path() / "none.sqlite").string()}, out), sweep::StoreError);
}

TEST_CASE("store merge: a runs export (JSON) is an input like a store, so a committed export seeds the next window") {
  testing::TempDir dir("deltabench-merge-test");
  auto other = record("h9", 0.8);
  other.suite = "t";
  const auto a = store_with(dir.path(), "a.sqlite", {record("h1", 0.5), record("h2", 0.6), other});
  // The export as `runs export --format json` writes it: every run of every suite with its epochs.
  nlohmann::ordered_json exported = nlohmann::ordered_json::array();
  const sweep::Store store(a, sweep::Store::Open::kExisting);
  for (const auto& suite : store.suites()) {
    for (const auto& [hash, r] : store.runs(suite, true)) exported.push_back(sweep::run_json_with_history(r));
  }
  const auto json = (dir.path() / "runs.json").string();
  std::ofstream(json) << exported.dump(1);
  const auto b = store_with(dir.path(), "b.sqlite", {record("h2", 0.6, "2026-12-02T00:00:00Z"), record("h3", 0.7)});
  const auto out = (dir.path() / "all.sqlite").string();
  const auto summary = sweep::merge_stores({json, b}, out);
  CHECK(summary.runs == 4);
  CHECK(summary.duplicates == 1);
  CHECK(summary.suites == std::vector<std::string>{"s", "t"});
  const auto merged = runs_of(out);
  REQUIRE(merged.size() == 3);
  const auto original = store.runs("s", true);
  CHECK(merged.at("h1").best_accuracy == original.at("h1").best_accuracy);
  CHECK(merged.at("h1").config == original.at("h1").config);
  CHECK(merged.at("h1").history.size() == original.at("h1").history.size());
  CHECK(merged.at("h2").finished_at == "2026-12-02T00:00:00Z");
  CHECK(sweep::Store(out, sweep::Store::Open::kExisting).runs("t").size() == 1);
  // A conflicting result between the export and a store is refused like one between stores.
  const auto c = store_with(dir.path(), "c.sqlite", {record("h1", 0.25)});
  CHECK_THROWS_WITH(sweep::merge_stores({json, c}, (dir.path() / "bad.sqlite").string()),
                    deltabench::testing::contains("has different results in " + json));
  // A damaged export is an error naming it.
  const auto broken = (dir.path() / "broken.json").string();
  std::ofstream(broken) << "[{\"suite\": \"s\"}]";
  CHECK_THROWS_WITH(sweep::merge_stores({broken}, out), deltabench::testing::contains("broken.json: run 1: field hash"));
  // The output is a store: an output named .json is refused before anything is written.
  const auto to_json = (dir.path() / "all.json").string();
  CHECK_THROWS_WITH(sweep::merge_stores({json}, to_json), deltabench::testing::contains("the output is a results store"));
  CHECK_FALSE(fs::exists(to_json));
  CHECK_FALSE(fs::exists(to_json + ".partial"));
}
