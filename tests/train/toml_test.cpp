// Tests train/toml.cpp: the subset deltabench's configs use, and errors that carry file:line.

#include "tests/support/catch.h"
#include "train/toml.h"

#include <string>

using namespace deltabench::toml;

TEST_CASE("toml: tables, values, comments, arrays", "[toml]") {
  const auto t = parse(R"(# a comment
name = "run \"one\""   # trailing comment
seed = 1_234
[task]
lr = 3e-3
flag = true
path = 'C:\raw'
[task.params]
sizes = [64, 128,
         256, ]   # over lines, trailing comma
)",
                       "test.toml");
  CHECK(std::get<std::string>(t.values.at("name").data) == "run \"one\"");
  CHECK(std::get<int64_t>(t.values.at("seed").data) == 1234);
  const auto& task = t.tables.at("task");
  CHECK(task.values.at("lr").number() == 3e-3);
  CHECK(task.values.at("lr").str() == "0.003");
  CHECK(std::get<bool>(task.values.at("flag").data));
  CHECK(std::get<std::string>(task.values.at("path").data) == "C:\\raw");
  const auto& sizes = std::get<std::vector<Value>>(task.tables.at("params").values.at("sizes").data);
  REQUIRE(sizes.size() == 3);
  CHECK(std::get<int64_t>(sizes[2].data) == 256);
  CHECK(task.tables.at("params").values.at("sizes").line == 9);
}

TEST_CASE("toml: errors name the file and line", "[toml]") {
  const auto error = [](const std::string& text) {
    try {
      parse(text, "x.toml");
    } catch (const ParseError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(error("a = 1\nb = \n") == "x.toml:2: expected a value");
  CHECK(error("a = 1\na = 2\n") == "x.toml:2: key 'a' given twice");
  CHECK(error("[t]\n[t]\n") == "x.toml:2: table [t] defined twice (first at line 1)");
  CHECK(error("a = mqar\n") == "x.toml:1: cannot read 'mqar' as a value (strings need quotes)");
  CHECK(error("a = \"open\n") == "x.toml:1: newline inside a string");
  CHECK(error("a = 1 2\n") == "x.toml:1: unexpected '2' after the value");
  CHECK(error("[[runs]]\n") == "x.toml:1: arrays of tables ([[...]]) are not supported");
}
