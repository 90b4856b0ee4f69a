// The results store: round trips, replacement, NaN, two connections writing one file, and a runs
// export given in its place.

#include "sweep/store.h"

#include "tests/support/catch.h"
#include "tests/support/run_record.h"
#include "tests/support/temp_dir.h"

#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

using namespace deltabench;
using testing::make_record;

namespace {

// Runs each statement on the store's file outside the Store class: to turn a store back into an older schema.
void run_sql(const std::string& path, std::initializer_list<const char*> statements) {
  for (const char* sql : statements) {
    INFO(sql);
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
  }
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

TEST_CASE("claims: a run is trained by one process; a dead or silent claimant's run is taken again") {
  testing::TempDir dir("deltabench-store-claims");
  sweep::Store store((dir.path() / "store.sqlite").string());
  const auto me = sweep::this_process();
  const sweep::ClaimOwner other_host{"another-host", 4242};
  using sweep::ClaimResult;
  CHECK(store.claim("s", "h1", other_host, false, 300) == ClaimResult::kClaimed);
  CHECK(store.claim("s", "h1", me, false, 300) == ClaimResult::kTaken);         // live elsewhere
  CHECK(store.claim("s", "h1", other_host, false, 300) == ClaimResult::kClaimed);  // its own again
  CHECK(store.claims("s").size() == 1);
  CHECK(store.claims("s").front().host == "another-host");
  CHECK(store.claim("s", "h1", me, false, -1) == ClaimResult::kClaimed);  // its heartbeat is too old
  CHECK(store.claims("s").front().pid == me.pid);
  // On this host a claim whose process has exited is stale at once, whatever its heartbeat.
  const pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);
  const sweep::ClaimOwner gone{me.host, child};
  CHECK(store.claim("s", "h2", gone, false, 300) == ClaimResult::kClaimed);
  CHECK(store.claim("s", "h2", me, false, 300) == ClaimResult::kClaimed);
  // Recording a run drops its claim; a finished run is never claimed again, a failed one only on retry.
  auto done = make_record("h2", 0.5);
  store.record(done);
  CHECK(store.claims("s").size() == 1);
  CHECK(store.claim("s", "h2", me, false, 300) == ClaimResult::kDone);
  done.status = "failed";
  store.record(done);
  CHECK(store.claim("s", "h2", me, false, 300) == ClaimResult::kDone);
  CHECK(store.claim("s", "h2", me, true, 300) == ClaimResult::kClaimed);
  store.release("s", "h2", me);
  CHECK(store.claims("s").size() == 1);
}

TEST_CASE("a store of schema version 1 gains version 2's, 3's and 4's columns and keeps its runs") {
  testing::TempDir dir("deltabench-store-v1");
  const auto path = (dir.path() / "v1.sqlite").string();
  {
    sweep::Store store(path);
    store.record(make_record("h1", 0.25));
  }
  // Back to version 1's shape: the runs table without the new columns, no claims table.
  run_sql(path, {"ALTER TABLE runs DROP COLUMN backend_pieces", "ALTER TABLE runs DROP COLUMN train_step",
                 "ALTER TABLE runs DROP COLUMN gpu_name", "ALTER TABLE runs DROP COLUMN threads",
                 "ALTER TABLE runs DROP COLUMN backend_train_forward",
                 "ALTER TABLE runs DROP COLUMN backend_train_backward",
                 "ALTER TABLE runs DROP COLUMN backend_eval_forward", "DROP TABLE claims",
                 "UPDATE meta SET value = '1' WHERE key = 'schema_version'"});
  sweep::Store store(path);
  const auto runs = store.runs("s");
  REQUIRE(runs.size() == 1);
  CHECK(runs.at("h1").final_accuracy == 0.25);
  CHECK(runs.at("h1").backend_train_forward.empty());
  CHECK(runs.at("h1").train_step.empty());
  CHECK(runs.at("h1").backend_pieces.empty());
  CHECK(store.claim("s", "h9", sweep::this_process(), false, 300) == sweep::ClaimResult::kClaimed);
}

TEST_CASE("a store of schema version 2 gains train_step and backend_pieces, keeps its runs and records the new columns") {
  testing::TempDir dir("deltabench-store-v2");
  const auto path = (dir.path() / "v2.sqlite").string();
  {
    sweep::Store store(path);
    store.record(make_record("h1", 0.5));
  }
  run_sql(path, {"ALTER TABLE runs DROP COLUMN backend_pieces", "ALTER TABLE runs DROP COLUMN train_step",
                 "UPDATE meta SET value = '2' WHERE key = 'schema_version'"});
  sweep::Store store(path);
  CHECK(store.runs("s").at("h1").final_accuracy == 0.5);
  auto r = make_record("h2", 0.75);
  r.train_step = "captured (CUDA graph) after 3 eager steps";
  r.backend_pieces = "embedding kernel, LayerNorm kernel";
  store.record(r);
  CHECK(store.runs("s").at("h2").train_step == r.train_step);
  CHECK(store.runs("s").at("h2").backend_pieces == r.backend_pieces);
}

TEST_CASE("a store of schema version 3 gains backend_pieces, keeps its runs and records the new column") {
  testing::TempDir dir("deltabench-store-v3");
  const auto path = (dir.path() / "v3.sqlite").string();
  {
    sweep::Store store(path);
    auto r = make_record("h1", 0.5);
    r.train_step = "eager (cpu); evaluation eager (cpu)";
    store.record(r);
  }
  run_sql(path, {"ALTER TABLE runs DROP COLUMN backend_pieces",
                 "UPDATE meta SET value = '3' WHERE key = 'schema_version'"});
  {
    sweep::Store store(path);
    const auto h1 = store.runs("s").at("h1");
    CHECK(h1.train_step == "eager (cpu); evaluation eager (cpu)");
    CHECK(h1.backend_pieces.empty());
    auto r = make_record("h2", 0.75);
    r.backend_pieces = "short conv cpu fused, q/k L2 norm cpu fused";
    store.record(r);
  }
  sweep::Store reopened(path);  // now version 4: opened as it is
  CHECK(reopened.runs("s").at("h2").backend_pieces == "short conv cpu fused, q/k L2 norm cpu fused");
}

TEST_CASE("a store that is not there is an error when it must exist, and is not created") {
  testing::TempDir dir("deltabench-store-missing");
  const auto path = dir.path() / "nope.sqlite";
  CHECK_THROWS_AS(sweep::Store(path.string(), sweep::Store::Open::kExisting), sweep::StoreError);
  CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE("a runs export given where a store is expected is an error that says how to make a store of it") {
  testing::TempDir dir("deltabench-store-test");
  const auto json = (dir.path() / "runs.json").string();
  std::ofstream(json) << "[]";
  for (const auto open : {sweep::Store::Open::kExisting, sweep::Store::Open::kCreate}) {
    CHECK_THROWS_WITH(sweep::Store(json, open),
                      deltabench::testing::contains("runs.json: a runs export (JSON), not a results store; "
                                                    "`deltabench store merge"));
  }
}
