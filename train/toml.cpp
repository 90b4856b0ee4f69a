#include "train/toml.h"

#include <cctype>
#include <charconv>
#include <cmath>

namespace deltabench::toml {
namespace {

class Parser {
 public:
  Parser(const std::string& text, std::string source) : s_(text), source_(std::move(source)) {}

  Table run() {
    Table root;
    Table* current = &root;
    while (skip_blank_lines(), pos_ < s_.size()) {
      if (s_[pos_] == '[') {
        current = &header(root);
      } else {
        assignment(*current);
      }
    }
    return root;
  }

 private:
  [[noreturn]] void fail(const std::string& message) const {
    throw ParseError(source_ + ":" + std::to_string(line_) + ": " + message);
  }

  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t')) ++pos_;
  }
  void skip_comment() {
    if (pos_ < s_.size() && s_[pos_] == '#') {
      while (pos_ < s_.size() && s_[pos_] != '\n') ++pos_;
    }
  }
  void skip_blank_lines() {  // whitespace, comments and newlines
    for (;;) {
      skip_space();
      skip_comment();
      if (pos_ < s_.size() && (s_[pos_] == '\n' || s_[pos_] == '\r')) {
        if (s_[pos_] == '\n') ++line_;
        ++pos_;
        continue;
      }
      return;
    }
  }
  void end_of_line() {
    skip_space();
    skip_comment();
    if (pos_ < s_.size() && s_[pos_] == '\r') ++pos_;
    if (pos_ < s_.size() && s_[pos_] != '\n') fail(std::string("unexpected '") + s_[pos_] + "' after the value");
  }

  std::string key() {
    skip_space();
    if (pos_ < s_.size() && (s_[pos_] == '"' || s_[pos_] == '\'')) return std::get<std::string>(string_value().data);
    const size_t start = pos_;
    while (pos_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_' || s_[pos_] == '-')) ++pos_;
    if (pos_ == start) fail("expected a key");
    return s_.substr(start, pos_ - start);
  }

  Table& header(Table& root) {
    ++pos_;  // [
    if (pos_ < s_.size() && s_[pos_] == '[') fail("arrays of tables ([[...]]) are not supported");
    Table* t = &root;
    std::string path;
    for (;;) {
      const std::string part = key();
      path += (path.empty() ? "" : ".") + part;
      t = &t->tables[part];
      skip_space();
      if (pos_ < s_.size() && s_[pos_] == '.') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == ']') {
        ++pos_;
        break;
      }
      fail("expected ']' to close the table header");
    }
    if (t->line != 0) fail("table [" + path + "] defined twice (first at line " + std::to_string(t->line) + ")");
    t->line = line_;
    end_of_line();
    return *t;
  }

  void assignment(Table& table) {
    const int line = line_;
    const std::string k = key();
    skip_space();
    if (pos_ >= s_.size() || s_[pos_] != '=') fail("expected '=' after key '" + k + "'");
    ++pos_;
    Value v = value();
    v.line = line;
    if (table.values.contains(k)) fail("key '" + k + "' given twice");
    if (table.tables.contains(k)) fail("key '" + k + "' is also a table");
    table.values.emplace(k, std::move(v));
    end_of_line();
  }

  Value string_value() {
    const char quote = s_[pos_++];
    std::string out;
    while (pos_ < s_.size() && s_[pos_] != quote) {
      if (s_[pos_] == '\n') fail("newline inside a string");
      if (quote == '"' && s_[pos_] == '\\') {
        if (++pos_ >= s_.size()) break;
        switch (s_[pos_]) {
          case 'n': out += '\n'; break;
          case 't': out += '\t'; break;
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          default: fail(std::string("unknown escape \\") + s_[pos_]);
        }
        ++pos_;
        continue;
      }
      out += s_[pos_++];
    }
    if (pos_ >= s_.size()) fail("unterminated string");
    ++pos_;
    return Value{out, line_};
  }

  Value value() {
    skip_space();
    if (pos_ >= s_.size() || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '#') fail("expected a value");
    const char c = s_[pos_];
    if (c == '"' || c == '\'') return string_value();
    if (c == '[') {
      ++pos_;
      std::vector<Value> items;
      for (;;) {
        skip_blank_lines();
        if (pos_ < s_.size() && s_[pos_] == ']') {
          ++pos_;
          break;
        }
        items.push_back(value());
        skip_blank_lines();
        if (pos_ < s_.size() && s_[pos_] == ',') {
          ++pos_;
          continue;
        }
        skip_blank_lines();
        if (pos_ < s_.size() && s_[pos_] == ']') {
          ++pos_;
          break;
        }
        fail("expected ',' or ']' in an array");
      }
      return Value{items, line_};
    }
    const size_t start = pos_;
    while (pos_ < s_.size() && !std::isspace(static_cast<unsigned char>(s_[pos_])) && s_[pos_] != ',' &&
           s_[pos_] != ']' && s_[pos_] != '#') {
      ++pos_;
    }
    std::string word = s_.substr(start, pos_ - start);
    if (word == "true") return Value{true, line_};
    if (word == "false") return Value{false, line_};
    std::string digits;
    for (const char ch : word) {
      if (ch != '_') digits += ch;
    }
    const bool is_float = digits.find_first_of(".eE") != std::string::npos;
    size_t used = 0;
    try {
      if (is_float) {
        const double d = std::stod(digits, &used);
        if (used == digits.size() && std::isfinite(d)) return Value{d, line_};
      } else {
        const int64_t i = std::stoll(digits, &used);
        if (used == digits.size()) return Value{i, line_};
      }
    } catch (const std::exception&) {
    }
    fail("cannot read '" + word + "' as a value (strings need quotes)");
  }

  const std::string& s_;
  std::string source_;
  size_t pos_ = 0;
  int line_ = 1;
};

}  // namespace

std::string Value::str() const {
  if (is_bool()) return std::get<bool>(data) ? "true" : "false";
  if (is_integer()) return std::to_string(std::get<int64_t>(data));
  if (std::holds_alternative<double>(data)) {
    char buffer[64];  // the shortest text that reads back as the same double
    const auto end = std::to_chars(buffer, buffer + sizeof buffer, std::get<double>(data)).ptr;
    return std::string(buffer, end);
  }
  if (is_string()) return std::get<std::string>(data);
  std::string out = "[";
  for (const auto& v : std::get<std::vector<Value>>(data)) out += (out.size() > 1 ? ", " : "") + v.str();
  return out + "]";
}

Table parse(const std::string& text, const std::string& source) { return Parser(text, source).run(); }

namespace {

std::string quoted(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default: out += c;
    }
  }
  return out + "\"";
}

}  // namespace

std::string Value::written() const {
  if (is_string()) return quoted(std::get<std::string>(data));
  if (!is_array()) return str();
  std::string out = "[";
  for (const auto& v : std::get<std::vector<Value>>(data)) out += (out.size() > 1 ? ", " : "") + v.written();
  return out + "]";
}

namespace {

std::string canonical(const Value& v) {
  if (v.is_string()) return quoted(std::get<std::string>(v.data));
  if (std::holds_alternative<double>(v.data)) {
    std::string text = v.str();
    // "1" would read back as an integer.
    if (text.find_first_of(".eEni") == std::string::npos) text += ".0";
    return text;
  }
  if (v.is_array()) {
    std::string out = "[";
    for (const auto& item : std::get<std::vector<Value>>(v.data)) out += (out.size() > 1 ? ", " : "") + canonical(item);
    return out + "]";
  }
  return v.str();
}

void write_table(const Table& table, const std::string& path, std::string& out) {
  if (!path.empty() && (!table.values.empty() || table.tables.empty())) {
    out += (out.empty() ? "[" : "\n[") + path + "]\n";
  }
  for (const auto& [key, value] : table.values) out += key + " = " + canonical(value) + "\n";
  for (const auto& [name, sub] : table.tables) write_table(sub, path.empty() ? name : path + "." + name, out);
}

}  // namespace

std::string to_toml(const Table& table) {
  std::string out;
  write_table(table, "", out);
  return out;
}

void merge(Table& base, const Table& overrides) {
  for (const auto& [key, value] : overrides.values) base.values[key] = value;
  for (const auto& [name, sub] : overrides.tables) {
    auto [it, inserted] = base.tables.try_emplace(name, Table{});
    if (inserted) it->second.line = sub.line;
    merge(it->second, sub);
  }
}

}  // namespace deltabench::toml
