#include "report/report.h"

#include "report/format.h"

#include "tasks/mad.h"
#include "tasks/mad_settings.h"

#include <fmt/core.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <tuple>

namespace deltabench::report {
namespace {

using sweep::Run;
using sweep::Suite;

// ---- selection --------------------------------------------------------------------------------

struct Cell {
  size_t present = 0, expected = 0, failed = 0;
  bool complete() const { return present == expected; }
  double value = std::numeric_limits<double>::quiet_NaN();
  double low = value, high = value;  // the selected group's smallest and largest seed
  size_t seeds = 0;                  // runs averaged into `value`
  double best_lr = 0, best_wd = 0;
  int64_t best_d = 0;
};

// (task variant, model variant, d_model or 0 when d_model is not a column)
using CellKey = std::tuple<std::string, std::string, int64_t>;

std::string joined(const std::set<double>& xs) {
  std::string out;
  for (const double x : xs) out += (out.empty() ? "" : ", ") + toml::Value{x}.str();
  return out;
}

std::string joined(const std::set<int64_t>& xs) {
  std::string out;
  for (const auto x : xs) out += (out.empty() ? "" : ", ") + std::to_string(x);
  return out;
}

bool selects(const Suite& s, const std::string& axis) {
  return std::find(s.select.begin(), s.select.end(), axis) != s.select.end();
}

// One table's cells from the runs whose task is in `tasks`. Runs within a cell are grouped by
// (lr, weight decay, d_model unless it is a column); a group's value is its mean over seeds, and the
// cell's is the max over groups. An axis that varies within a cell must be one the suite selects over.
std::map<CellKey, Cell> select_cells(const Suite& suite, const std::vector<Run>& runs, const Records& records,
                                     const std::set<std::string>& tasks, bool d_model_column) {
  struct Group {
    size_t present = 0, expected = 0;
    double sum = 0, low = std::numeric_limits<double>::infinity(), high = -std::numeric_limits<double>::infinity();
  };
  std::map<CellKey, std::map<std::tuple<double, double, int64_t>, Group>> groups;
  std::map<CellKey, Cell> cells;
  std::map<CellKey, std::tuple<std::set<double>, std::set<double>, std::set<int64_t>>> axes;
  for (const auto& run : runs) {
    if (!tasks.contains(run.task)) continue;
    const CellKey key{run.task, run.model, d_model_column ? run.d_model : 0};
    auto& g = groups[key][{run.lr, run.weight_decay, d_model_column ? 0 : run.d_model}];
    auto& cell = cells[key];
    auto& [lrs, wds, ds] = axes[key];
    lrs.insert(run.lr), wds.insert(run.weight_decay), ds.insert(run.d_model);
    ++g.expected, ++cell.expected;
    const auto it = records.find(run.hash);
    if (it == records.end()) continue;
    if (it->second.status == "failed") {
      ++cell.failed;
      continue;
    }
    ++g.present, ++cell.present;
    const double value = it->second.status == "diverged" ? 0.0 : it->second.final_accuracy;
    g.sum += value;
    g.low = std::min(g.low, value), g.high = std::max(g.high, value);
  }
  for (auto& [key, cell] : cells) {
    const auto& [lrs, wds, ds] = axes[key];
    const auto check = [&](const std::string& axis, size_t n, const std::string& values) {
      if (n > 1 && !selects(suite, axis)) {
        throw ReportError(fmt::format("{}: a cell of task '{}', model '{}' has {} = {{{}}}; add \"{}\" to [suite] select "
                                      "or give one value",
                                      suite.source, std::get<0>(key), std::get<1>(key), axis, values, axis));
      }
    };
    check("lr", lrs.size(), joined(lrs));
    check("weight_decay", wds.size(), joined(wds));
    if (!d_model_column) check("d_model", ds.size(), joined(ds));
    if (!cell.complete()) continue;
    double best = -1;
    for (const auto& [hp, g] : groups[key]) {
      const double mean = g.sum / static_cast<double>(g.present);
      if (mean > best) {
        best = mean;
        cell.low = g.low, cell.high = g.high, cell.seeds = g.present;
        cell.best_lr = std::get<0>(hp);
        cell.best_wd = std::get<1>(hp);
        cell.best_d = d_model_column ? std::get<2>(key) : std::get<2>(hp);
      }
    }
    cell.value = best;
  }
  return cells;
}

std::string selection_rule(const Suite& suite, const std::vector<Run>& runs, const std::set<std::string>& tasks,
                           bool d_model_column) {
  std::set<double> lrs, wds;
  std::set<int64_t> ds, seeds;
  for (const auto& r : runs) {
    if (!tasks.contains(r.task)) continue;
    lrs.insert(r.lr), wds.insert(r.weight_decay), ds.insert(r.d_model), seeds.insert(r.seed);
  }
  std::vector<std::string> over;
  if (selects(suite, "lr") && lrs.size() > 1) over.push_back("lr {" + joined(lrs) + "}");
  if (selects(suite, "weight_decay") && wds.size() > 1) over.push_back("weight decay {" + joined(wds) + "}");
  if (!d_model_column && selects(suite, "d_model") && ds.size() > 1) over.push_back("d_model {" + joined(ds) + "}");
  std::string fixed;
  if (lrs.size() == 1) fixed += "lr " + joined(lrs) + ", ";
  if (wds.size() == 1) fixed += "weight decay " + joined(wds) + ", ";
  if (!d_model_column && ds.size() == 1) fixed += "d_model " + joined(ds) + ", ";
  std::string text = "Each cell is the final test accuracy (the task's own metric)";
  text += seeds.size() > 1 ? ", averaged over seeds {" + joined(seeds) + "}" : " of seed " + joined(seeds);
  if (!over.empty()) {
    text += ", maximised over ";
    for (size_t i = 0; i < over.size(); ++i) text += (i ? " x " : "") + over[i];
  }
  if (!fixed.empty()) text += " (" + fixed.substr(0, fixed.size() - 2) + ")";
  return text + ". Diverged runs count as 0; a cell with runs missing from the store (or failed) shows how many it has.";
}

// ---- tables -----------------------------------------------------------------------------------

std::string missing(const Cell& c) {
  std::string text = fmt::format("missing ({}/{} runs)", c.present, c.expected);
  if (c.failed) text = fmt::format("missing ({}/{} runs, {} failed)", c.present, c.expected, c.failed);
  return text;
}

struct CsvRow {
  std::string section, table, row, column;
  Cell cell;
};

// ---- the report's sections --------------------------------------------------------------------

bool is_mqar(const Run& r) { return r.config.task.name == "mqar"; }

// One point of a figure line: x, the cell's value and its seeds' range.
struct Point {
  int64_t x = 0;
  double value = 0, low = 0, high = 0;
};

struct Section {
  std::string heading, text;  // Markdown
  std::vector<Table> tables;
  std::vector<CsvRow> csv;
  // MQAR figure data: panels (task variants) x lines (models) x points (d_model, accuracy)
  std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::vector<Point>>>>> figure;
  // Bar chart data (MAD scores, ablation accuracies): groups (models) x bars (tasks).
  std::string chart_stem, chart_title, chart_ylabel;
  std::vector<std::string> chart_bars;
  std::vector<std::pair<std::string, std::vector<double>>> chart_groups;
};

Section mqar_section(const Suite& suite, const std::vector<Run>& runs, const Records& records) {
  Section sec;
  std::set<std::string> tasks;
  std::vector<std::string> order;
  for (const auto& r : runs) {
    if (is_mqar(r) && tasks.insert(r.task).second) order.push_back(r.task);
  }
  if (tasks.empty()) return sec;
  sec.heading = "MQAR: accuracy by model and d_model";
  sec.text = selection_rule(suite, runs, tasks, true);
  const auto cells = select_cells(suite, runs, records, tasks, true);
  for (const auto& task_name : order) {
    const auto& task = suite.task(task_name);
    std::set<int64_t> widths;
    for (const auto& r : runs) {
      if (r.task == task_name) widths.insert(r.d_model);
    }
    const Run* example = nullptr;
    for (const auto& r : runs) {
      if (r.task == task_name) example = &r;
    }
    const auto& p = example->config.task.params;
    Table t;
    t.title = fmt::format("MQAR {} (L = {}, {} key-value pairs, vocabulary {})", task.label,
                          p.contains("seq_len") ? p.at("seq_len") : "?", p.contains("num_kv_pairs") ? p.at("num_kv_pairs") : "?",
                          p.contains("vocab_size") ? p.at("vocab_size") : "?");
    t.caption = sec.text;
    t.header.push_back("model");
    for (const auto d : widths) t.header.push_back(fmt::format("d_model {}", d));
    std::vector<std::pair<std::string, std::vector<Point>>> lines;
    for (const auto& model : suite.models) {
      std::vector<std::string> row{model.label};
      std::vector<Point> points;
      for (const auto d : widths) {
        const auto it = cells.find({task_name, model.name, d});
        if (it == cells.end()) {
          row.push_back("not in grid");
          continue;
        }
        const Cell& c = it->second;
        row.push_back(c.complete() ? fmt::format("{:.3f}", c.value) : missing(c));
        if (c.complete()) points.push_back({d, c.value, c.low, c.high});
        sec.csv.push_back({"mqar", task.name, model.name, std::to_string(d), c});
      }
      t.rows.push_back(row);
      lines.emplace_back(model.label, points);
    }
    sec.tables.push_back(t);
    // The panel names its sequence length, unless the task's label already does ("L=64, 4 pairs").
    const std::string length = p.contains("seq_len") ? p.at("seq_len") : "?";
    const bool named = task.label.find(fmt::format("L={}", length)) != std::string::npos;
    sec.figure.emplace_back(named ? task.label : fmt::format("{} (L={})", task.label, length), lines);
  }
  return sec;
}

// The DeltaNet paper's MAD table (arXiv 2406.06484, as its authors' blog prints it; %).
struct Published {
  const char* model;
  double compress, fuzzy, icr, memorize, noisy, selcopy;
};
constexpr Published kPublished[] = {
    {"Transformer", 51.6, 29.8, 94.1, 85.2, 86.8, 99.6},     {"Hyena", 45.2, 7.9, 81.7, 89.5, 78.8, 93.1},
    {"Multihead Hyena", 44.8, 14.4, 99.0, 89.4, 98.6, 93.0}, {"Mamba", 52.7, 6.7, 90.4, 89.5, 90.1, 86.3},
    {"GLA", 38.8, 6.9, 80.8, 63.3, 81.6, 88.6},              {"DeltaNet", 42.2, 35.7, 100, 52.8, 100, 100}};

struct MadColumn {
  tasks::MadTask task;
  const char* title;
  double Published::*published;
};
const MadColumn kMadColumns[] = {{tasks::MadTask::kCompression, "Compress", &Published::compress},
                                 {tasks::MadTask::kFuzzyInContextRecall, "Fuzzy", &Published::fuzzy},
                                 {tasks::MadTask::kInContextRecall, "ICR", &Published::icr},
                                 {tasks::MadTask::kMemorization, "Memorize", &Published::memorize},
                                 {tasks::MadTask::kNoisyInContextRecall, "Noisy", &Published::noisy},
                                 {tasks::MadTask::kSelectiveCopying, "SelCopy", &Published::selcopy}};

// Issue 15's check of the MAD table: for each of the suite's models that the paper has a row of (attention as
// its Transformer, DeltaNet), this suite's score minus the published one per column, in points, and a list
// of the cells more than kPublishedTolerance away. None where the suite has neither model.
constexpr double kPublishedTolerance = 5.0;

std::optional<Table> published_gaps(const Suite& suite, const std::vector<Run>& runs,
                                    const std::vector<const MadColumn*>& columns,
                                    const std::map<std::string, std::vector<Cell>>& scores,
                                    const std::string& not_comparable) {
  const auto published_row = [&](const std::string& model) -> const Published* {
    const auto run = std::find_if(runs.begin(), runs.end(), [&](const Run& r) { return r.model == model; });
    if (run == runs.end()) return nullptr;
    const auto kind = run->config.model.mixer.kind;
    const char* name = kind == models::MixerKind::kAttention ? "Transformer"
                       : kind == models::MixerKind::kDeltaNet ? "DeltaNet"
                                                               : nullptr;
    if (name == nullptr) return nullptr;
    const auto row = std::find_if(std::begin(kPublished), std::end(kPublished),
                                  [&](const Published& p) { return std::string_view(p.model) == name; });
    return row == std::end(kPublished) ? nullptr : &*row;
  };
  Table t;
  t.header.push_back("model");
  for (const auto* c : columns) t.header.push_back(c->title);
  std::vector<std::string> far, missing_cells;
  for (const auto& model : suite.models) {
    const auto* p = published_row(model.name);
    if (p == nullptr) continue;
    std::vector<std::string> row{model.label == p->model ? model.label : fmt::format("{} ({})", model.label, p->model)};
    for (size_t i = 0; i < columns.size(); ++i) {
      const auto& score = scores.at(model.name)[i];
      if (!score.complete()) {
        row.push_back("missing");
        missing_cells.push_back(fmt::format("{} {}", model.label, columns[i]->title));
        continue;
      }
      const double gap = score.value - p->*(columns[i]->published);
      const bool is_far = std::abs(gap) > kPublishedTolerance;
      row.push_back(fmt::format("{:+.1f}{}", gap, is_far ? " *" : ""));
      if (is_far) {
        far.push_back(fmt::format("{} {} ({:.1f} against {:.1f})", model.label, columns[i]->title, score.value,
                                  p->*(columns[i]->published)));
      }
    }
    t.rows.push_back(row);
  }
  if (t.rows.empty()) return std::nullopt;
  t.title = "MAD: this suite against the published, in points";
  t.markdown_note = fmt::format("This suite's score minus the published one for the models the paper has a row of "
                                "(attention as its Transformer); * marks a cell more than {:.0f} points away. ",
                                kPublishedTolerance);
  t.markdown_note += far.empty()
                         ? fmt::format("No cell of those measured is more than {:.0f} points away.", kPublishedTolerance)
                         : fmt::format("More than {:.0f} points away: {}.", kPublishedTolerance, fmt::join(far, "; "));
  if (!missing_cells.empty()) t.markdown_note += fmt::format(" Not measured yet: {}.", fmt::join(missing_cells, "; "));
  t.caption = t.markdown_note + not_comparable;
  return t;
}

Section mad_section(const Suite& suite, const std::vector<Run>& runs, const Records& records) {
  Section sec;
  std::set<std::string> tasks;
  std::map<std::string, std::vector<std::string>> settings_of;  // MAD task name -> its settings (task variants)
  for (const auto& r : runs) {
    if (is_mqar(r) || tasks.contains(r.task)) continue;
    tasks.insert(r.task);
    settings_of[r.config.task.name].push_back(r.task);
  }
  if (tasks.empty()) return sec;
  sec.heading = "MAD: the DeltaNet paper's table";
  const auto cells = select_cells(suite, runs, records, tasks, false);
  std::vector<const MadColumn*> columns;
  for (const auto& c : kMadColumns) {
    if (settings_of.contains(std::string(tasks::mad_task_name(c.task)))) columns.push_back(&c);
  }
  size_t total_settings = 0;
  for (const auto& [name, settings] : settings_of) total_settings += settings.size();
  sec.text = selection_rule(suite, runs, tasks, false) +
             fmt::format(" A task's score is the mean of its settings' cells ({} settings here), in %, as MAD's "
                         "analysis computes it; Avg is the mean of the columns shown.",
                         total_settings);
  if (columns.size() < 6) {
    sec.text += fmt::format(" This suite has {} of MAD's six tasks, so Avg is not the paper's six-task average.", columns.size());
  }
  // The published scores are means over all of MAD's settings of a task; a suite with fewer (mad-baseline:
  // the baselines alone) measures something else, and says so beside both tables.
  std::vector<std::string> fewer;
  for (const auto* c : columns) {
    const auto all = std::count_if(tasks::mad_settings().begin(), tasks::mad_settings().end(),
                                   [&](const tasks::MadSetting& m) { return m.task == c->task; });
    const auto here = settings_of.at(std::string(tasks::mad_task_name(c->task))).size();
    if (static_cast<int64_t>(here) < all) fewer.push_back(fmt::format("{} {} of {}", c->title, here, all));
  }
  std::string not_comparable;
  if (!fewer.empty()) {
    std::string list;
    for (size_t i = 0; i < fewer.size(); ++i) list += (i ? ", " : "") + fewer[i];
    not_comparable = fmt::format(
        " Not comparable cell by cell with the published table: a published score is the mean over all of MAD's "
        "settings of its task, and this suite has fewer ({}). MAD's other settings each change one parameter of "
        "the baseline towards difficulty (longer sequences, larger vocabularies, fewer training examples, more "
        "noise, more tokens to copy), so a score over fewer of them is expected higher; the `mad` suite runs all 66.",
        list);
    sec.text += not_comparable;
  }
  Table t;
  t.title = "MAD accuracy (%), this suite";
  t.caption = sec.text;
  t.header.push_back("model");
  for (const auto* c : columns) t.header.push_back(c->title);
  t.header.push_back("Avg");
  std::map<std::string, std::vector<Cell>> scores;  // model name -> its score per column
  for (const auto& model : suite.models) {
    std::vector<std::string> row{model.label};
    double sum = 0;
    bool all = true;
    for (const auto* c : columns) {
      const auto& settings = settings_of.at(std::string(tasks::mad_task_name(c->task)));
      Cell score;
      double total = 0;
      for (const auto& setting : settings) {
        const auto& cell = cells.at({setting, model.name, 0});
        score.present += cell.present, score.expected += cell.expected, score.failed += cell.failed;
        total += cell.value;
        sec.csv.push_back({"mad-setting", setting, model.name, "accuracy", cell});
      }
      if (score.complete()) {
        score.value = 100.0 * total / static_cast<double>(settings.size());
        row.push_back(fmt::format("{:.1f}", score.value));
        sum += score.value;
      } else {
        row.push_back(missing(score));
        all = false;
      }
      sec.csv.push_back({"mad", c->title, model.name, "score_percent", score});
      scores[model.name].push_back(score);
    }
    row.push_back(all ? fmt::format("{:.1f}", sum / static_cast<double>(columns.size())) : "missing");
    t.rows.push_back(row);
    std::vector<double> bars;
    for (size_t i = 1; i + 1 < row.size(); ++i) bars.push_back(row[i].rfind("missing", 0) == 0 ? NAN : std::stod(row[i]));
    sec.chart_groups.emplace_back(model.label, bars);
  }
  sec.tables.push_back(t);
  sec.chart_stem = "mad";
  sec.chart_title = "MAD accuracy (%) by task (" + suite.name + ")";
  sec.chart_ylabel = "accuracy (%)";
  for (const auto* c : columns) sec.chart_bars.push_back(c->title);

  Table pub;
  pub.title = "MAD accuracy (%), published (DeltaNet paper, arXiv 2406.06484, as its authors' blog prints it)";
  pub.caption = "The paper's numbers for the same columns; all models except DeltaNet are from Poli et al. (2024). "
                "Avg is the mean of the columns shown." +
                not_comparable;
  pub.header = t.header;
  for (const auto& p : kPublished) {
    std::vector<std::string> row{p.model};
    double sum = 0;
    for (const auto* c : columns) {
      row.push_back(fmt::format("{:.1f}", p.*(c->published)));
      sum += p.*(c->published);
    }
    row.push_back(fmt::format("{:.1f}", sum / static_cast<double>(columns.size())));
    pub.rows.push_back(row);
  }
  sec.tables.push_back(pub);
  if (auto gaps = published_gaps(suite, runs, columns, scores, not_comparable)) sec.tables.push_back(*gaps);
  return sec;
}

Section ablation_section(const Suite& suite, const std::vector<Run>& runs, const Records& records) {
  Section sec;
  std::set<std::string> tasks;
  for (const auto& r : runs) tasks.insert(r.task);
  sec.heading = "Ablations: one row per switch setting";
  sec.text = selection_rule(suite, runs, tasks, false);
  const auto cells = select_cells(suite, runs, records, tasks, false);
  Table t;
  t.title = "Ablations, accuracy";
  t.caption = sec.text;
  t.header.push_back("setting");
  for (const auto& task : suite.tasks) t.header.push_back(task.label);
  for (const auto& model : suite.models) {
    std::vector<std::string> row{model.label};
    std::vector<double> bars;
    for (const auto& task : suite.tasks) {
      const auto& c = cells.at({task.name, model.name, 0});
      row.push_back(c.complete() ? fmt::format("{:.3f}", c.value) : missing(c));
      bars.push_back(c.complete() ? c.value : NAN);
      sec.csv.push_back({"ablations", task.name, model.name, "accuracy", c});
    }
    t.rows.push_back(row);
    sec.chart_groups.emplace_back(model.label, bars);
  }
  sec.tables.push_back(t);
  sec.chart_stem = "ablations";
  sec.chart_title = "Ablations: accuracy per switch setting (" + suite.name + ")";
  sec.chart_ylabel = "accuracy";
  for (const auto& task : suite.tasks) sec.chart_bars.push_back(task.label);
  return sec;
}

std::vector<Section> sections(const Suite& suite, const std::vector<Run>& runs, const Records& records) {
  std::vector<Section> out;
  if (suite.kind == "ablations") {
    out.push_back(ablation_section(suite, runs, records));
    return out;
  }
  for (auto s : {mqar_section(suite, runs, records), mad_section(suite, runs, records)}) {
    if (!s.tables.empty()) out.push_back(std::move(s));
  }
  return out;
}

std::string provenance(const std::vector<Run>& runs, const Records& records) {
  size_t present = 0, failed = 0, diverged = 0;
  double wall = 0;
  std::set<std::string> devices, commits, backends, pieces;
  size_t pieces_unrecorded = 0;
  for (const auto& r : runs) {
    const auto it = records.find(r.hash);
    if (it == records.end()) continue;
    ++present;
    if (it->second.status == "failed") ++failed;
    if (it->second.status == "diverged") ++diverged;
    wall += it->second.wall_s;
    devices.insert(it->second.threads > 0 ? fmt::format("{}, {} CPU threads", it->second.device, it->second.threads)
                                          : it->second.device);
    commits.insert(it->second.git_commit);
    const auto& rec = it->second;
    if (!rec.backend_train_forward.empty()) {
      // The step's kind without its counts: "captured (CUDA graph)" or "eager (cpu)", "eager: <why>".
      const auto& step = rec.train_step;
      const std::string kind = step.starts_with("captured") ? step.substr(0, step.find(" after")) : step;
      backends.insert(fmt::format("{}: train fwd {}, bwd {}; eval fwd {}{}", rec.model, rec.backend_train_forward,
                                  rec.backend_train_backward, rec.backend_eval_forward,
                                  kind.empty() ? "" : "; step " + kind));
    }
    if (rec.backend_pieces.empty()) {
      ++pieces_unrecorded;
    } else {
      pieces.insert(rec.model + ": " + rec.backend_pieces);
    }
  }
  std::string dev, com, back;
  for (const auto& d : devices) dev += (dev.empty() ? "" : "; ") + d;
  for (const auto& b : backends) back += (back.empty() ? "" : " | ") + b;
  for (const auto& c : commits) com += (com.empty() ? "" : ", ") + c;
  std::string text = fmt::format("Runs: {} of {} in the store", present, runs.size());
  if (failed || diverged) text += fmt::format(" ({} failed, {} diverged)", failed, diverged);
  if (present) text += fmt::format("; device: {}; commit: {}; training time {:.0f} s (sum over runs)", dev, com, wall);
  text += ".";
  if (!back.empty()) text += "\n\nOp backends (sequence ops: reference or kernel): " + back + ".";
  std::string around;
  for (const auto& p : pieces) around += (around.empty() ? "" : " | ") + p;
  if (!around.empty()) {
    text += "\n\nPieces around the ops in training (kernel, cpu fused or aten): " + around;
    if (pieces_unrecorded) {
      text += fmt::format("; not recorded for {} of the {} runs (trained before deltabench recorded them)",
                          pieces_unrecorded, present);
    }
    text += ".";
  }
  return text;
}

// Line styles that stay apart in print and in grey: a point type and a dash type per model.
std::string line_style(size_t i) {
  static const int kPoints[] = {7, 5, 9, 11, 13, 4, 6, 8};
  static const int kDashes[] = {1, 2, 4, 5, 3, 1, 2, 4};
  return fmt::format("lw 2 ps 1.2 pt {} dt {}", kPoints[i % 8], kDashes[i % 8]);
}

void write_mqar_figure(const Suite& suite, const Section& sec, const std::filesystem::path& dir, Written& w) {
  std::string data;
  std::set<int64_t> widths;
  bool ranges = false;  // any cell averaged over several seeds: draw min/max bars
  for (const auto& [panel, lines] : sec.figure) {
    for (const auto& [model, points] : lines) {
      data += "# " + panel + " | " + model + "\n# d_model mean min max\n";
      for (const auto& pt : points) {
        data += fmt::format("{} {:.6f} {:.6f} {:.6f}\n", pt.x, pt.value, pt.low, pt.high);
        widths.insert(pt.x);
        ranges = ranges || pt.high > pt.low;
      }
      if (points.empty()) data += "nan nan nan nan\n";  // an empty block would shift gnuplot's indices
      data += "\n\n";
    }
  }
  write_file(dir / "mqar.dat", data, w);
  std::string xtics;
  for (const auto d : widths) xtics += (xtics.empty() ? "" : ", ") + std::to_string(d);
  const size_t panels = sec.figure.size();
  // The panels share one legend in a row beneath them, clear of the data and the axis labels.
  std::string body = fmt::format(
      "set multiplot layout 1,{} title {} margins 0.1,0.98,0.26,0.86 spacing 0.06,0\n"
      "set logscale x 2\nset xtics ({})\nset xrange [{}:{}]\nset yrange [0:1.05]\nset ytics 0,0.25,1\n"
      "set grid\nset xlabel \"d_model\"\nset ylabel \"accuracy\"\n",
      panels, gnuplot_quote("MQAR accuracy vs model width (" + suite.name + ")"), xtics,
      widths.empty() ? 1 : *widths.begin() / 1.3, widths.empty() ? 2 : *widths.rbegin() * 1.3);
  size_t block = 0;
  for (size_t p = 0; p < sec.figure.size(); ++p) {
    const auto& [panel, lines] = sec.figure[p];
    body += p == 0 ? "set key at screen 0.5,0.03 center bottom horizontal maxrows 1 width 2\n" : "unset key\n";
    if (p == 1) body += "unset ylabel\n";
    body += "set title " + gnuplot_quote(panel) + "\nplot ";
    for (size_t m = 0; m < lines.size(); ++m, ++block) {
      body += fmt::format("{}'mqar.dat' index {} using 1:2{} with {} {} lc {} title {}", m ? ", \\\n     " : "", block,
                          ranges ? ":3:4" : "", ranges ? "yerrorlines" : "linespoints", line_style(m), m + 1,
                          gnuplot_quote(lines[m].first));
    }
    body += "\n";
  }
  body += "unset multiplot\n";
  const std::string size = fmt::format("{},{}", std::max<size_t>(640, 330 * panels + 120), 460);
  const std::string script = "# Zoology-style MQAR figure: accuracy vs d_model, one panel per task, one line per model" +
                             std::string(ranges ? "; bars: min and max over seeds" : "") + ".\n" +
                             png_and_svg("mqar", size, body);
  write_file(dir / "mqar.gp", script, w);
  render(dir, "mqar.gp", {"mqar.png", "mqar.svg"}, w);
}

// Whether bar b of a bar chart has a value (not NaN) for some group; whether any bar has.
bool bar_has_value(const Section& sec, size_t b) {
  return std::any_of(sec.chart_groups.begin(), sec.chart_groups.end(),
                     [&](const auto& group) { return b < group.second.size() && !std::isnan(group.second[b]); });
}

bool chart_has_values(const Section& sec) {
  for (size_t b = 0; b < sec.chart_bars.size(); ++b) {
    if (bar_has_value(sec, b)) return true;
  }
  return false;
}

// A clustered bar chart: one cluster per model, one bar per task (MAD's table, the ablation rows).
void write_bar_chart(const Section& sec, const std::filesystem::path& dir, Written& w) {
  if (sec.chart_groups.empty() || sec.chart_bars.empty()) return;
  std::string data = "# model";
  for (const auto& bar : sec.chart_bars) data += " | " + bar;
  data += "\n";
  for (const auto& [group, values] : sec.chart_groups) {
    data += gnuplot_quote(group);
    for (const double v : values) data += std::isnan(v) ? " NaN" : fmt::format(" {:.6f}", v);
    data += "\n";
  }
  const std::string stem = sec.chart_stem;
  write_file(dir / (stem + ".dat"), data, w);
  if (!chart_has_values(sec)) return;  // nothing to draw yet
  const bool percent = sec.chart_ylabel.find('%') != std::string::npos;
  std::string body = fmt::format(
      "set title {}\nset style data histograms\nset style histogram clustered gap 1\n"
      "set style fill solid 0.85 border -1\nset boxwidth 0.9\nset yrange [0:{}]\nset ylabel {}\nset grid ytics\n"
      "set xtics rotate by -30 left nomirror\nset key outside right top vertical\nset bmargin 9\nplot ",
      gnuplot_quote(sec.chart_title), percent ? 105 : 1.05, gnuplot_quote(sec.chart_ylabel));
  // A bar with no value yet (a partial store) is left out of the plot, which gnuplot refuses otherwise ("No
  // valid points"); the table says what is missing. Each bar keeps its fill and colour: every fourth solid, the
  // others gnuplot's hatches 2-4, so that bars stay apart in grey print. Not pattern 0, which is no fill at all
  // and drew MAD's Compress and Noisy bars both white (2026-12-06).
  bool first = true;
  for (size_t b = 0; b < sec.chart_bars.size(); ++b) {
    if (!bar_has_value(sec, b)) continue;
    const std::string fill = b % 4 == 0 ? std::string("solid 0.85") : fmt::format("pattern {}", b % 4 + 1);
    body += fmt::format("{}'{}.dat' using {}{} title {} fs {} lc {}", first ? "" : ", ", stem, b + 2,
                        first ? ":xtic(1)" : "", gnuplot_quote(sec.chart_bars[b]), fill, b + 1);
    first = false;
  }
  body += "\n";
  const size_t width = std::max<size_t>(720, 70 * sec.chart_groups.size() * std::max<size_t>(1, sec.chart_bars.size() / 2) + 260);
  write_file(dir / (stem + ".gp"), png_and_svg(stem, fmt::format("{},{}", std::min<size_t>(width, 1600), 520), body), w);
  render(dir, stem + ".gp", {stem + ".png", stem + ".svg"}, w);
}

}  // namespace

namespace {

std::string markdown_report(const Suite& suite, const std::vector<Run>& runs, const Records& records,
                            const std::vector<Section>& secs) {
  std::string out = "# Suite `" + suite.name + "`\n\n";
  if (!suite.description.empty()) out += suite.description + "\n\n";
  out += provenance(runs, records) + "\n";
  for (const auto& sec : secs) {
    out += "\n## " + sec.heading + "\n\n" + sec.text + "\n";
    for (const auto& t : sec.tables) {
      out += "\n### " + t.title + "\n\n";
      if (!t.markdown_note.empty()) out += t.markdown_note + "\n\n";
      out += markdown(t);
    }
    if (!sec.figure.empty()) out += "\n![MQAR accuracy vs d_model](mqar.png)\n";
    if (chart_has_values(sec)) out += "\n![" + sec.chart_title + "](" + sec.chart_stem + ".png)\n";
  }
  return out;
}

}  // namespace

std::string render_markdown(const Suite& suite, const Records& records) {
  const auto runs = sweep::expand(suite);
  return markdown_report(suite, runs, records, sections(suite, runs, records));
}

Written write_report(const Suite& suite, const Records& records, const std::string& out_dir) {
  Written w;
  const std::filesystem::path dir(out_dir);
  create_output_dir(dir);
  const auto runs = sweep::expand(suite);
  const auto secs = sections(suite, runs, records);
  write_file(dir / "table.md", markdown_report(suite, runs, records, secs), w);
  std::string tex = "% deltabench report of suite " + suite.name + " (needs \\usepackage{booktabs})\n";
  std::string csv = "section,table,row,column,value,runs_present,runs_expected,runs_failed,best_lr,best_weight_decay,best_d_model\n";
  for (const auto& sec : secs) {
    for (const auto& t : sec.tables) tex += "\n" + latex(t);
    for (const auto& r : sec.csv) {
      const Cell& c = r.cell;
      const bool ok = c.complete() && !std::isnan(c.value);
      csv += fmt::format("{},{},{},{},{},{},{},{},{},{},{}\n", r.section, csv_field(r.table), csv_field(r.row), r.column,
                         ok ? fmt::format("{:.6f}", c.value) : "", c.present, c.expected, c.failed,
                         ok && r.section != "mad" ? toml::Value{c.best_lr}.str() : "",
                         ok && r.section != "mad" ? toml::Value{c.best_wd}.str() : "",
                         ok && r.section != "mad" ? std::to_string(c.best_d) : "");
    }
  }
  write_file(dir / "table.tex", tex, w);
  write_file(dir / "table.csv", csv, w);
  for (const auto& sec : secs) {
    if (!sec.figure.empty()) write_mqar_figure(suite, sec, dir, w);
    write_bar_chart(sec, dir, w);
  }
  return w;
}

Written write_curves(const Suite& suite, const Records& records, const std::string& run, const std::string& out_dir) {
  const sweep::RunRecord* found = nullptr;
  std::string candidates;
  for (const auto& [hash, r] : records) {
    if (r.id == run || hash.rfind(run, 0) == 0) {
      if (found) throw ReportError("--curves " + run + ": more than one run matches (" + found->id + ", " + r.id + ")");
      found = &r;
    }
    if (candidates.size() < 300) candidates += (candidates.empty() ? "" : ", ") + r.id;
  }
  if (!found) {
    throw ReportError("--curves " + run + ": no run of suite " + suite.name + " in the store has that id or hash prefix" +
                      (candidates.empty() ? " (the store has none)" : " (some ids: " + candidates + ")"));
  }
  Written w;
  const std::filesystem::path dir(out_dir);
  create_output_dir(dir);
  const std::string stem = "curves-" + found->hash;
  std::string data = "# " + found->id + "\n# epoch steps train_loss test_loss accuracy lr\n";
  for (const auto& e : found->history) {
    data += fmt::format("{} {} {:.6g} {:.6g} {:.6f} {:.6g}\n", e.epoch, e.steps, e.train_loss, e.test_loss, e.accuracy, e.lr);
  }
  write_file(dir / (stem + ".dat"), data, w);
  const std::string body = fmt::format(
      "set title {}\nset xlabel \"epoch\"\nset ylabel \"loss\"\nset y2label \"accuracy\"\nset y2range [0:1.05]\n"
      "set ytics nomirror\nset y2tics 0,0.25,1\nset grid\nset key center right\n"
      "plot '{}.dat' using 1:3 with lines lw 2 title \"train loss\", '' using 1:4 with lines lw 2 title \"test loss\", "
      "'' using 1:5 axes x1y2 with linespoints lw 2 pt 7 title \"test accuracy\"\n",
      gnuplot_quote(suite.name + ": " + found->id), stem);
  write_file(dir / (stem + ".gp"), png_and_svg(stem, "720,420", body), w);
  render(dir, stem + ".gp", {stem + ".png", stem + ".svg"}, w);
  return w;
}

}  // namespace deltabench::report
