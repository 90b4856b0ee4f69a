// Reports: the Markdown of a fixture store against golden files, missing and failed runs, the
// selection rule, and (where gnuplot exists) the plot files.

#include "report/report.h"

#include "tests/support/catch.h"
#include "tests/support/golden.h"
#include "tests/support/temp_dir.h"
#include "tests/support/source_dir.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

using namespace deltabench;

namespace {

const std::string kDir = deltabench::testing::source_dir() + "/tests/fixtures/report/";

using testing::read_file;

sweep::Suite fixture_suite(bool ablations = false) {
  auto text = read_file(kDir + "suite.toml");
  REQUIRE(!text.empty());
  if (ablations) text.replace(text.find("[suite]"), 7, "[suite]\nkind = \"ablations\"");
  return sweep::parse_suite(text, "suite.toml");
}

// Made-up but structured results: DeltaNet beats linear attention, wider is better, lr 3e-3 is
// better. One run is missing, one failed and one diverged.
report::Records fixture_records(const sweep::Suite& suite) {
  report::Records records;
  for (const auto& run : sweep::expand(suite)) {
    if (run.id == "mqar64/linear/d16/lr0.001/wd0.1/s1") continue;  // missing
    sweep::RunRecord r;
    r.suite = suite.name;
    r.hash = run.hash;
    r.id = run.id;
    r.task = run.task;
    r.model = run.model;
    r.d_model = run.d_model;
    r.lr = run.lr;
    r.weight_decay = run.weight_decay;
    r.seed = run.seed;
    r.status = "completed";
    const double model = run.model == "delta" ? 0.5 : 0.2;
    const double width = run.d_model == 32 ? 0.25 : 0.0;
    const double lr = run.lr == 3e-3 ? 0.125 : 0.0;
    const double task = static_cast<double>(run.task.size() % 5) / 40.0;
    r.final_accuracy = model + width + lr + task;
    r.wall_s = 10;
    r.device = "cpu";
    r.git_commit = "0123456789ab";
    if (run.id == "selective-copying:baseline/delta/d32/lr0.003/wd0.1/s1") r.status = "diverged";
    if (run.id == "in-context-recall:vocab_size=32/linear/d32/lr0.003/wd0.1/s1") r.status = "failed";
    records.emplace(r.hash, r);
  }
  return records;
}

void check_golden(const std::string& actual, const std::string& name) { testing::check_golden(actual, kDir + name); }

}  // namespace

TEST_CASE("the report of a fixture store matches the golden Markdown") {
  const auto suite = fixture_suite();
  check_golden(report::render_markdown(suite, fixture_records(suite)), "golden.md");
}

TEST_CASE("the ablations report of a fixture store matches the golden Markdown") {
  const auto suite = fixture_suite(true);
  check_golden(report::render_markdown(suite, fixture_records(suite)), "golden-ablations.md");
}

TEST_CASE("an empty store gives a report of missing cells, not numbers") {
  const auto suite = fixture_suite();
  const auto md = report::render_markdown(suite, {});
  CHECK(md.find("Runs: 0 of 32 in the store.") != std::string::npos);
  CHECK(md.find("missing (0/2 runs)") != std::string::npos);
  CHECK(md.find("0.") == md.find("0.001"));  // no accuracy printed: the first "0." is the rule's lr
}

TEST_CASE("the report says what ran around the ops per model, and how many runs did not record it") {
  const auto suite = fixture_suite();
  auto records = fixture_records(suite);
  CHECK(report::render_markdown(suite, records).find("Pieces around") == std::string::npos);  // none recorded
  size_t recorded = 0;
  for (auto& [hash, r] : records) {
    if (r.model == "linear" && recorded++ % 2 == 0) continue;  // half the linear runs from before
    r.backend_pieces = r.model == "delta" ? "embedding kernel, short conv kernel" : "embedding aten";
  }
  const auto md = report::render_markdown(suite, records);
  const auto unrecorded = std::count_if(records.begin(), records.end(),
                                        [](const auto& r) { return r.second.backend_pieces.empty(); });
  REQUIRE(unrecorded > 0);
  CHECK(md.find(fmt::format("Pieces around the ops in training (kernel, cpu fused or aten): delta: embedding kernel, "
                            "short conv kernel | linear: embedding aten; not recorded for {} of the {} runs (trained "
                            "before deltabench recorded them).",
                            unrecorded, records.size())) != std::string::npos);
}

TEST_CASE("a cell whose unselected axis varies is an error naming the axis") {
  auto text = read_file(kDir + "suite.toml");
  text.replace(text.find("select = [\"lr\", \"d_model\"]"), 26, "select = [\"lr\"]");
  const auto suite = sweep::parse_suite(text, "suite.toml");
  try {
    report::render_markdown(suite, {});
    FAIL("expected a ReportError");
  } catch (const report::ReportError& e) {
    CHECK(std::string(e.what()).find("has d_model = {16, 32}; add \"d_model\" to [suite] select") != std::string::npos);
  }
}

TEST_CASE("the report writes tables, and images of the right format when gnuplot exists") {
  const auto suite = fixture_suite();
  testing::TempDir dir("deltabench-report-test");
  const auto w = report::write_report(suite, fixture_records(suite), dir.path().string());
  CHECK(read_file((dir.path() / "table.md").string()) == report::render_markdown(suite, fixture_records(suite)));
  const auto csv = read_file((dir.path() / "table.csv").string());
  CHECK(csv.find("mqar,mqar64,delta,32,0.900000,2,2,0,0.003,0.1,32") != std::string::npos);
  CHECK(csv.find("mqar,mqar64,linear,16,,1,2,0,,,") != std::string::npos);
  const auto tex = read_file((dir.path() / "table.tex").string());
  CHECK(tex.find("\\begin{tabular}{lrr}") != std::string::npos);
  CHECK(tex.find("in-context-recall:vocab\\_size=32") == std::string::npos);  // MAD settings fold into tasks
  // Two figures: Zoology's MQAR lines and the MAD bar chart.
  testing::check_figure(dir.path(), "mqar", w.warnings.size(), "DeltaNet", 2);
  testing::check_figure(dir.path(), "mad", w.warnings.size(), "ICR", 2);
}

TEST_CASE("a partial store's MAD chart draws the tasks that have runs and leaves out the ones with none") {
  // A window's store (issue 15) can hold some MAD tasks and none of others: gnuplot refuses a bar of NaNs
  // alone ("No valid points"), which left mad-baseline's first chart empty (2026-12-05).
  const auto suite = fixture_suite();
  auto records = fixture_records(suite);
  for (auto it = records.begin(); it != records.end();) {
    it = it->second.task.rfind("selective-copying", 0) == 0 ? records.erase(it) : std::next(it);
  }
  testing::TempDir dir("deltabench-report-partial-mad");
  const auto w = report::write_report(suite, records, dir.path().string());
  const auto gp = read_file((dir.path() / "mad.gp").string());
  CHECK(gp.find("title \"ICR\"") != std::string::npos);
  CHECK(gp.find("title \"SelCopy\"") == std::string::npos);
  CHECK(gp.find("using 2:xtic(1)") != std::string::npos);  // the first bar drawn names the clusters
  CHECK(read_file((dir.path() / "mad.dat").string()).find("NaN") != std::string::npos);
  testing::check_figure(dir.path(), "mad", w.warnings.size(), "ICR", 2);
  // With no MAD run at all there is no chart, and the Markdown shows none.
  for (auto it = records.begin(); it != records.end();) {
    it = it->second.task.rfind("mqar", 0) != 0 ? records.erase(it) : std::next(it);
  }
  testing::TempDir none("deltabench-report-no-mad");
  report::write_report(suite, records, none.path().string());
  CHECK(!std::filesystem::exists(none.path() / "mad.gp"));
  CHECK(read_file((none.path() / "table.md").string()).find("mad.png") == std::string::npos);
}

TEST_CASE("the MAD section sets attention and DeltaNet against the paper's rows, and names the cells over 5 points") {
  // Issue 15 asks for every cell of the Transformer and DeltaNet rows more than 5 points from the published.
  auto text = read_file(kDir + "suite.toml");
  text.replace(text.find("models = [\"linear\", \"delta\"]"), 28, "models = [\"linear\", \"delta\", \"attn\"]");
  text += "\n[models.attn]\nlabel = \"Attention\"\n[models.attn.model.mixer]\nkind = \"attention\"\nnum_heads = 2\n";
  const auto suite = sweep::parse_suite(text, "suite.toml");
  auto records = fixture_records(suite);
  for (auto& [hash, r] : records) {
    if (r.model == "attn") r.final_accuracy = r.task.rfind("in-context-recall", 0) == 0 ? 0.93 : 0.30;
  }
  for (auto it = records.begin(); it != records.end();) {  // attention's selective copying not run yet
    const auto& r = it->second;
    it = r.model == "attn" && r.task.rfind("selective-copying", 0) == 0 ? records.erase(it) : std::next(it);
  }
  const auto md = report::render_markdown(suite, records);
  const auto at = md.find("### MAD: this suite against the published, in points");
  REQUIRE(at != std::string::npos);
  const auto section = md.substr(at);
  // ICR: 93.0 against the Transformer's 94.1 is within 5 points; DeltaNet's rows as in the golden report.
  CHECK(section.find("| Attention (Transformer) | -1.1 | missing |") != std::string::npos);
  CHECK(section.find("| DeltaNet | -10.0 * | -22.5 * |") != std::string::npos);
  CHECK(section.find("More than 5 points away: DeltaNet ICR (90.0 against 100.0); DeltaNet SelCopy (77.5 against "
                     "100.0). Not measured yet: Attention SelCopy.") != std::string::npos);
  CHECK(section.find("Linear attention") == std::string::npos);  // the paper has no row of it
}

TEST_CASE("figures: mean with min and max bars where a cell has several seeds, a style per model") {
  auto text = read_file(kDir + "suite.toml");
  text.replace(text.find("seed = [1]"), 10, "seed = [1, 2]");
  const auto suite = sweep::parse_suite(text, "suite.toml");
  report::Records records;
  for (const auto& run : sweep::expand(suite)) {
    sweep::RunRecord r;
    r.suite = suite.name, r.hash = run.hash, r.id = run.id, r.task = run.task, r.model = run.model;
    r.d_model = run.d_model, r.lr = run.lr, r.weight_decay = run.weight_decay, r.seed = run.seed;
    r.status = "completed";
    r.final_accuracy = (run.model == "delta" ? 0.6 : 0.2) + 0.1 * static_cast<double>(run.seed);  // seeds 1, 2
    records.emplace(r.hash, r);
  }
  testing::TempDir dir("deltabench-report-seeds");
  report::write_report(suite, records, dir.path().string());
  // The best group's mean over seeds 1 and 2 (0.75 for DeltaNet) with its range [0.7, 0.8].
  const auto dat = read_file((dir.path() / "mqar.dat").string());
  CHECK(dat.find("# d_model mean min max") != std::string::npos);
  CHECK(dat.find("16 0.750000 0.700000 0.800000") != std::string::npos);
  const auto gp = read_file((dir.path() / "mqar.gp").string());
  CHECK(gp.find("using 1:2:3:4 with yerrorlines") != std::string::npos);
  CHECK(gp.find("min and max over seeds") != std::string::npos);
  // Each model its own point and dash type; the legend below the panels, clear of the axes.
  CHECK(gp.find("pt 7 dt 1") != std::string::npos);
  CHECK(gp.find("pt 5 dt 2") != std::string::npos);
  CHECK(gp.find("set key at screen 0.5,0.03 center bottom horizontal") != std::string::npos);
  // The MAD section's bar chart: one cluster per model, one bar per task.
  const auto mad = read_file((dir.path() / "mad.dat").string());
  CHECK(mad.find("\"DeltaNet\"") != std::string::npos);
  const auto mad_gp = read_file((dir.path() / "mad.gp").string());
  CHECK(mad_gp.find("set style histogram clustered") != std::string::npos);
  // Every bar filled (gnuplot's pattern 0 is no fill: two tasks' bars were both white), and no two alike.
  CHECK(mad_gp.find("fs pattern 0") == std::string::npos);
  std::set<std::string> fills;
  size_t bars = 0;
  for (size_t at = mad_gp.find(" fs "); at != std::string::npos && at < mad_gp.find("set terminal svg");
       at = mad_gp.find(" fs ", at + 1)) {
    const auto end = mad_gp.find_first_of(",\n", at);
    fills.insert(mad_gp.substr(at, end - at));
    ++bars;
  }
  CHECK(bars == 2);  // the fixture's two tasks
  CHECK(fills.size() == bars);
}

TEST_CASE("the ablations report draws a bar per task for every switch setting") {
  const auto suite = fixture_suite(true);
  testing::TempDir dir("deltabench-report-ablations");
  report::write_report(suite, fixture_records(suite), dir.path().string());
  const auto dat = read_file((dir.path() / "ablations.dat").string());
  CHECK(dat.find("\"DeltaNet\"") != std::string::npos);
  CHECK(dat.find("\"Linear attention\"") != std::string::npos);
  CHECK(dat.find("NaN") != std::string::npos);  // a cell with a failed run is no bar, not a 0
}

TEST_CASE("training curves of one run, found by id or hash prefix") {
  const auto suite = fixture_suite();
  auto records = fixture_records(suite);
  auto& r = records.begin()->second;
  for (int e = 1; e <= 3; ++e) {
    train::EpochMetrics m;
    m.epoch = e;
    m.train_loss = 3.0 / e;
    m.test_loss = 3.5 / e;
    m.accuracy = 0.3 * e;
    r.history.push_back(m);
  }
  testing::TempDir dir("deltabench-curves-test");
  const auto w = report::write_curves(suite, records, r.hash.substr(0, 6), dir.path().string());
  const auto data = read_file((dir.path() / ("curves-" + r.hash + ".dat")).string());
  CHECK(data.find("3 0 1 1.16667 0.900000") != std::string::npos);
  CHECK_THROWS_AS(report::write_curves(suite, records, "no-such-run", dir.path().string()), report::ReportError);
}
