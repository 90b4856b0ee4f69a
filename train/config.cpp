#include "train/config.h"

#include "tasks/registry.h"
#include "train/toml.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <functional>
#include <set>
#include <utility>
#include <vector>

namespace deltabench::train {
namespace {

using models::MixerKind;

// Bounds on model sizes: far above what these tasks train (d_model 512, 2 to 4 layers), low enough that a
// typo is an error rather than an allocation of many gigabytes.
constexpr int64_t kMaxDModel = 65536;
constexpr int64_t kMaxLayers = 1024;

// Reads one table, remembering which keys were used; finish() reports the rest.
class Section {
 public:
  Section(const toml::Table& table, std::string name, std::string source)
      : table_(table), name_(std::move(name)), source_(std::move(source)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& message) const {
    const auto it = table_.values.find(key);
    const int line = it != table_.values.end() ? it->second.line : table_.line;
    throw ConfigError(source_ + ":" + std::to_string(line) + ": [" + name_ + "] " + key + ": " + message);
  }

  const toml::Value* find(const std::string& key) {
    known_.insert(key);
    const auto it = table_.values.find(key);
    return it == table_.values.end() ? nullptr : &it->second;
  }

  bool has(const std::string& key) const { return table_.values.contains(key); }

  int line_of(const std::string& key) const {
    const auto it = table_.values.find(key);
    return it != table_.values.end() ? it->second.line : table_.line;
  }

  int64_t integer(const std::string& key, int64_t fallback, int64_t min = INT64_MIN, int64_t max = INT64_MAX) {
    const auto* v = find(key);
    if (!v) return fallback;
    if (!v->is_integer()) fail(key, "expected an integer, got " + v->written());
    const auto x = std::get<int64_t>(v->data);
    if (x < min) fail(key, "expected an integer >= " + std::to_string(min) + ", got " + v->written());
    if (x > max) fail(key, "expected an integer <= " + std::to_string(max) + ", got " + v->written());
    return x;
  }

  double real(const std::string& key, double fallback, double min = -1e300, bool open_min = false) {
    const auto* v = find(key);
    if (!v) return fallback;
    if (!v->is_number()) fail(key, "expected a number, got " + v->written());
    const double x = v->number();
    if (x < min || (open_min && x == min)) {
      fail(key, std::string("expected a number ") + (open_min ? "> " : ">= ") + toml::Value{min}.str() + ", got " + v->written());
    }
    return x;
  }

  bool boolean(const std::string& key, bool fallback) {
    const auto* v = find(key);
    if (!v) return fallback;
    if (!v->is_bool()) fail(key, "expected true or false, got " + v->written());
    return std::get<bool>(v->data);
  }

  std::string text(const std::string& key, const std::string& fallback) {
    const auto* v = find(key);
    if (!v) return fallback;
    if (!v->is_string()) fail(key, "expected a string in quotes, got " + v->written());
    return std::get<std::string>(v->data);
  }

  template <typename E>
  E choice(const std::string& key, E fallback, const std::vector<std::pair<std::string, E>>& options) {
    const auto* v = find(key);
    if (!v) return fallback;
    std::string names;
    for (const auto& [name, value] : options) {
      if (v->is_string() && std::get<std::string>(v->data) == name) return value;
      names += (names.empty() ? "" : ", ") + ("\"" + name + "\"");
    }
    fail(key, "expected one of " + names + ", got " + v->written());
  }

  // Keys given that this section does not take, and subtables other than `allowed_tables`.
  void finish(const std::set<std::string>& allowed_tables = {}) const {
    for (const auto& [key, value] : table_.values) {
      if (known_.contains(key)) continue;
      std::string names;
      for (const auto& k : known_) names += (names.empty() ? "" : ", ") + k;
      throw ConfigError(source_ + ":" + std::to_string(value.line) + ": [" + name_ + "] unknown key '" + key +
                        "' (known: " + names + ")");
    }
    for (const auto& [key, table] : table_.tables) {
      if (!allowed_tables.contains(key)) {
        throw ConfigError(source_ + ":" + std::to_string(table.line) + ": unknown table [" + name_ + "." + key + "]");
      }
    }
  }

  const toml::Table& table() const { return table_; }

 private:
  const toml::Table& table_;
  std::string name_, source_;
  std::set<std::string> known_;
};

const std::vector<std::pair<std::string, models::FeatureMap>> kFeatureMaps = {
    {"identity", models::FeatureMap::kIdentity},
    {"elu+1", models::FeatureMap::kEluPlusOne},
    {"relu", models::FeatureMap::kRelu},
    {"silu", models::FeatureMap::kSilu}};

const toml::Table& subtable(const toml::Table& t, const std::string& name) {
  static const toml::Table empty;
  const auto it = t.tables.find(name);
  return it == t.tables.end() ? empty : it->second;
}

models::MixerConfig parse_mixer(const toml::Table& t, const std::string& source) {
  Section s(t, "model.mixer", source);
  const MixerKind kind = s.choice<MixerKind>("kind", MixerKind::kDeltaNet,
                                             {{"attention", MixerKind::kAttention},
                                              {"linear_attention", MixerKind::kLinearAttention},
                                              {"delta_net", MixerKind::kDeltaNet},
                                              {"gated_delta_net", MixerKind::kGatedDeltaNet}});
  auto m = models::default_mixer(kind);
  const bool attention = kind == MixerKind::kAttention, linear = kind == MixerKind::kLinearAttention;
  const bool delta = kind == MixerKind::kDeltaNet || kind == MixerKind::kGatedDeltaNet;
  // A switch of another family is an error, not silently ignored.
  const auto only = [&](bool applies, const std::string& key, const std::string& family) {
    if (s.has(key) && !applies) s.fail(key, "applies to " + family + " only, not " + models::to_string(kind));
  };
  for (const char* k : {"attention_dropout", "rotary_dim", "qkv_bias"}) only(attention, k, "attention");
  for (const char* k : {"feature_map", "normalize", "decay"}) only(linear, k, "linear_attention");
  for (const char* k : {"use_short_conv", "conv_size", "qk_activation", "qk_norm", "beta", "allow_neg_eigval",
                        "use_output_gate", "use_decay"}) {
    only(delta, k, "delta_net and gated_delta_net");
  }
  for (const char* k : {"head_dim", "expand_v", "chunk_size"}) only(!attention, k, "the linear family");

  m.num_heads = s.integer("num_heads", m.num_heads, 1, kMaxDModel);
  m.head_dim = s.integer("head_dim", m.head_dim, 0, kMaxDModel);
  m.expand_v = s.real("expand_v", m.expand_v, 0, true);
  m.chunk_size = s.integer("chunk_size", m.chunk_size);
  if (m.chunk_size != 16 && m.chunk_size != 32 && m.chunk_size != 64) {
    s.fail("chunk_size", "expected 16, 32 or 64, got " + std::to_string(m.chunk_size));
  }
  m.attention_dropout = s.real("attention_dropout", m.attention_dropout, 0);
  m.rotary_dim = s.integer("rotary_dim", m.rotary_dim, 0);
  m.qkv_bias = s.boolean("qkv_bias", m.qkv_bias);
  m.feature_map = s.choice("feature_map", m.feature_map, kFeatureMaps);
  m.normalize = s.boolean("normalize", m.normalize);
  m.decay = s.choice<models::DecayKind>("decay", m.decay,
                                        {{"none", models::DecayKind::kNone},
                                         {"retnet", models::DecayKind::kRetNet},
                                         {"data", models::DecayKind::kData}});
  m.use_short_conv = s.boolean("use_short_conv", m.use_short_conv);
  m.conv_size = s.integer("conv_size", m.conv_size, 1, 64);
  m.qk_activation = s.choice("qk_activation", m.qk_activation, kFeatureMaps);
  m.qk_norm = s.choice<models::QkNorm>("qk_norm", m.qk_norm,
                                       {{"l2", models::QkNorm::kL2},
                                        {"sum", models::QkNorm::kSum},
                                        {"rms", models::QkNorm::kRms},
                                        {"none", models::QkNorm::kNone}});
  if (const auto* beta = s.find("beta")) {
    if (beta->is_string() && std::get<std::string>(beta->data) == "learned") {
      m.fixed_beta.reset();
    } else if (beta->is_number() && beta->number() > 0 && beta->number() <= 2) {
      m.fixed_beta = beta->number();
    } else {
      s.fail("beta", "expected \"learned\" or a fixed value in (0, 2], got " + beta->written());
    }
  }
  m.allow_neg_eigval = s.boolean("allow_neg_eigval", m.allow_neg_eigval);
  m.use_output_gate = s.boolean("use_output_gate", m.use_output_gate);
  m.use_decay = s.boolean("use_decay", m.use_decay);
  m.norm_eps = s.real("norm_eps", m.norm_eps, 0, true);
  s.finish();
  return m;
}

}  // namespace

std::string run_hash(const std::string& canonical_toml) {
  return fnv1a_hex("deltabench-run-protocol " + std::to_string(kRunProtocol) + "\n" + canonical_toml);
}

std::string fnv1a_hex(const std::string& text) {
  uint64_t h = 1469598103934665603ull;
  for (const unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
  return out;
}

std::pair<int64_t, int64_t> example_counts(const TaskConfig& task) {
  const auto& info = tasks::find_task(task.name);
  const tasks::Params p(task.name, info.params, task.params);
  if (info.has_splits) return {p.integer("num_train_examples"), p.integer("num_test_examples")};
  const int64_t n = p.integer("num_examples");
  return {task.train_examples > 0 ? task.train_examples : n, task.test_examples > 0 ? task.test_examples : n};
}

ExperimentConfig parse_experiment(const std::string& text, const std::string& source, Placement* placement) {
  toml::Table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::ParseError& e) {
    throw ConfigError(e.what());
  }
  return build_experiment(root, source, placement);
}

ExperimentConfig build_experiment(const toml::Table& root, const std::string& source, Placement* placement) {
  ExperimentConfig c;
  c.source = source;
  {
    toml::Table identity = root;
    if (const auto it = identity.tables.find("train"); it != identity.tables.end()) {
      for (const char* key : kPlacementKeys) it->second.values.erase(key);
      // A [train] that held only placement keys is no table at all, as if never written.
      if (it->second.values.empty() && it->second.tables.empty()) identity.tables.erase(it);
    }
    c.hash = run_hash(toml::to_toml(identity));
  }
  Section top(root, "top level", source);
  c.name = top.text("name", std::filesystem::path(source).stem().string());
  c.seed = static_cast<uint64_t>(top.integer("seed", static_cast<int64_t>(c.seed), 0));
  top.finish({"task", "model", "train"});
  if (!root.tables.contains("task")) throw ConfigError(source + ": a [task] table is required");

  // [task] and [task.params]
  const auto& task_table = subtable(root, "task");
  Section task(task_table, "task", source);
  c.task.name = task.text("name", "");
  if (c.task.name.empty()) task.fail("name", "required (deltabench tasks list shows the tasks)");
  const tasks::TaskInfo* info = nullptr;
  try {
    info = &tasks::find_task(c.task.name);
  } catch (const tasks::TaskError& e) {
    task.fail("name", e.what());
  }
  c.task.train_examples = task.integer("train_examples", 0, 1);
  c.task.test_examples = task.integer("test_examples", 0, 1);
  c.task.train_seed = static_cast<uint64_t>(task.integer("train_seed", 0, 0));
  if (task.has("test_seed") && info->has_splits) {
    task.fail("test_seed", "applies to mqar only: a MAD test set continues its train set's stream");
  }
  c.task.test_seed = static_cast<uint64_t>(task.integer("test_seed", 10, 0));
  task.finish({"params"});
  const auto& params = subtable(task_table, "params");
  for (const auto& [key, value] : params.values) {
    c.task.params[key] = value.is_bool() ? (std::get<bool>(value.data) ? "on" : "off") : value.str();
  }
  if (info->has_splits) {
    if (c.task.train_examples > 0) c.task.params["num_train_examples"] = std::to_string(c.task.train_examples);
    if (c.task.test_examples > 0) c.task.params["num_test_examples"] = std::to_string(c.task.test_examples);
  }
  try {
    tasks::validate_task_params(c.task.name, c.task.params);
  } catch (const tasks::TaskError& e) {
    throw ConfigError(source + ":" + std::to_string(params.line) + ": [task.params] " + e.what());
  }

  // [model] and [model.mixer]
  const auto& model_table = subtable(root, "model");
  Section model(model_table, "model", source);
  auto& m = c.model;
  m.vocab_size = model.integer("vocab_size", tasks::task_vocab_size(c.task.name, c.task.params), 1, tasks::kMaxVocabSize);
  m.d_model = model.integer("d_model", m.d_model, 1, kMaxDModel);
  m.num_layers = model.integer("num_layers", m.num_layers, 1, kMaxLayers);
  m.norm = model.choice<models::NormKind>("norm", m.norm,
                                          {{"layernorm", models::NormKind::kLayerNorm},
                                           {"rmsnorm", models::NormKind::kRMSNorm}});
  m.norm_eps = model.real("norm_eps", m.norm_eps, 0, true);
  m.state_mixer = model.choice<models::StateMixerKind>("state_mixer", m.state_mixer,
                                                       {{"none", models::StateMixerKind::kNone},
                                                        {"mlp", models::StateMixerKind::kMlp},
                                                        {"swiglu", models::StateMixerKind::kSwiGlu}});
  m.hidden_ratio = model.real("hidden_ratio", m.hidden_ratio, 0, true);
  if (model.boolean("position_embeddings", false)) {
    m.max_position_embeddings = tasks::task_sequence_length(c.task.name, c.task.params);
  }
  m.embed_dropout = model.real("embed_dropout", m.embed_dropout, 0);
  m.tie_embeddings = model.boolean("tie_embeddings", m.tie_embeddings);
  // The task picks the backbone, as mad-lab's benchmark does: compression trains MAD's autoencoder.
  if (c.task.name == "compression") {
    m.backbone = models::Backbone::kAutoEncoder;
    if (model.has("tie_embeddings")) {
      model.fail("tie_embeddings", "applies to the language model; compression trains MAD's autoencoder, whose "
                                   "unembedding is a linear layer of its own");
    }
  }
  model.finish({"mixer"});
  m.mixer = parse_mixer(subtable(model_table, "mixer"), source);
  if (m.mixer.head_dim == 0 && m.d_model % m.mixer.num_heads != 0) {
    throw ConfigError(source + ": [model.mixer] num_heads: d_model " + std::to_string(m.d_model) +
                      " is not divisible by num_heads " + std::to_string(m.mixer.num_heads));
  }

  // [train]
  Section t(subtable(root, "train"), "train", source);
  auto& tr = c.train;
  tr.epochs = t.integer("epochs", tr.epochs, 1, 1'000'000);
  tr.batch_size = t.integer("batch_size", tr.batch_size, 1);
  tr.eval_batch_size = t.integer("eval_batch_size", tr.eval_batch_size, 0);
  tr.warmup_epochs = t.integer("warmup_epochs", tr.warmup_epochs, 0, tr.epochs);
  tr.lr = t.real("lr", tr.lr, 0, true);
  tr.min_lr = t.real("min_lr", tr.min_lr, 0);
  tr.weight_decay = t.real("weight_decay", tr.weight_decay, 0);
  tr.beta1 = t.real("beta1", tr.beta1, 0);
  tr.beta2 = t.real("beta2", tr.beta2, 0);
  tr.eps = t.real("eps", tr.eps, 0, true);
  tr.grad_clip = t.real("grad_clip", tr.grad_clip, 0);
  tr.early_stop = t.real("early_stop", tr.early_stop, 0);
  tr.precision = t.choice<std::string>("precision", tr.precision, {{"auto", "auto"}, {"fp32", "fp32"}});
  for (const char* key : kPlacementKeys) {
    if (t.has(key) && !placement) {
      t.fail(key, "says where a run trains, not what it trains: give it in the suite's [base.train] or as a flag");
    }
  }
  if (placement) {
    const auto origin = [&](const std::string& key) {
      return source + ":" + std::to_string(t.line_of(key)) + ": [train] " + key;
    };
    if (t.has("device")) {
      placement->device = t.text("device", "auto");
      placement->device_origin = origin("device");
      check_device_spelling(placement->device, placement->device_origin);
    }
    if (t.has("backend")) {
      placement->backend = t.text("backend", "auto");
      placement->backend_origin = origin("backend");
      parse_backend(placement->backend, placement->backend_origin);
    }
    if (t.has("recompute")) {
      placement->recompute = t.text("recompute", "none");
      placement->recompute_origin = origin("recompute");
      parse_recompute(placement->recompute, placement->recompute_origin);
    }
    if (t.has("checkpoint")) {
      placement->checkpoint = t.text("checkpoint", "");
      placement->checkpoint_origin = origin("checkpoint");
    }
  }
  t.finish();
  if (tr.beta1 >= 1 || tr.beta2 >= 1) throw ConfigError(source + ": [train] beta1 and beta2 must be < 1");
  // A batch larger than the data would silently shrink to the data's size.
  const auto [train_n, test_n] = example_counts(c.task);
  if (tr.batch_size > train_n) {
    t.fail("batch_size", "expected at most the " + std::to_string(train_n) + " train examples, got " +
                             std::to_string(tr.batch_size));
  }
  if (tr.eval_batch_size > test_n) {
    t.fail("eval_batch_size", "expected at most the " + std::to_string(test_n) + " test examples, got " +
                                  std::to_string(tr.eval_batch_size));
  }
  return c;
}

ExperimentConfig load_experiment(const std::string& path, Placement* placement) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot open the config file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parse_experiment(buffer.str(), path, placement);
}

}  // namespace deltabench::train
