// Tests sweep/slurm.cpp: a Slurm array task's shard, its errors, the per-shard store's name, and the
// file-system check on a local folder.

#include "sweep/slurm.h"

#include "tests/support/catch.h"
#include "tests/support/temp_dir.h"
#include "train/config.h"

#include <map>
#include <string>

using namespace deltabench;

namespace {

auto env_of(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
}

std::string error_of(std::map<std::string, std::string> vars) {
  try {
    sweep::slurm_array_shard(env_of(std::move(vars)));
  } catch (const train::ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("slurm: an array task's index and count are its shard") {
  CHECK_FALSE(sweep::slurm_array_shard(env_of({})).has_value());
  CHECK_FALSE(sweep::slurm_array_shard(env_of({{"SLURM_JOB_ID", "9"}})).has_value());  // a job, not an array
  CHECK(sweep::slurm_array_shard(env_of({{"SLURM_ARRAY_TASK_ID", "2"}, {"SLURM_ARRAY_TASK_COUNT", "4"}})) ==
        std::make_pair(int64_t{2}, int64_t{4}));
  // --array=1-4: the index counts from the first task.
  CHECK(sweep::slurm_array_shard(env_of({{"SLURM_ARRAY_TASK_ID", "4"},
                                         {"SLURM_ARRAY_TASK_COUNT", "4"},
                                         {"SLURM_ARRAY_TASK_MIN", "1"},
                                         {"SLURM_ARRAY_TASK_MAX", "4"}})) == std::make_pair(int64_t{3}, int64_t{4}));
}

TEST_CASE("slurm: variables that make no shard are errors naming them") {
  CHECK(error_of({{"SLURM_ARRAY_TASK_ID", "2"}}) ==
        "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not: cannot tell the shard count; give --shard i/n");
  CHECK(error_of({{"SLURM_ARRAY_TASK_ID", "x"}, {"SLURM_ARRAY_TASK_COUNT", "4"}}) ==
        "SLURM_ARRAY_TASK_ID: expected a whole number >= 0, got 'x'");
  CHECK(error_of({{"SLURM_ARRAY_TASK_ID", "4"}, {"SLURM_ARRAY_TASK_COUNT", "4"}}) ==
        "SLURM_ARRAY_TASK_ID 4: expected 0 to 3 (SLURM_ARRAY_TASK_MIN and _COUNT)");
  // --array=0-10:2 (a step) has 6 tasks over 0 to 10: no shard of 6.
  CHECK(error_of({{"SLURM_ARRAY_TASK_ID", "2"},
                  {"SLURM_ARRAY_TASK_COUNT", "6"},
                  {"SLURM_ARRAY_TASK_MIN", "0"},
                  {"SLURM_ARRAY_TASK_MAX", "10"}})
            .starts_with("SLURM_ARRAY_TASK_MIN 0 to MAX 10 is not 6 consecutive tasks"));
}

TEST_CASE("slurm: a shard's own store sits beside the shared one") {
  CHECK(sweep::shard_store_path("runs/deltabench.sqlite", 2, 8) == "runs/deltabench.shard-2-of-8.sqlite");
  CHECK(sweep::shard_store_path("all.sqlite", 0, 4) == "all.shard-0-of-4.sqlite");
  testing::TempDir dir("deltabench-slurm-test");
  CHECK_FALSE(sweep::on_network_filesystem((dir.path() / "not-yet" / "store.sqlite").string()));
}
