#pragma once
// A suite: a grid of experiments in one config file, and the rule that turns its runs into table
// cells. The grid is task variants x model variants x d_model x lr x weight decay x seed; every run
// is the file's [base] experiment with its task's and model's overrides and its axis values.
//
//   [suite]   name, description, kind ("sweep" or "ablations"), select (axes a cell maximises over)
//   [grid]    tasks, models (variant names, in table order), d_model, lr, weight_decay, seed
//   [base]    an experiment: [base.task], [base.model], [base.model.mixer], [base.train]; its
//             [base.train] device and checkpoint are the suite's placement, not part of any run
//             (flags override them); keys the grid owns (d_model, lr, weight_decay, seed) are errors
//   [tasks.<name>]   label, setting (a MAD setting), axis lists, and tables that override [base]
//   [models.<name>]  the same for models
//
// A grid entry "mad:all" or "mad:baseline" stands for MAD's 66 settings or its 6 baselines
// (compression's train MAD's autoencoder backbone, as every compression run does).
// A task variant that names another task than the base replaces the base's [task.params]; the
// base's other [task] keys (example counts, seeds) stay.

#include "tasks/mad_settings.h"
#include "train/config.h"
#include "train/toml.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace deltabench::sweep {

struct Axes {
  std::vector<int64_t> d_model;
  std::vector<double> lr, weight_decay;
  std::vector<int64_t> seed;
};

struct Variant {
  std::string name;   // the key in [tasks] / [models] or a MAD setting's name
  std::string label;  // for tables; the name unless given
  toml::Table overrides;
  Axes axes;          // empty lists: the grid's
};

struct Run {
  size_t index = 0;         // position in the expanded grid (what --shard splits)
  std::string id;           // "<task>/<model>/d64/lr0.001/wd0.1/s123"
  std::string hash;         // 16 hex digits of the run's canonical config (what it trains, not where)
  std::string task, model;  // variant names
  int64_t d_model = 0;
  double lr = 0, weight_decay = 0;
  int64_t seed = 0;
  std::string config_toml;  // canonical text of the whole experiment
  train::ExperimentConfig config;
};

struct Suite {
  std::string name, description, source;
  std::string kind = "sweep";                      // "sweep" or "ablations"
  std::vector<std::string> select = {"lr", "weight_decay"};
  // [suite] mad_protocol: which data MAD's settings stand for ("published", the default: mad-lab's
  // benchmark as the published numbers were made; "fixed": the settings as written, tasks/mad_settings.h).
  tasks::MadProtocol mad_protocol = tasks::MadProtocol::kPublished;
  std::vector<Variant> tasks, models;
  Axes grid;
  toml::Table base;             // without the placement keys
  train::Placement placement;   // [base.train] device and checkpoint, with their file and line

  const Variant& task(const std::string& name) const;
  const Variant& model(const std::string& name) const;
};

// Throws train::ConfigError naming file, line and key.
Suite load_suite(const std::string& path);
Suite parse_suite(const std::string& text, const std::string& source);

// Every run of the grid in a fixed order (tasks, models, d_model, lr, weight decay, seed), each
// checked as an experiment config. Where the runs train is the suite's placement, not the runs'.
std::vector<Run> expand(const Suite& suite);

// `run --only AXIS=V1,V2,...`: the runs whose AXIS takes one of the values. Axes: task and model (variant
// names; a value ending in '*' is a prefix, "fuzzy-in-context-recall:*" every setting of that MAD task), d_model
// and seed (integers), lr and weight_decay (numbers, equal within a relative 1e-6, so 4.6416e-4 selects
// 0.0004641588833612782). Several selections: a run must be in each.
struct RunSelection {
  std::string axis;
  std::vector<std::string> values;
};

// Parses "axis=v1,v2"; throws train::ConfigError naming --only, the text, and what was expected.
RunSelection parse_selection(const std::string& text);
// Whether `run` is in every selection (none: every run is).
bool selected(const Run& run, const std::vector<RunSelection>& only);
// Throws train::ConfigError where a selection's value matches no run of `runs` (a typo that would
// select nothing), naming the value and the axis's values in the grid.
void check_selection(const std::vector<Run>& runs, const std::vector<RunSelection>& only);

using train::fnv1a_hex;

// Finds a suite by name: an existing file as given, else configs/suites/<name>.toml under the
// working directory, else under the source tree this binary was built from.
std::string find_suite_file(const std::string& name_or_path);

}  // namespace deltabench::sweep
