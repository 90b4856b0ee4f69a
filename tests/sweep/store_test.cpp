// The results store: round trips, replacement, NaN, and two connections writing one file.

#include "sweep/store.h"

#include "tests/support/catch.h"
#include "tests/support/temp_dir.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

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

TEST_CASE("processes opening one new store at the same moment all succeed") {
  // Shards started together race to create the store and switch it to WAL (CI failed on it once; the
  // window is narrow, so this is a stress test: 20 rounds of 6 processes, staggered by 0 to 4 ms).
  testing::TempDir dir("deltabench-store-test");
  constexpr int kProcesses = 6;
  for (int round = 0; round < 20; ++round) {
    const auto path = (dir.path() / ("store" + std::to_string(round) + ".sqlite")).string();
    std::vector<pid_t> children;
    for (int p = 0; p < kProcesses; ++p) {
      const pid_t pid = fork();
      REQUIRE(pid >= 0);
      if (pid == 0) {
        int status = 0;
        usleep(static_cast<useconds_t>(200 * p * (round % 5)));  // stagger the openings across the race window
        try {
          sweep::Store store(path);
          store.runs("s");
          store.record(make_record("h" + std::to_string(p), 0.5));
        } catch (const std::exception& e) {
          std::fprintf(stderr, "process %d: %s\n", p, e.what());
          status = 1;
        }
        std::_Exit(status);
      }
      children.push_back(pid);
    }
    int failed = 0;
    for (const pid_t pid : children) {
      int status = 0;
      waitpid(pid, &status, 0);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed;
    }
    INFO("round " << round);
    CHECK(failed == 0);
    CHECK(sweep::Store(path).runs("s").size() == static_cast<std::size_t>(kProcesses - failed));
  }
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
