// Suites: grid expansion, run identity, MAD settings as tasks, and errors that name the key.

#include "sweep/suite.h"

#include "tests/support/catch.h"
#include "tests/support/source_dir.h"

#include <set>

using namespace deltabench;

namespace {

const std::string kFixture = deltabench::testing::source_dir() + "/tests/fixtures/suites/tiny.toml";

// A small valid suite; `extra` is appended, `replace` swaps one line for another.
std::string suite_text(const std::string& extra = "") {
  return R"(
[suite]
name = "s"
[grid]
tasks = ["a"]
models = ["m", "n"]
d_model = [16, 32]
lr = [1e-3, 1e-2]
weight_decay = [0.0, 0.1]
seed = [1, 2]
[base.task]
name = "mqar"
[base.task.params]
vocab_size = 64
seq_len = 16
num_kv_pairs = 2
[base.model]
num_layers = 1
[tasks.a]
[models.m]
[models.m.model.mixer]
kind = "delta_net"
num_heads = 2
[models.n]
label = "Linear"
[models.n.model.mixer]
kind = "linear_attention"
num_heads = 2
)" + extra;
}

std::string error_of(const std::string& text) {
  try {
    sweep::parse_suite(text, "bad.toml");
  } catch (const train::ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("a suite expands to the full grid in a fixed order with the axis values applied") {
  const auto suite = sweep::parse_suite(suite_text(), "s.toml");
  const auto runs = sweep::expand(suite);
  REQUIRE(runs.size() == 1 * 2 * 2 * 2 * 2 * 2);
  CHECK(runs.front().id == "a/m/d16/lr0.001/wd0/s1");
  CHECK(runs[1].id == "a/m/d16/lr0.001/wd0/s2");
  CHECK(runs.back().id == "a/n/d32/lr0.01/wd0.1/s2");
  std::set<std::string> hashes;
  for (size_t i = 0; i < runs.size(); ++i) {
    CHECK(runs[i].index == i);
    hashes.insert(runs[i].hash);
    CHECK(runs[i].config.model.d_model == runs[i].d_model);
    CHECK(runs[i].config.train.lr == runs[i].lr);
    CHECK(runs[i].config.train.weight_decay == runs[i].weight_decay);
    CHECK(runs[i].config.seed == static_cast<uint64_t>(runs[i].seed));
  }
  CHECK(hashes.size() == runs.size());
  CHECK(runs.back().config.model.mixer.kind == models::MixerKind::kLinearAttention);
  CHECK(suite.model("n").label == "Linear");
  CHECK(suite.model("m").label == "m");
}

TEST_CASE("a run's hash depends on what it trains, not on where it runs") {
  const auto suite = sweep::parse_suite(suite_text(), "s.toml");
  const auto cpu = sweep::expand(suite);
  // The suite's device and checkpoint are its placement: read once, kept out of every run's identity.
  auto placed_text = suite_text();
  placed_text.replace(placed_text.find("[base.model]"), 12, "[base.train]\ndevice = \"cuda\"\nbackend = \"kernel\"\ncheckpoint = \"ck\"\nrecompute = \"state\"\n[base.model]");
  const auto placed = sweep::parse_suite(placed_text, "s.toml");
  CHECK(placed.placement.device == "cuda");
  CHECK(placed.placement.device_origin == "s.toml:18: [base.train] device");
  CHECK(placed.placement.checkpoint == "ck");
  CHECK(placed.placement.backend == "kernel");
  CHECK(placed.placement.backend_origin == "s.toml:19: [base.train] backend");
  CHECK(placed.placement.recompute == "state");
  CHECK(placed.placement.recompute_origin == "s.toml:21: [base.train] recompute");
  CHECK(suite.placement.recompute == "none");
  CHECK(suite.placement.device == "auto");
  CHECK(suite.placement.backend == "auto");
  const auto cuda = sweep::expand(placed);
  CHECK(cpu.front().hash == cuda.front().hash);
  CHECK(cuda.front().config_toml.find("device") == std::string::npos);
  CHECK(cuda.front().config_toml.find("backend") == std::string::npos);
  CHECK(cuda.front().config_toml.find("recompute") == std::string::npos);
  CHECK(cuda.front().config.hash == cuda.front().hash);
  // The same grid written in another order of keys hashes the same.
  const auto again = sweep::expand(sweep::parse_suite(suite_text(), "other-name.toml"));
  CHECK(again.front().hash == cpu.front().hash);
  // Any change to the experiment changes the hash.
  auto text = suite_text();
  text.replace(text.find("num_layers = 1"), 14, "num_layers = 2");
  CHECK(sweep::expand(sweep::parse_suite(text, "s.toml")).front().hash != cpu.front().hash);
}

TEST_CASE("a variant's axis lists replace the grid's for that variant") {
  auto text = suite_text();
  text.replace(text.find("[tasks.a]"), 9, "[tasks.a]\nd_model = [64]\nlr = 3e-3");
  const auto runs = sweep::expand(sweep::parse_suite(text, "s.toml"));
  REQUIRE(runs.size() == 2 * 1 * 1 * 2 * 2);
  for (const auto& r : runs) {
    CHECK(r.d_model == 64);
    CHECK(r.lr == 3e-3);
  }
}

TEST_CASE("MAD settings become task variants, replacing an MQAR base task") {
  auto text = suite_text();
  text.replace(text.find("tasks = [\"a\"]"), 13, R"(tasks = ["a", "mad:baseline", "noisy-in-context-recall:frac_noise=0.4"])");
  const auto suite = sweep::parse_suite(text, "s.toml");
  REQUIRE(suite.tasks.size() == 1 + 6 + 1);
  CHECK(suite.tasks[1].name == "in-context-recall:baseline");
  const auto runs = sweep::expand(suite);
  // Compression's runs train MAD's autoencoder, the others the language model.
  int compression_runs = 0;
  for (const auto& run : runs) {
    const bool compression = run.config.task.name == "compression";
    compression_runs += compression;
    CHECK(run.config.model.backbone ==
          (compression ? models::Backbone::kAutoEncoder : models::Backbone::kLanguageModel));
  }
  CHECK(compression_runs > 0);
  const auto& noisy = runs.back().config;
  CHECK(noisy.task.name == "noisy-in-context-recall");
  CHECK(noisy.task.params.at("frac_noise") == "0.4");
  CHECK_FALSE(noisy.task.params.contains("num_kv_pairs"));  // the base's MQAR parameters are gone
  CHECK(sweep::parse_suite(R"(
[suite]
[grid]
tasks = ["mad:all"]
models = ["m"]
d_model = 16
lr = 1e-3
weight_decay = 0.0
seed = 1
[base.task]
name = "mqar"
[models.m]
)", "all.toml").tasks.size() == 66);
}

TEST_CASE("a suite's mad_protocol chooses the data MAD's settings stand for") {
  const auto suite_with = [](const std::string& protocol_line) {
    auto text = suite_text();
    text.replace(text.find("tasks = [\"a\"]"), 13, R"(tasks = ["a", "selective-copying:num_tokens_to_copy=32"])");
    text.replace(text.find("[suite]"), 7, "[suite]\n" + protocol_line);
    return sweep::parse_suite(text, "p.toml");
  };
  // The default: mad-lab's benchmark data as the published numbers were made (16 tokens copied).
  const auto published = sweep::expand(suite_with("")).back().config;
  CHECK(published.task.params.at("num_tokens_to_copy") == "32");
  CHECK(published.task.params.at("pass_num_tokens_to_copy") == "false");
  const auto fixed = sweep::expand(suite_with("mad_protocol = \"fixed\"")).back().config;
  CHECK(fixed.task.params.at("num_tokens_to_copy") == "32");
  CHECK_FALSE(fixed.task.params.contains("pass_num_tokens_to_copy"));
  CHECK(published.hash != fixed.hash);  // different data, different runs
  CHECK(suite_with("mad_protocol = \"published\"").mad_protocol == tasks::MadProtocol::kPublished);
  CHECK(error_of(suite_text("").replace(1, 7, "[suite]\nmad_protocol = \"mad-lab\"")).find(
            "bad.toml:3: [suite] mad_protocol: expected \"published\" or \"fixed\", got mad-lab") != std::string::npos);
}

TEST_CASE("a task variant can start from a MAD setting and override it") {
  auto text = suite_text();
  text.replace(text.find("[tasks.a]"), 9, "[tasks.a]\nsetting = \"selective-copying:baseline\"\n[tasks.a.task]\ntrain_examples = 100");
  const auto runs = sweep::expand(sweep::parse_suite(text, "s.toml"));
  CHECK(runs.front().config.task.name == "selective-copying");
  CHECK(runs.front().config.task.params.at("num_train_examples") == "100");
  CHECK(runs.front().config.task.params.at("num_tokens_to_copy") == "16");
}

TEST_CASE("the fixture suite loads from its file") {
  const auto suite = sweep::load_suite(kFixture);
  CHECK(suite.name == "tiny");
  CHECK(sweep::expand(suite).size() == 16);
  CHECK(sweep::find_suite_file(kFixture) == kFixture);
  try {
    sweep::find_suite_file("no-such-suite");
    FAIL("expected a ConfigError");
  } catch (const train::ConfigError& e) {
    CHECK(std::string(e.what()).find("known suites") != std::string::npos);
  }
}

TEST_CASE("bad suite files are errors that name the file, line and key") {
  CHECK(error_of(suite_text("[grid2]\n")).find("unknown table 'grid2'") != std::string::npos);
  auto text = suite_text();
  text.replace(text.find("lr = [1e-3, 1e-2]"), 17, "lr = [1e-3, -1]");
  CHECK(error_of(text).find("bad.toml:8: [grid] lr: expected numbers > 0, got [0.001, -1]") != std::string::npos);
  text = suite_text();
  text.replace(text.find("seed = [1, 2]"), 13, "seed = [1, 1]");
  CHECK(error_of(text).find("seed: repeated value") != std::string::npos);
  text = suite_text();
  text.replace(text.find("models = [\"m\", \"n\"]"), 19, "models = [\"m\", \"x\"]");
  CHECK(error_of(text).find("models: no [models.x] table") != std::string::npos);
  text = suite_text();
  text.replace(text.find("models = [\"m\", \"n\"]"), 19, "models = [\"m\"]");
  CHECK(error_of(text).find("[models.n] is not listed in [grid] models") != std::string::npos);
  CHECK(error_of(suite_text("[models.m.train]\nlearning_rate = 1\n")).empty());  // parses; the key fails at expand
  try {
    sweep::expand(sweep::parse_suite(suite_text("[models.m.train]\nlearning_rate = 1\n"), "bad.toml"));
    FAIL("expected a ConfigError");
  } catch (const train::ConfigError& e) {
    CHECK(std::string(e.what()).find("unknown key 'learning_rate'") != std::string::npos);
    CHECK(std::string(e.what()).find("(in run a/m/") != std::string::npos);
  }
  CHECK(error_of(suite_text("[tasks.a.task]\nsetting = 1\n")).empty());
  text = suite_text();
  text.replace(text.find("[tasks.a]"), 9, "[tasks.a]\nsetting = \"recall:baseline\"");
  CHECK(error_of(text).find("[tasks.a] setting:") != std::string::npos);
  text = suite_text();
  text.replace(text.find("[suite]"), 7, "[suite]\nkind = \"grid\"");
  CHECK(error_of(text).find("kind: expected \"sweep\" or \"ablations\", got grid") != std::string::npos);
  text = suite_text();
  text.replace(text.find("[suite]"), 7, "[suite]\nselect = [\"seed\"]");
  CHECK(error_of(text).find("select: expected axes among") != std::string::npos);
  CHECK(error_of("[suite]\n").find("a [grid] table is required") != std::string::npos);
}

TEST_CASE("a suite's bad device is an error naming the file and key") {
  auto text = suite_text();
  text.replace(text.find("[base.model]"), 12, "[base.train]\ndevice = \"gpu0\"\n[base.model]");
  CHECK_THAT(error_of(text), testing::contains(
                                 "bad.toml:18: [base.train] device: expected \"auto\", \"cpu\", \"cuda\" or \"cuda:N\", got \"gpu0\""));
}

TEST_CASE("a suite's bad recompute is an error naming the file, key, expected and actual values") {
  auto text = suite_text();
  text.replace(text.find("[base.model]"), 12, "[base.train]\nrecompute = \"some\"\n[base.model]");
  CHECK_THAT(error_of(text), testing::contains("bad.toml:18: [base.train] recompute: expected \"none\", \"state\" or \"all\""));
  CHECK_THAT(error_of(text), testing::contains("got \"some\""));
}

TEST_CASE("keys the grid owns are errors where a suite sets them, not silently overwritten") {
  for (const auto& [insert, expected] : std::vector<std::pair<std::string, std::string>>{
           {"[models.m.train]\nlr = 0.5\n", "[models.m.train] lr: the grid's lr axis sets it"},
           {"[models.m.model]\nd_model = 8\n", "[models.m.model] d_model: the grid's d_model axis sets it"},
           {"[tasks.a.train]\nweight_decay = 0.3\n", "[tasks.a.train] weight_decay: the grid's weight_decay axis sets it"},
           {"[models.n.train]\ndevice = \"cpu\"\n", "[models.n.train] device: says where runs train"},
           {"[models.n.train]\nbackend = \"kernel\"\n", "give it in [base.train] (or as --backend) for the whole suite"},
           {"[tasks.a.train]\nrecompute = \"all\"\n", "give it in [base.train] (or as --recompute) for the whole suite"},
           {"[models.n.train]\ncheckpoint = \"ck\"\n", "give it in [base.train] (or as --checkpoint-dir) for the whole suite"}}) {
    auto text = suite_text();
    const auto table = insert.substr(0, insert.find(']') + 1);
    const auto at = text.find(table.substr(0, table.rfind('.')) + "]");
    REQUIRE(at != std::string::npos);
    text.insert(at, insert);
    INFO(text);
    CHECK_THAT(error_of(text), testing::contains(expected));
  }
  auto base = suite_text();
  base.replace(base.find("[base.model]"), 12, "[base.train]\nlr = 1e-3\n[base.model]");
  CHECK_THAT(error_of(base), testing::contains("[base.train] lr: the grid's lr axis sets it"));
}

TEST_CASE("strings in messages are quoted as given") {
  auto text = suite_text();
  text.replace(text.find("num_layers = 1"), 14, "num_layers = \"1\"");
  CHECK_THROWS_WITH(sweep::expand(sweep::parse_suite(text, "bad.toml")),
                    testing::contains("[model] num_layers: expected an integer, got \"1\""));
}

TEST_CASE("a selection (run --only) takes the runs whose axes take the given values, every selection at once") {
  const auto runs = sweep::expand(sweep::parse_suite(suite_text(), "s.toml"));  // 32 runs
  const auto count = [&](const std::vector<std::string>& texts) {
    std::vector<sweep::RunSelection> only;
    for (const auto& t : texts) only.push_back(sweep::parse_selection(t));
    sweep::check_selection(runs, only);
    size_t n = 0;
    for (const auto& r : runs) n += sweep::selected(r, only) ? 1 : 0;
    return n;
  };
  CHECK(count({}) == 32);
  CHECK(count({"model=m"}) == 16);
  CHECK(count({"model=m,n"}) == 32);
  CHECK(count({"model=n", "d_model=32"}) == 8);
  CHECK(count({"task=a", "seed=2", "weight_decay=0.1"}) == 8);
  // Numbers within a relative 1e-6: the id's spelling and another both select.
  CHECK(count({"lr=0.001"}) == 16);
  CHECK(count({"lr=1e-3,1.0000001e-2"}) == 32);
  // A task or model ending in '*' is a prefix.
  CHECK(count({"model=*"}) == 32);
  CHECK(count({"model=n*", "d_model=16"}) == 8);
  CHECK(count({"task=a*"}) == 32);
}

TEST_CASE("a selection (run --only) refuses unknown axes, bad values and values no run has, naming them") {
  const auto runs = sweep::expand(sweep::parse_suite(suite_text(), "s.toml"));
  CHECK_THROWS_WITH(sweep::parse_selection("width=8"),
                    testing::contains("--only: expected AXIS=VALUE[,VALUE...] with AXIS one of task, model, d_model, lr, "
                                      "weight_decay or seed, got \"width=8\""));
  CHECK_THROWS_WITH(sweep::parse_selection("model"), testing::contains("got \"model\""));
  CHECK_THROWS_WITH(sweep::parse_selection("model="), testing::contains("--only model: no value given in \"model=\""));
  CHECK_THROWS_WITH(sweep::parse_selection("d_model=1.5"), testing::contains("--only d_model: expected whole numbers, got \"1.5\""));
  CHECK_THROWS_WITH(sweep::parse_selection("lr=fast"), testing::contains("--only lr: expected numbers, got \"fast\""));
  CHECK_THROWS_WITH(sweep::parse_selection("task=*recall"),
                    testing::contains("--only task: '*' ends a prefix (e.g. task=fuzzy-in-context-recall:*), got \"*recall\""));
  CHECK_THROWS_WITH(sweep::check_selection(runs, {sweep::parse_selection("model=x*")}),
                    testing::contains("--only model=x*: no run of the grid has it (the grid's model: m, n)"));
  CHECK_THROWS_WITH(sweep::check_selection(runs, {sweep::parse_selection("model=m,x")}),
                    testing::contains("--only model=x: no run of the grid has it (the grid's model: m, n)"));
  CHECK_THROWS_WITH(sweep::check_selection(runs, {sweep::parse_selection("lr=0.0011")}),
                    testing::contains("--only lr=0.0011: no run of the grid has it (the grid's lr: 0.001, 0.01)"));
}
