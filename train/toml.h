#pragma once
// The subset of TOML that deltabench's config files use: [tables] and [dotted.tables], key = value,
// # comments, strings ("..." with \" \\ \n \t escapes, and '...'), integers, floats, booleans, and
// arrays of those (over several lines if needed). Errors carry file:line.

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace deltabench::toml {

struct ParseError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Value {
  std::variant<bool, int64_t, double, std::string, std::vector<Value>> data;
  int line = 0;

  bool is_bool() const { return std::holds_alternative<bool>(data); }
  bool is_integer() const { return std::holds_alternative<int64_t>(data); }
  bool is_number() const { return is_integer() || std::holds_alternative<double>(data); }
  bool is_string() const { return std::holds_alternative<std::string>(data); }
  bool is_array() const { return std::holds_alternative<std::vector<Value>>(data); }
  double number() const { return is_integer() ? static_cast<double>(std::get<int64_t>(data)) : std::get<double>(data); }
  // As written, for messages and for task parameters: true/false, 42, 0.001, text.
  std::string str() const;
  // As a TOML file writes it, strings in quotes: what an error message shows of a user's value.
  std::string written() const;
};

struct Table {
  std::map<std::string, Value> values;
  std::map<std::string, Table> tables;
  int line = 0;  // where the table's header stands (0: the root)
};

// `source` names the text in messages ("configs/mqar-tiny.toml").
Table parse(const std::string& text, const std::string& source);

// Canonical TOML for `table`: keys in sorted order, a table's values before its subtables, strings
// quoted and escaped, floats always with a point or exponent. Equal tables give equal text, so the
// text can be hashed; parse(to_toml(t)) == t up to line numbers.
std::string to_toml(const Table& table);

// Copies `overrides` into `base`: a value replaces the value of the same key, a table merges into
// the table of the same name. Lines come along, so errors point at the override.
void merge(Table& base, const Table& overrides);

}  // namespace deltabench::toml
