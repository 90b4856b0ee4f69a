// Tests sweep/record_json.cpp: a run written as JSON reads back with every field and every epoch equal
// (NaN included), only the asked suite's runs are read, and a file that is not such an export is an
// error naming the file, the run and the field.

#include "sweep/record_json.h"

#include "tests/support/catch.h"
#include "tests/support/run_record.h"
#include "tests/support/temp_dir.h"

#include <cmath>
#include <fstream>
#include <string>

using namespace deltabench;

namespace {

std::string write(const testing::TempDir& dir, const std::string& name, const std::string& text) {
  const auto path = (dir.path() / name).string();
  std::ofstream(path) << text;
  return path;
}

std::string error_of(const std::string& path) {
  try {
    (void)sweep::read_runs_json(path, "s");
  } catch (const sweep::StoreError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("record_json: runs written as JSON read back field for field, epochs and NaN included") {
  const testing::TempDir dir("deltabench-record-json-test");
  auto a = testing::make_record("aaaa", 0.75, 3);  // its second epoch's train loss is NaN
  a.error = "a \"quoted\" message\nwith a newline";
  a.wall_s = 1.0 / 3.0;  // full precision
  a.tokens_per_s = 123456.789;
  a.train_step = "captured (CUDA graph) after 3 eager steps; resumed after epoch 2";
  a.backend_train_forward = "kernel";
  a.backend_pieces = "embedding kernel, LayerNorm kernel + aten";
  auto b = testing::make_record("bbbb", 0.5, 1);
  b.status = "diverged";
  b.diverged_step = 17;
  b.final_accuracy = std::nan("");
  auto other = testing::make_record("cccc", 0.25, 1);
  other.suite = "another";
  nlohmann::ordered_json all = nlohmann::ordered_json::array();
  for (const auto* r : {&a, &b, &other}) all.push_back(sweep::run_json_with_history(*r));
  const auto path = write(dir, "runs.json", all.dump(2));

  const auto runs = sweep::read_runs_json(path, "s");
  REQUIRE(runs.size() == 2);  // not the other suite's
  for (const auto* want : {&a, &b}) {
    INFO(want->hash);
    const auto& got = runs.at(want->hash);
    // Equal records write equal JSON: every field, at full precision, NaN as null.
    CHECK(sweep::run_json_with_history(got).dump() == sweep::run_json_with_history(*want).dump());
    REQUIRE(got.history.size() == want->history.size());
  }
  CHECK(std::isnan(runs.at("aaaa").history[1].train_loss));
  CHECK(std::isnan(runs.at("bbbb").final_accuracy));
  CHECK(runs.at("aaaa").wall_s == 1.0 / 3.0);
  CHECK(runs.at("aaaa").error == a.error);
  CHECK(runs.at("aaaa").backend_pieces == a.backend_pieces);
}

TEST_CASE("record_json: an export written before the pieces were recorded reads them as not recorded") {
  const testing::TempDir dir("deltabench-record-json-test");
  auto a = testing::make_record("aaaa", 0.75, 1);
  a.backend_pieces = "embedding kernel";
  auto j = sweep::run_json_with_history(a);
  j.erase("backend_pieces");
  const auto runs = sweep::read_runs_json(write(dir, "old.json", "[" + j.dump() + "]"), "s");
  REQUIRE(runs.size() == 1);
  CHECK(runs.at("aaaa").backend_pieces.empty());
  CHECK(runs.at("aaaa").final_accuracy == 0.75);
}

TEST_CASE("record_json: a file that is not a runs export is an error naming the file, the run and the field") {
  const testing::TempDir dir("deltabench-record-json-test");
  CHECK(error_of((dir.path() / "none.json").string()).find("none.json: cannot read the runs export") !=
        std::string::npos);
  CHECK(error_of(write(dir, "text.json", "not json")).find("text.json: not JSON") != std::string::npos);
  CHECK(error_of(write(dir, "object.json", "{}")).find("object.json: expected an array of runs") != std::string::npos);
  auto j = sweep::run_json_with_history(testing::make_record("aaaa", 0.5, 1));
  j.erase("status");
  CHECK(error_of(write(dir, "missing.json", "[" + j.dump() + "]")).find("missing.json: run 1: field status") !=
        std::string::npos);
  const auto one = sweep::run_json_with_history(testing::make_record("aaaa", 0.5, 1)).dump();
  CHECK(error_of(write(dir, "twice.json", "[" + one + "," + one + "]")).find("twice.json: run 2 (aaaa of suite s) is there twice") !=
        std::string::npos);
}
