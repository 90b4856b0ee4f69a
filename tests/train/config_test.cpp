// Tests train/config.cpp: the presets load, and every mistake names the file, line and key.

#include "tests/support/catch.h"
#include "tests/support/source_dir.h"
#include "kernels/common/sequence_op.h"
#include "train/config.h"
#include "train/toml.h"

#include <filesystem>
#include <string>

using namespace deltabench::train;
using deltabench::models::MixerKind;

namespace {
std::string error(const std::string& text) {
  try {
    parse_experiment(text, "c.toml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}
const std::string kTask = "[task]\nname = \"mqar\"\n";
}  // namespace

TEST_CASE("config: every preset in configs/ loads", "[config]") {
  int presets = 0;
  for (const auto& entry : std::filesystem::directory_iterator(deltabench::testing::source_dir() + "/configs")) {
    if (entry.path().extension() != ".toml") continue;
    INFO(entry.path());
    CHECK_NOTHROW(load_experiment(entry.path().string()));
    ++presets;
  }
  CHECK(presets >= 1);
  const auto tiny = load_experiment(deltabench::testing::source_dir() + "/configs/mqar-tiny.toml");
  CHECK(tiny.name == "mqar-tiny");
  CHECK(tiny.model.vocab_size == 64);  // from the task
  CHECK(tiny.model.mixer.kind == MixerKind::kDeltaNet);
}

TEST_CASE("config: sizes are bounded and a batch cannot exceed the data", "[config]") {
  CHECK(error(kTask + "[task.params]\nvocab_size = 1000000000\n") ==
        "c.toml:3: [task.params] mqar: vocab_size must be <= 1048576 (got 1000000000)");
  CHECK(error(kTask + "train_examples = 100\n[train]\nbatch_size = 101\n") ==
        "c.toml:5: [train] batch_size: expected at most the 100 train examples, got 101");
  CHECK(error(kTask + "test_examples = 10\n[train]\neval_batch_size = 11\n") ==
        "c.toml:5: [train] eval_batch_size: expected at most the 10 test examples, got 11");
  CHECK(error(kTask + "[model]\nd_model = 100000\n") == "c.toml:4: [model] d_model: expected an integer <= 65536, got 100000");
  CHECK(error("seed = -1\n" + kTask) == "c.toml:1: [top level] seed: expected an integer >= 0, got -1");
  CHECK(error(kTask + "[train]\ndevice = \"gpu\"\n") ==
        "c.toml:4: [train] device: says where a run trains, not what it trains: give it in the suite's [base.train] or "
        "as a flag");
}

TEST_CASE("config: a run's hash carries the run protocol, so that new semantics never reuse old runs", "[config]") {
  const auto c = parse_experiment(kTask, "c.toml");
  const auto canonical = deltabench::toml::to_toml(deltabench::toml::parse(kTask, "c.toml"));
  CHECK(c.hash == run_hash(canonical));
  CHECK(c.hash != fnv1a_hex(canonical));  // protocol 1's hash of the same file
  CHECK(run_hash(canonical) == fnv1a_hex("deltabench-run-protocol " + std::to_string(kRunProtocol) + "\n" + canonical));
}

TEST_CASE("config: [train] device and checkpoint are a placement, kept out of the experiment's hash", "[config]") {
  Placement placement;
  const auto a = parse_experiment(kTask + "[train]\ndevice = \"cuda:1\"\ncheckpoint = \"ck\"\n", "c.toml", &placement);
  CHECK(placement.device == "cuda:1");
  CHECK(placement.device_origin == "c.toml:4: [train] device");
  CHECK(placement.checkpoint == "ck");
  Placement other;
  const auto b = parse_experiment(kTask, "c.toml", &other);
  CHECK(other.device == "auto");
  CHECK(a.hash == b.hash);
  CHECK_THROWS_AS(parse_experiment(kTask + "[train]\ndevice = \"tpu\"\n", "c.toml", &other), ConfigError);
}

TEST_CASE("config: [train] backend is a placement, kept out of the hash, and spelled one of three ways", "[config]") {
  Placement placement;
  const auto a = parse_experiment(kTask + "[train]\nbackend = \"kernel\"\n", "c.toml", &placement);
  CHECK(placement.backend == "kernel");
  CHECK(placement.backend_origin == "c.toml:4: [train] backend");
  Placement other;
  const auto b = parse_experiment(kTask, "c.toml", &other);
  CHECK(other.backend == "auto");
  CHECK(a.hash == b.hash);
  CHECK_THROWS_WITH(parse_experiment(kTask + "[train]\nbackend = \"fast\"\n", "c.toml", &other),
                    "c.toml:4: [train] backend: expected \"auto\", \"reference\" or \"kernel\", got \"fast\"");
  CHECK(error(kTask + "[train]\nbackend = \"kernel\"\n") ==
        "c.toml:4: [train] backend: says where a run trains, not what it trains: give it in the suite's [base.train] or "
        "as a flag");
  CHECK(parse_backend("reference", "x") == deltabench::BackendChoice::kReference);
}

TEST_CASE("config: [train] recompute is a placement, kept out of the hash, and spelled one of three ways", "[config]") {
  Placement placement;
  const auto a = parse_experiment(kTask + "[train]\nrecompute = \"all\"\n", "c.toml", &placement);
  CHECK(placement.recompute == "all");
  CHECK(placement.recompute_origin == "c.toml:4: [train] recompute");
  Placement other;
  const auto b = parse_experiment(kTask, "c.toml", &other);
  CHECK(other.recompute == "none");
  CHECK(a.hash == b.hash);
  CHECK_THROWS_WITH(parse_experiment(kTask + "[train]\nrecompute = \"everything\"\n", "c.toml", &other),
                    "c.toml:4: [train] recompute: expected \"none\", \"state\" or \"all\" (what the training kernels' "
                    "backward computes again rather than keep from the forward), got \"everything\"");
  CHECK(error(kTask + "[train]\nrecompute = \"state\"\n") ==
        "c.toml:4: [train] recompute: says where a run trains, not what it trains: give it in the suite's [base.train] "
        "or as a flag");
  CHECK(parse_recompute("state", "x") == deltabench::Recompute::kState);
  CHECK(parse_recompute("none", "x") == deltabench::Recompute::kNone);
}

TEST_CASE("config: recompute sets the sequence ops' two switches", "[config]") {
  using deltabench::Recompute;
  deltabench::SequenceOptions options;
  deltabench::set_recompute(options, Recompute::kNone);
  CHECK_FALSE(options.kernel_recompute_ut);
  CHECK_FALSE(options.kernel_recompute_state);
  deltabench::set_recompute(options, Recompute::kState);
  CHECK_FALSE(options.kernel_recompute_ut);
  CHECK(options.kernel_recompute_state);
  deltabench::set_recompute(options, Recompute::kAll);
  CHECK(options.kernel_recompute_ut);
  CHECK(options.kernel_recompute_state);
}

TEST_CASE("config: defaults and derived values", "[config]") {
  const auto c = parse_experiment(kTask + "[task.params]\nseq_len = 128\nrandom_non_queries = false\n"
                                          "[model]\nposition_embeddings = true\n[model.mixer]\nkind = \"gated_delta_net\"\n"
                                          "beta = 0.5\n",
                                  "c.toml");
  CHECK(c.task.params.at("random_non_queries") == "off");
  CHECK(c.model.max_position_embeddings == 128);
  CHECK(c.model.vocab_size == 8192);
  CHECK(c.model.mixer.use_decay);  // Gated DeltaNet's defaults
  CHECK(c.model.mixer.expand_v == 2.0);
  CHECK(c.model.mixer.fixed_beta == 0.5);
}

TEST_CASE("config: errors name the file, the line and the key", "[config]") {
  CHECK(error(kTask + "[model]\nd_modle = 3\n").find("c.toml:4: [model] unknown key 'd_modle' (known: d_model,") == 0);
  CHECK(error(kTask + "[model.mixer]\nkind = \"delta_net\"\nrotary_dim = 4\n") ==
        "c.toml:5: [model.mixer] rotary_dim: applies to attention only, not delta_net");
  CHECK(error(kTask + "[model.mixer]\nkind = \"mamba\"\n") ==
        "c.toml:4: [model.mixer] kind: expected one of \"attention\", \"linear_attention\", \"delta_net\", "
        "\"gated_delta_net\", got \"mamba\"");
  CHECK(error(kTask + "[model.mixer]\nchunk_size = 48\n") == "c.toml:4: [model.mixer] chunk_size: expected 16, 32 or 64, got 48");
  CHECK(error(kTask + "[model.mixer]\nbeta = 3\n") ==
        "c.toml:4: [model.mixer] beta: expected \"learned\" or a fixed value in (0, 2], got 3");
  CHECK(error(kTask + "[task.params]\nnum_kv_pairs = 64\n") ==
        "c.toml:3: [task.params] mqar: num_kv_pairs * 4 must be <= seq_len (got 64 * 4 > 64)");
  CHECK(error(kTask + "[train]\nlr = 0\n") == "c.toml:4: [train] lr: expected a number > 0, got 0");
  CHECK(error(kTask + "[train]\nepochs = 2.5\n") == "c.toml:4: [train] epochs: expected an integer, got 2.5");
  CHECK(error(kTask + "[train]\nprecision = \"fp16\"\n") ==
        "c.toml:4: [train] precision: expected one of \"auto\", \"fp32\", got \"fp16\"");
  CHECK(error(kTask + "[trian]\n") == "c.toml:3: unknown table [top level.trian]");
  CHECK(error("[task]\nname = \"in-context-recall\"\ntest_seed = 3\n") ==
        "c.toml:3: [task] test_seed: applies to mqar only: a MAD test set continues its train set's stream");
  CHECK(error("[task]\nname = \"mqr\"\n").find("c.toml:2: [task] name: unknown task 'mqr' (known: mqar,") == 0);
  CHECK(error("[model]\n").find("a [task] table is required") != std::string::npos);
  CHECK(error("[task]\nname = \"compression\"\n[model]\ntie_embeddings = true\n") ==
        "c.toml:4: [model] tie_embeddings: applies to the language model; compression trains MAD's autoencoder, "
        "whose unembedding is a linear layer of its own");
}

TEST_CASE("config: compression trains MAD's autoencoder, every other task the language model") {
  const auto compression = parse_experiment("[task]\nname = \"compression\"\n", "c.toml");
  CHECK(compression.model.backbone == deltabench::models::Backbone::kAutoEncoder);
  const auto recall = parse_experiment("[task]\nname = \"in-context-recall\"\n", "c.toml");
  CHECK(recall.model.backbone == deltabench::models::Backbone::kLanguageModel);
}
