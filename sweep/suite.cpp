#include "sweep/suite.h"

#include "tasks/mad_settings.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>

namespace deltabench::sweep {
namespace {

using train::ConfigError;

[[noreturn]] void fail(const std::string& source, int line, const std::string& where, const std::string& message) {
  throw ConfigError(source + ":" + std::to_string(line) + ": " + where + " " + message);
}

int line_of(const toml::Table& t, const std::string& key) {
  const auto it = t.values.find(key);
  return it != t.values.end() ? it->second.line : t.line;
}

std::vector<toml::Value> as_list(const toml::Value& v) {
  if (v.is_array()) return std::get<std::vector<toml::Value>>(v.data);
  return {v};
}

// Reads one axis list (a number or an array of numbers) from `t[key]` if present.
template <typename T>
void read_axis(const toml::Table& t, const std::string& key, const std::string& where, const std::string& source,
               std::vector<T>& out) {
  const auto it = t.values.find(key);
  if (it == t.values.end()) return;
  out.clear();
  for (const auto& v : as_list(it->second)) {
    if constexpr (std::is_same_v<T, int64_t>) {
      if (!v.is_integer() || std::get<int64_t>(v.data) < (key == "seed" ? 0 : 1)) {
        fail(source, it->second.line, where, key + ": expected " + (key == "seed" ? "integers >= 0" : "integers >= 1") +
                                                 ", got " + it->second.written());
      }
      out.push_back(std::get<int64_t>(v.data));
    } else {
      if (!v.is_number() || v.number() < 0 || (key == "lr" && v.number() == 0)) {
        fail(source, it->second.line, where, key + ": expected " + (key == "lr" ? "numbers > 0" : "numbers >= 0") +
                                                 ", got " + it->second.written());
      }
      out.push_back(v.number());
    }
  }
  if (out.empty()) fail(source, it->second.line, where, key + ": expected at least one value, got []");
  std::set<T> seen(out.begin(), out.end());
  if (seen.size() != out.size()) fail(source, it->second.line, where, key + ": repeated value in " + it->second.written());
}

void read_axes(const toml::Table& t, const std::string& where, const std::string& source, Axes& axes) {
  read_axis(t, "d_model", where, source, axes.d_model);
  read_axis(t, "lr", where, source, axes.lr);
  read_axis(t, "weight_decay", where, source, axes.weight_decay);
  read_axis(t, "seed", where, source, axes.seed);
}

std::string string_value(const toml::Table& t, const std::string& key, const std::string& where,
                         const std::string& source, const std::string& fallback) {
  const auto it = t.values.find(key);
  if (it == t.values.end()) return fallback;
  if (!it->second.is_string()) fail(source, it->second.line, where, key + ": expected a string in quotes, got " + it->second.written());
  return std::get<std::string>(it->second.data);
}

void only_keys(const toml::Table& t, const std::set<std::string>& keys, const std::set<std::string>& tables,
               const std::string& where, const std::string& source) {
  std::string known;
  for (const auto& k : keys) known += (known.empty() ? "" : ", ") + k;
  for (const auto& [key, value] : t.values) {
    if (!keys.contains(key)) fail(source, value.line, where, "unknown key '" + key + "' (known: " + known + ")");
  }
  std::string known_tables;
  for (const auto& k : tables) known_tables += (known_tables.empty() ? "" : ", ") + k;
  for (const auto& [name, sub] : t.tables) {
    if (!tables.contains(name)) {
      fail(source, sub.line, where, "unknown table '" + name + "' (known: " + (known_tables.empty() ? "none" : known_tables) + ")");
    }
  }
}

toml::Table mad_task_table(const tasks::MadSetting& s, int line);

const std::set<std::string> kAxisKeys = {"d_model", "lr", "weight_decay", "seed"};
const std::set<std::string> kOverrideTables = {"task", "model", "train"};

// Keys of an experiment that the grid's axes own: set in [base] or a variant's tables, they would be
// overwritten by the axis without a word, so they are errors.
void refuse_grid_keys(const toml::Table& t, const std::string& where, const std::string& source) {
  const auto refuse = [&](const char* table, const char* key, const char* axis) {
    const auto sub = t.tables.find(table);
    if (sub == t.tables.end()) return;
    const auto it = sub->second.values.find(key);
    if (it == sub->second.values.end()) return;
    fail(source, it->second.line, where.substr(0, where.size() - 1) + "." + table + "]",
         std::string(key) + ": the grid's " + axis + " axis sets it; give " + axis + " = [...] in [grid] or " +
             "in the variant's own table instead, got " + it->second.written());
  };
  refuse("model", "d_model", "d_model");
  refuse("train", "lr", "lr");
  refuse("train", "weight_decay", "weight_decay");
}

// Placement keys ([train] device, backend, recompute, checkpoint) belong to the suite, not to one variant.
void refuse_placement_keys(const toml::Table& t, const std::string& where, const std::string& source) {
  const auto sub = t.tables.find("train");
  if (sub == t.tables.end()) return;
  for (const char* key : train::kPlacementKeys) {
    if (const auto it = sub->second.values.find(key); it != sub->second.values.end()) {
      fail(source, it->second.line, where.substr(0, where.size() - 1) + ".train]",
           std::string(key) + ": says where runs train, not what they train; give it in [base.train] (or as --" + key +
               (std::string(key) == "checkpoint" ? "-dir" : "") + ") for the whole suite");
    }
  }
}

Variant read_variant(const std::string& kind, const std::string& name, const toml::Table& t, const std::string& source,
                     tasks::MadProtocol protocol) {
  const std::string where = "[" + kind + "." + name + "]";
  std::set<std::string> keys = kAxisKeys;
  keys.insert("label");
  if (kind == "tasks") keys.insert("setting");
  only_keys(t, keys, kOverrideTables, where, source);
  refuse_grid_keys(t, where, source);
  refuse_placement_keys(t, where, source);
  Variant v;
  v.name = name;
  v.label = string_value(t, "label", where, source, name);
  read_axes(t, where, source, v.axes);
  for (const auto& [table_name, sub] : t.tables) v.overrides.tables[table_name] = sub;
  if (const auto it = t.values.find("setting"); it != t.values.end()) {
    const std::string setting = string_value(t, "setting", where, source, "");
    try {
      toml::Table task = mad_task_table(tasks::find_mad_setting(setting, protocol), it->second.line);
      // The variant's own [task] keys (train_examples, ...) apply on top of the setting.
      if (const auto own = v.overrides.tables.find("task"); own != v.overrides.tables.end()) toml::merge(task, own->second);
      v.overrides.tables["task"] = task;
    } catch (const tasks::TaskError& e) {
      fail(source, it->second.line, where, std::string("setting: ") + e.what());
    }
  }
  return v;
}

// MAD settings given as parameter strings ("16") become TOML integers or floats where they read as
// such, so that a setting's table equals what a person would write.
toml::Value typed(const std::string& text, int line) {
  int64_t i = 0;
  const auto* end = text.data() + text.size();
  if (auto r = std::from_chars(text.data(), end, i); r.ec == std::errc{} && r.ptr == end) return {i, line};
  double d = 0;
  if (auto r = std::from_chars(text.data(), end, d); r.ec == std::errc{} && r.ptr == end) return {d, line};
  return {text, line};
}

// A MAD setting as a [task] table: its task's name and every parameter of the setting.
toml::Table mad_task_table(const tasks::MadSetting& s, int line) {
  toml::Table task, params;
  task.line = params.line = line;
  task.values["name"] = toml::Value{std::string(tasks::mad_task_name(s.task)), line};
  for (const auto& [k, value] : s.params) params.values[k] = typed(value, line);
  task.tables["params"] = params;
  return task;
}

Variant mad_variant(const tasks::MadSetting& s, int line) {
  Variant v;
  v.name = s.name;
  v.label = s.name;
  v.overrides.tables["task"] = mad_task_table(s, line);
  return v;
}

std::string format_number(double x) { return toml::Value{x}.str(); }

}  // namespace

const Variant& Suite::task(const std::string& n) const {
  for (const auto& v : tasks) {
    if (v.name == n) return v;
  }
  throw ConfigError(source + ": no task variant '" + n + "'");
}

const Variant& Suite::model(const std::string& n) const {
  for (const auto& v : models) {
    if (v.name == n) return v;
  }
  throw ConfigError(source + ": no model variant '" + n + "'");
}

Suite parse_suite(const std::string& text, const std::string& source) {
  toml::Table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::ParseError& e) {
    throw ConfigError(e.what());
  }
  only_keys(root, {}, {"suite", "grid", "base", "tasks", "models"}, "top level", source);
  for (const char* required : {"suite", "grid", "base"}) {
    if (!root.tables.contains(required)) throw ConfigError(source + ": a [" + std::string(required) + "] table is required");
  }
  Suite s;
  s.source = source;

  const auto& head = root.tables.at("suite");
  only_keys(head, {"name", "description", "kind", "select", "mad_protocol"}, {}, "[suite]", source);
  s.name = string_value(head, "name", "[suite]", source, std::filesystem::path(source).stem().string());
  s.description = string_value(head, "description", "[suite]", source, "");
  s.kind = string_value(head, "kind", "[suite]", source, "sweep");
  if (s.kind != "sweep" && s.kind != "ablations") {
    fail(source, line_of(head, "kind"), "[suite]", "kind: expected \"sweep\" or \"ablations\", got " + s.kind);
  }
  const std::string protocol = string_value(head, "mad_protocol", "[suite]", source, "published");
  if (protocol != "published" && protocol != "fixed") {
    fail(source, line_of(head, "mad_protocol"), "[suite]",
         "mad_protocol: expected \"published\" or \"fixed\", got " + protocol);
  }
  s.mad_protocol = protocol == "published" ? tasks::MadProtocol::kPublished : tasks::MadProtocol::kFixed;
  if (const auto it = head.values.find("select"); it != head.values.end()) {
    s.select.clear();
    for (const auto& v : as_list(it->second)) {
      const std::string axis = v.is_string() ? std::get<std::string>(v.data) : "";
      if (axis != "lr" && axis != "weight_decay" && axis != "d_model") {
        fail(source, it->second.line, "[suite]", "select: expected axes among \"lr\", \"weight_decay\", \"d_model\", got " +
                                                     it->second.written());
      }
      s.select.push_back(axis);
    }
  }

  const auto& grid = root.tables.at("grid");
  only_keys(grid, {"tasks", "models", "d_model", "lr", "weight_decay", "seed"}, {}, "[grid]", source);
  read_axes(grid, "[grid]", source, s.grid);
  if (s.grid.d_model.empty() || s.grid.lr.empty() || s.grid.weight_decay.empty() || s.grid.seed.empty()) {
    throw ConfigError(source + ":" + std::to_string(grid.line) + ": [grid] needs d_model, lr, weight_decay and seed");
  }
  const auto names = [&](const std::string& key) {
    const auto it = grid.values.find(key);
    if (it == grid.values.end()) fail(source, grid.line, "[grid]", key + ": required (the variants, in table order)");
    std::vector<std::pair<std::string, int>> out;
    for (const auto& v : as_list(it->second)) {
      if (!v.is_string()) fail(source, it->second.line, "[grid]", key + ": expected variant names in quotes, got " + it->second.written());
      out.emplace_back(std::get<std::string>(v.data), it->second.line);
    }
    return out;
  };

  const auto& task_tables = root.tables.contains("tasks") ? root.tables.at("tasks") : toml::Table{};
  const auto& model_tables = root.tables.contains("models") ? root.tables.at("models") : toml::Table{};
  if (!task_tables.values.empty()) fail(source, task_tables.values.begin()->second.line, "[tasks]", "holds variant tables only");
  if (!model_tables.values.empty()) fail(source, model_tables.values.begin()->second.line, "[models]", "holds variant tables only");
  std::set<std::string> used;
  for (const auto& [name, line] : names("tasks")) {
    if (name == "mad:all" || name == "mad:baseline") {
      for (const auto& setting : tasks::mad_settings(s.mad_protocol)) {
        if (name == "mad:baseline" && setting.name.find(":baseline") == std::string::npos) continue;
        s.tasks.push_back(mad_variant(setting, line));
      }
      continue;
    }
    const auto it = task_tables.tables.find(name);
    if (it == task_tables.tables.end()) {
      // A MAD setting may be named directly.
      try {
        s.tasks.push_back(mad_variant(tasks::find_mad_setting(name, s.mad_protocol), line));
        continue;
      } catch (const tasks::TaskError&) {
        fail(source, line, "[grid]", "tasks: no [tasks." + name + "] table and no MAD setting of that name");
      }
    }
    used.insert("tasks." + name);
    s.tasks.push_back(read_variant("tasks", name, it->second, source, s.mad_protocol));
  }
  for (const auto& [name, line] : names("models")) {
    const auto it = model_tables.tables.find(name);
    if (it == model_tables.tables.end()) fail(source, line, "[grid]", "models: no [models." + name + "] table");
    used.insert("models." + name);
    s.models.push_back(read_variant("models", name, it->second, source, s.mad_protocol));
  }
  for (const auto& [kind, tables] : {std::pair{"tasks", &task_tables}, std::pair{"models", &model_tables}}) {
    for (const auto& [name, t] : tables->tables) {
      if (!used.contains(std::string(kind) + "." + name)) {
        fail(source, t.line, "[" + std::string(kind) + "." + name + "]", std::string("is not listed in [grid] ") + kind);
      }
    }
  }
  std::set<std::string> seen;
  for (const auto* list : {&s.tasks, &s.models}) {
    seen.clear();
    for (const auto& v : *list) {
      if (!seen.insert(v.name).second) fail(source, grid.line, "[grid]", "variant '" + v.name + "' is listed twice");
    }
  }
  if (s.tasks.empty() || s.models.empty()) throw ConfigError(source + ": [grid] tasks and models must name at least one variant");

  s.base = root.tables.at("base");
  only_keys(s.base, {"seed"}, kOverrideTables, "[base]", source);
  if (s.base.values.contains("seed")) {
    fail(source, line_of(s.base, "seed"), "[base]", "seed: the grid's seed axis sets it; give [grid] seed instead");
  }
  refuse_grid_keys(s.base, "[base]", source);
  // The placement is read once, here, and leaves the base: no run's identity ever holds it.
  if (auto it = s.base.tables.find("train"); it != s.base.tables.end()) {
    auto& values = it->second.values;
    // A placement key's text and origin, taken out of the base; false where the key is absent.
    const auto take = [&](const char* key, std::string& text, std::string& origin) {
      const auto v = values.find(key);
      if (v == values.end()) return false;
      if (!v->second.is_string()) {
        fail(source, v->second.line, "[base.train]", std::string(key) + ": expected a string in quotes, got " + v->second.written());
      }
      text = std::get<std::string>(v->second.data);
      origin = source + ":" + std::to_string(v->second.line) + ": [base.train] " + key;
      values.erase(v);
      return true;
    };
    auto& p = s.placement;
    if (take("device", p.device, p.device_origin)) train::check_device_spelling(p.device, p.device_origin);
    if (take("backend", p.backend, p.backend_origin)) train::parse_backend(p.backend, p.backend_origin);
    if (take("recompute", p.recompute, p.recompute_origin)) train::parse_recompute(p.recompute, p.recompute_origin);
    take("checkpoint", p.checkpoint, p.checkpoint_origin);
  }
  return s;
}

Suite load_suite(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot open the suite file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parse_suite(buffer.str(), path);
}

std::vector<Run> expand(const Suite& suite) {
  std::vector<Run> runs;
  const auto pick = [](const auto& a, const auto& b, const auto& grid) { return !a.empty() ? a : !b.empty() ? b : grid; };
  for (const auto& task : suite.tasks) {
    for (const auto& model : suite.models) {
      toml::Table table = suite.base;
      // A variant that names another task brings its own parameters; the base's other [task] keys stay.
      if (const auto t = task.overrides.tables.find("task"); t != task.overrides.tables.end()) {
        const auto name = t->second.values.find("name");
        const auto base_task = table.tables.find("task");
        if (name != t->second.values.end() && base_task != table.tables.end()) {
          const auto base_name = base_task->second.values.find("name");
          if (base_name == base_task->second.values.end() || base_name->second.str() != name->second.str()) {
            base_task->second.tables.erase("params");
          }
        }
      }
      toml::merge(table, task.overrides);
      toml::merge(table, model.overrides);
      const auto& d_models = pick(model.axes.d_model, task.axes.d_model, suite.grid.d_model);
      const auto& lrs = pick(model.axes.lr, task.axes.lr, suite.grid.lr);
      const auto& wds = pick(model.axes.weight_decay, task.axes.weight_decay, suite.grid.weight_decay);
      const auto& seeds = pick(model.axes.seed, task.axes.seed, suite.grid.seed);
      for (const int64_t d : d_models) {
        for (const double lr : lrs) {
          for (const double wd : wds) {
            for (const int64_t seed : seeds) {
              Run r;
              r.index = runs.size();
              r.task = task.name;
              r.model = model.name;
              r.d_model = d;
              r.lr = lr;
              r.weight_decay = wd;
              r.seed = seed;
              r.id = task.name + "/" + model.name + "/d" + std::to_string(d) + "/lr" + format_number(lr) + "/wd" +
                     format_number(wd) + "/s" + std::to_string(seed);
              toml::Table t = table;
              t.values["seed"] = toml::Value{seed};
              t.tables["model"].values["d_model"] = toml::Value{d};
              t.tables["train"].values["lr"] = toml::Value{lr};
              t.tables["train"].values["weight_decay"] = toml::Value{wd};
              r.config_toml = toml::to_toml(t);
              r.hash = train::run_hash(r.config_toml);
              try {
                r.config = train::build_experiment(t, suite.source);
              } catch (const ConfigError& e) {
                throw ConfigError(std::string(e.what()) + " (in run " + r.id + ")");
              }
              r.config.name = suite.name + "/" + r.id;
              runs.push_back(std::move(r));
            }
          }
        }
      }
    }
  }
  return runs;
}

std::string find_suite_file(const std::string& name) {
  namespace fs = std::filesystem;
  if (fs::is_regular_file(name)) return name;
  const std::string relative = "configs/suites/" + name + ".toml";
  if (fs::is_regular_file(relative)) return relative;
#ifdef DELTABENCH_SOURCE_DIR
  const std::string installed = std::string(DELTABENCH_SOURCE_DIR) + "/" + relative;
  if (fs::is_regular_file(installed)) return installed;
#endif
  std::string known;
  for (const std::string dir : {std::string("configs/suites")
#ifdef DELTABENCH_SOURCE_DIR
                                    , std::string(DELTABENCH_SOURCE_DIR) + "/configs/suites"
#endif
       }) {
    if (!fs::is_directory(dir)) continue;
    for (const auto& e : fs::directory_iterator(dir)) {
      if (e.path().extension() == ".toml") known += (known.empty() ? "" : ", ") + e.path().stem().string();
    }
    if (!known.empty()) break;
  }
  throw ConfigError("suite '" + name + "': no such file, and no " + relative + " (known suites: " +
                    (known.empty() ? "none found" : known) + ")");
}

namespace {

constexpr std::array<std::string_view, 6> kSelectionAxes = {"task", "model", "d_model", "lr", "weight_decay", "seed"};

// "task, model, ... or seed", for messages.
std::string selection_axes_text() {
  std::string text;
  for (size_t i = 0; i < kSelectionAxes.size(); ++i) {
    text += i == 0 ? "" : i + 1 == kSelectionAxes.size() ? " or " : ", ";
    text += kSelectionAxes[i];
  }
  return text;
}

// A run's value on a selection's axis, as text (for messages and the string axes).
std::string axis_text(const Run& run, const std::string& axis) {
  if (axis == "task") return run.task;
  if (axis == "model") return run.model;
  if (axis == "d_model") return std::to_string(run.d_model);
  if (axis == "seed") return std::to_string(run.seed);
  if (axis == "lr") return format_number(run.lr);
  return format_number(run.weight_decay);
}

std::optional<double> parse_number(const std::string& text) {
  double x = 0;
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, x);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return x;
}

bool matches(const Run& run, const std::string& axis, const std::string& value) {
  if (axis == "lr" || axis == "weight_decay") {
    const double x = axis == "lr" ? run.lr : run.weight_decay;
    const auto v = parse_number(value);
    return v && std::abs(*v - x) <= 1e-6 * std::max(std::abs(*v), std::abs(x));
  }
  // A task or model name ending in '*' is a prefix: "fuzzy-in-context-recall:*" takes that task's every setting.
  if (value.ends_with('*')) return axis_text(run, axis).starts_with(std::string_view(value).substr(0, value.size() - 1));
  return axis_text(run, axis) == value;
}

}  // namespace

RunSelection parse_selection(const std::string& text) {
  const auto eq = text.find('=');
  RunSelection s;
  s.axis = text.substr(0, eq);
  if (eq == std::string::npos || std::find(kSelectionAxes.begin(), kSelectionAxes.end(), s.axis) == kSelectionAxes.end()) {
    throw ConfigError("--only: expected AXIS=VALUE[,VALUE...] with AXIS one of " + selection_axes_text() + ", got \"" +
                      text + "\"");
  }
  std::stringstream rest(text.substr(eq + 1));
  for (std::string v; std::getline(rest, v, ',');) {
    if (v.empty()) continue;
    if ((s.axis == "d_model" || s.axis == "seed") && v.find_first_not_of("0123456789") != std::string::npos) {
      throw ConfigError("--only " + s.axis + ": expected whole numbers, got \"" + v + "\"");
    }
    if ((s.axis == "lr" || s.axis == "weight_decay") && !parse_number(v)) {
      throw ConfigError("--only " + s.axis + ": expected numbers, got \"" + v + "\"");
    }
    if ((s.axis == "task" || s.axis == "model") && v.find('*') != std::string::npos && v.find('*') + 1 != v.size()) {
      throw ConfigError("--only " + s.axis + ": '*' ends a prefix (e.g. task=fuzzy-in-context-recall:*), got \"" + v +
                        "\"");
    }
    s.values.push_back(v);
  }
  if (s.values.empty()) throw ConfigError("--only " + s.axis + ": no value given in \"" + text + "\"");
  return s;
}

bool selected(const Run& run, const std::vector<RunSelection>& only) {
  return std::all_of(only.begin(), only.end(), [&](const RunSelection& s) {
    return std::any_of(s.values.begin(), s.values.end(), [&](const std::string& v) { return matches(run, s.axis, v); });
  });
}

void check_selection(const std::vector<Run>& runs, const std::vector<RunSelection>& only) {
  for (const auto& s : only) {
    for (const auto& v : s.values) {
      if (std::any_of(runs.begin(), runs.end(), [&](const Run& r) { return matches(r, s.axis, v); })) continue;
      std::set<std::string> seen;
      std::string known;
      for (const auto& r : runs) {
        if (seen.insert(axis_text(r, s.axis)).second) known += (known.empty() ? "" : ", ") + axis_text(r, s.axis);
      }
      throw ConfigError("--only " + s.axis + "=" + v + ": no run of the grid has it (the grid's " + s.axis + ": " +
                        known + ")");
    }
  }
}

}  // namespace deltabench::sweep
