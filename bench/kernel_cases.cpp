#include "bench/kernel_cases.h"

#include "train/toml.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>

namespace deltabench::bench {
namespace {

constexpr const char* kOps[] = {"delta_rule",         "gated_delta_rule",         "linear_attention",
                                "sdpa",               "decode_delta_rule",        "decode_gated_delta_rule",
                                "decode_linear_attention", "fwd_bwd_delta_rule",  "fwd_bwd_gated_delta_rule",
                                "fwd_bwd_linear_attention", "fwd_bwd_sdpa"};

[[noreturn]] void fail(const std::string& source, int line, const std::string& what, const std::string& message) {
  throw KernelCaseError(source + ":" + std::to_string(line) + ": " + what + ": " + message);
}

std::string check_op(const toml::Value& v, const std::string& source, const std::string& what) {
  if (!v.is_string()) fail(source, v.line, what, "expected an op name in quotes, got " + v.written());
  const auto& op = std::get<std::string>(v.data);
  for (const char* known : kOps) {
    if (op == known) return op;
  }
  std::string list;
  for (const char* known : kOps) list += (list.empty() ? "" : ", ") + std::string(known);
  fail(source, v.line, what, "expected one of " + list + ", got \"" + op + "\"");
}

int64_t positive(const toml::Value& v, const std::string& source, const std::string& what) {
  if (!v.is_integer() || std::get<int64_t>(v.data) < 1) {
    fail(source, v.line, what, "expected a positive integer, got " + v.written());
  }
  return std::get<int64_t>(v.data);
}

const toml::Value& key(const toml::Table& t, const std::string& name, const std::string& source,
                       const std::string& table) {
  const auto it = t.values.find(name);
  if (it == t.values.end()) fail(source, t.line, table, "needs a key '" + name + "'");
  return it->second;
}

const std::vector<toml::Value>& array(const toml::Value& v, const std::string& source, const std::string& what) {
  if (!v.is_array()) fail(source, v.line, what, "expected an array, got " + v.written());
  return std::get<std::vector<toml::Value>>(v.data);
}

// Fails on a key outside `allowed`, and on any subtable unless `subtables`.
void only_keys(const toml::Table& t, const std::set<std::string>& allowed, const std::string& source,
               const std::string& table, bool subtables = false) {
  for (const auto& [name, value] : t.values) {
    if (!allowed.contains(name)) fail(source, value.line, table, "unknown key '" + name + "'");
  }
  if (subtables) return;
  for (const auto& [name, sub] : t.tables) fail(source, sub.line, table, "unknown table [" + name + "]");
}

std::string check_dtype(const toml::Value& v, const std::string& source, const std::string& what) {
  std::string list;
  for (const char* known : kDtypes) list += (list.empty() ? "" : ", ") + std::string(known);
  if (!v.is_string()) fail(source, v.line, what, "expected one of " + list + " in quotes, got " + v.written());
  const auto& dtype = std::get<std::string>(v.data);
  for (const char* known : kDtypes) {
    if (dtype == known) return dtype;
  }
  fail(source, v.line, what, "expected one of " + list + ", got \"" + dtype + "\"");
}

auto shape(const KernelCase& c) { return std::tie(c.op, c.B, c.T, c.H, c.K, c.V, c.dtype); }

}  // namespace

KernelCases parse_kernel_cases(const std::string& text, const std::string& source) {
  toml::Table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::ParseError& e) {
    throw KernelCaseError(e.what());
  }
  only_keys(root, {}, source, "top level", /*subtables=*/true);
  KernelCases out;
  for (const auto& [name, table] : root.tables) {
    if (name != "fixed" && name != "sweeps") fail(source, table.line, "top level", "unknown table [" + name + "]");
  }
  const auto add = [&](KernelCase c) {
    for (auto& have : out.cases) {
      if (shape(have) == shape(c)) {
        for (const auto& s : c.sweeps) have.sweeps.push_back(s);
        return;
      }
    }
    out.cases.push_back(std::move(c));
  };
  if (const auto it = root.tables.find("fixed"); it != root.tables.end()) {
    const auto& fixed = it->second;
    only_keys(fixed, {"cases"}, source, "[fixed]");
    for (const auto& row : array(key(fixed, "cases", source, "[fixed]"), source, "[fixed] cases")) {
      const std::string what = "[fixed] cases";
      const auto& f = array(row, source, what);
      if (f.size() != 7 && f.size() != 8) {
        fail(source, row.line, what,
             "expected [op, B, T, H, K, V, target ms] or [op, B, T, H, K, V, target ms, dtype], got " +
                 std::to_string(f.size()) + " fields");
      }
      KernelCase c;
      c.op = check_op(f[0], source, what);
      int64_t* dims[] = {&c.B, &c.T, &c.H, &c.K, &c.V};
      for (int i = 0; i < 5; ++i) *dims[i] = positive(f[1 + i], source, what);
      if (!f[6].is_number() || f[6].number() < 0) fail(source, f[6].line, what, "expected a target in ms >= 0, got " + f[6].written());
      c.target_ms = f[6].number();
      if (f.size() == 8) c.dtype = check_dtype(f[7], source, what);
      c.fixed = true;
      for (const auto& have : out.cases) {
        if (shape(have) == shape(c)) fail(source, row.line, what, "a second row for " + case_name(c));
      }
      add(c);
    }
  }
  if (const auto it = root.tables.find("sweeps"); it != root.tables.end()) {
    only_keys(it->second, {}, source, "[sweeps]", /*subtables=*/true);
    // The file's order (std::map sorts by name): by the line each sweep's table stands on.
    std::vector<std::pair<std::string, const toml::Table*>> sweeps;
    for (const auto& [name, table] : it->second.tables) sweeps.emplace_back(name, &table);
    std::sort(sweeps.begin(), sweeps.end(), [](const auto& a, const auto& b) { return a.second->line < b.second->line; });
    for (const auto& [name, table_ptr] : sweeps) {
      const auto& t = *table_ptr;
      const std::string what = "[sweeps." + name + "]";
      only_keys(t, {"title", "ops", "T", "tokens", "B", "H", "K", "V", "dtype"}, source, what);
      Sweep s;
      s.name = name;
      const auto& title = key(t, "title", source, what);
      if (!title.is_string()) fail(source, title.line, what + " title", "expected text in quotes, got " + title.written());
      s.title = std::get<std::string>(title.data);
      if (const auto d = t.values.find("dtype"); d != t.values.end()) s.dtype = check_dtype(d->second, source, what + " dtype");
      for (const auto& op : array(key(t, "ops", source, what), source, what + " ops")) s.ops.push_back(check_op(op, source, what + " ops"));
      for (const auto& T : array(key(t, "T", source, what), source, what + " T")) s.T.push_back(positive(T, source, what + " T"));
      const bool tokens = t.values.contains("tokens"), batch = t.values.contains("B");
      if (tokens == batch) fail(source, t.line, what, "needs exactly one of 'tokens' (B x T constant) and 'B'");
      // B as an array: a sweep over the batch at one T (decode: sequences of one token each).
      int64_t amount = 0;
      if (batch && t.values.at("B").is_array()) {
        for (const auto& B : array(t.values.at("B"), source, what + " B")) s.B.push_back(positive(B, source, what + " B"));
        if (s.T.size() != 1) {
          fail(source, t.values.at("T").line, what + " T",
               "a sweep over B (an array) takes one T, got " + std::to_string(s.T.size()));
        }
      } else {
        amount = positive(t.values.at(tokens ? "tokens" : "B"), source, what + (tokens ? " tokens" : " B"));
      }
      const int64_t H = positive(key(t, "H", source, what), source, what + " H");
      const int64_t K = positive(key(t, "K", source, what), source, what + " K");
      const int64_t V = positive(key(t, "V", source, what), source, what + " V");
      for (const auto& op : s.ops) {
        const auto one = [&](int64_t B, int64_t T) {
          KernelCase c;
          c.op = op;
          c.B = B, c.T = T, c.H = H, c.K = K, c.V = V;
          c.dtype = s.dtype;
          c.sweeps = {name};
          add(c);
        };
        if (s.over_batch()) {
          for (const int64_t B : s.B) one(B, s.T[0]);
        } else {
          for (const int64_t T : s.T) one(tokens ? std::max<int64_t>(1, amount / T) : amount, T);
        }
      }
      out.sweeps.push_back(s);
    }
  }
  if (out.cases.empty()) fail(source, 1, "top level", "no cases: give [fixed] cases or [sweeps.<name>] tables");
  return out;
}

std::string kernel_cases_path() {
  if (const char* env = std::getenv("DELTABENCH_KERNEL_CASES"); env && *env) return env;
#ifdef DELTABENCH_SOURCE_DIR
  return std::string(DELTABENCH_SOURCE_DIR) + "/bench/kernel_cases.toml";
#else
  return "bench/kernel_cases.toml";
#endif
}

const KernelCases& kernel_cases() {
  static const KernelCases cases = [] {
    const auto path = kernel_cases_path();
    std::ifstream in(path);
    if (!in) throw KernelCaseError(path + ": cannot read the kernel case registry (set DELTABENCH_KERNEL_CASES)");
    std::stringstream text;
    text << in.rdbuf();
    return parse_kernel_cases(text.str(), path);
  }();
  return cases;
}

std::string case_name(const KernelCase& c) {
  return c.op + "/B" + std::to_string(c.B) + "/T" + std::to_string(c.T) + "/H" + std::to_string(c.H) + "/K" +
         std::to_string(c.K) + (c.dtype == "bf16" ? "" : "/" + c.dtype);
}

double case_bytes(const KernelCase& c) {
  const double tokens = static_cast<double>(c.B * c.T * c.H);
  if (is_decode(c)) return static_cast<double>(c.B * c.H) * (8.0 * c.K * c.V) + tokens * 2.0 * (2 * c.K + 2 * c.V);
  if (is_fwd_bwd(c)) return tokens * 2.0 * (6 * c.K + 5 * c.V);
  return tokens * 2.0 * (2 * c.K + 2 * c.V);
}

double case_flops(const KernelCase& c) {
  if (is_fwd_bwd(c)) {
    KernelCase forward = c;
    forward.op = c.op.substr(8);
    return 3 * case_flops(forward);
  }
  const double C = 64, K = static_cast<double>(c.K), V = static_cast<double>(c.V);
  const double heads = static_cast<double>(c.B * c.H), T = static_cast<double>(c.T);
  if (c.op == "sdpa") return heads * T * T * (K + V);
  if (is_decode(c)) return heads * T * 6 * K * V;
  const double chunks = heads * T / C;
  if (c.op == "linear_attention") return chunks * (2 * C * C * K + 4 * C * K * V + 2 * C * C * V);
  return chunks * (4 * C * C * K + C * C * (K + V) + 6 * C * K * V + 2 * C * C * V);
}

double floor_ms(const KernelCase& c, const Rates& rates) {
  const double memory = case_bytes(c) / rates.bytes_per_s, math = case_flops(c) / rates.flops_per_s;
  return 1e3 * (memory > math ? memory : math);
}

}  // namespace deltabench::bench
