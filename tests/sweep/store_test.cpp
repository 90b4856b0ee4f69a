// The results store: round trips, replacement, NaN, and two connections writing one file.

#include "sweep/store.h"

#include "tests/support/catch.h"
#include "tests/support/temp_dir.h"

#include <cmath>

using namespace deltabench;

namespace {

sweep::RunRecord make_record(const std::string& hash, double accuracy) {
  sweep::RunRecord r;
  r.suite = "s";
  r.hash = hash;
  r.id = "task/model/d16/lr0.001/wd0/s1";
  r.task = "task";
  r.model = "model";
  r.d_model = 16;
  r.lr = 1e-3;
  r.seed = 1;
  r.config = "seed = 1\n";
  r.status = "completed";
  r.final_accuracy = accuracy;
  r.best_accuracy = accuracy;
  r.epochs = 2;
  r.device = "cpu";
  r.git_commit = "abc";
  r.versions = "v";
  r.finished_at = "2026-11-23T00:00:00Z";
  for (int e = 1; e <= 2; ++e) {
    train::EpochMetrics m;
    m.epoch = e;
    m.steps = 10 * e;
    m.train_loss = e == 2 ? std::nan("") : 1.5;
    m.accuracy = accuracy;
    r.history.push_back(m);
  }
  return r;
}

}  // namespace

TEST_CASE("a recorded run reads back whole, epochs and NaN included") {
  testing::TempDir dir("deltabench-store-test");
  sweep::Store store((dir.path() / "sub" / "store.sqlite").string());
  store.record(make_record("h1", 0.5));
  const auto runs = store.runs("s", true);
  REQUIRE(runs.size() == 1);
  const auto& r = runs.at("h1");
  CHECK(r.id == "task/model/d16/lr0.001/wd0/s1");
  CHECK(r.final_accuracy == 0.5);
  CHECK(r.lr == 1e-3);
  CHECK(r.config == "seed = 1\n");
  REQUIRE(r.history.size() == 2);
  CHECK(r.history[0].train_loss == 1.5);
  CHECK(std::isnan(r.history[1].train_loss));
  CHECK(store.runs("s").at("h1").history.empty());
  CHECK(store.runs("other").empty());
}

TEST_CASE("recording a run again replaces it and its epochs") {
  testing::TempDir dir("deltabench-store-test");
  sweep::Store store((dir.path() / "store.sqlite").string());
  store.record(make_record("h1", 0.5));
  auto again = make_record("h1", 0.75);
  again.history.pop_back();
  store.record(again);
  const auto runs = store.runs("s", true);
  REQUIRE(runs.size() == 1);
  CHECK(runs.at("h1").final_accuracy == 0.75);
  CHECK(runs.at("h1").history.size() == 1);
}

TEST_CASE("two connections write one store") {
  testing::TempDir dir("deltabench-store-test");
  const auto path = (dir.path() / "store.sqlite").string();
  sweep::Store a(path), b(path);
  for (int i = 0; i < 20; ++i) (i % 2 ? a : b).record(make_record("h" + std::to_string(i), i / 20.0));
  CHECK(a.runs("s").size() == 20);
  CHECK(sweep::Store(path).runs("s").size() == 20);
}

TEST_CASE("which statuses end a run for good") {
  CHECK(sweep::is_final_status("completed"));
  CHECK(sweep::is_final_status("early_stopped"));
  CHECK(sweep::is_final_status("diverged"));
  CHECK(sweep::is_final_status("diverged", true));
  CHECK(sweep::is_final_status("failed"));
  CHECK_FALSE(sweep::is_final_status("failed", true));
}

TEST_CASE("a store that cannot be opened is an error naming the path") {
  try {
    sweep::Store store("/proc/no/such/dir/store.sqlite");
    FAIL("expected a StoreError");
  } catch (const sweep::StoreError& e) {
    CHECK(std::string(e.what()).find("/proc/no/such/dir") != std::string::npos);
  }
}
