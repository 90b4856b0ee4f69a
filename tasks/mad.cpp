#include "tasks/mad.h"

#include "tasks/rng.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>

namespace deltabench::tasks {
namespace {

struct Example {
  std::vector<int64_t> inputs, targets;
};

// `size` distinct tokens from [lo, lo + n), uniformly over ordered selections: mad-lab's
// rng.choice over a shuffled list of all permutations, without building that list.
std::vector<int64_t> distinct_tokens(Rng& rng, int64_t lo, int64_t n, int64_t size) {
  std::vector<int64_t> out;
  out.reserve(size);
  while (static_cast<int64_t>(out.size()) < size) {
    const int64_t t = lo + static_cast<int64_t>(rng.below(n));
    if (std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
  }
  return out;
}

int64_t draw(Rng& rng, int64_t n) { return static_cast<int64_t>(rng.below(static_cast<uint64_t>(n))); }

// Drops the last input and the first target: predict token t + 1 at position t.
Example shift(const std::vector<int64_t>& in, const std::vector<int64_t>& tg, bool training) {
  Example e;
  e.inputs.assign(in.begin(), in.end() - 1);
  e.targets.assign((training ? in : tg).begin() + 1, (training ? in : tg).end());
  return e;
}

// In-context recall, and noisy recall when frac_noise > 0 (mad-lab's multi-query form).
Example in_context_recall(const MadParams& p, bool training, Rng& rng) {
  const int64_t non_special = p.vocab_size - p.noise_vocab_size;
  const int64_t num_keys = non_special / 2, num_values = non_special - non_special / 2;
  const int64_t pairs = p.seq_len / 2;
  for (;;) {
    std::vector<int64_t> in, tg, presented_order;
    std::map<int64_t, int64_t> value_of;
    std::vector<char> presented(num_keys, 0);
    const int64_t not_noise = draw(rng, pairs);  // a slot that is never noise, as mad-lab draws it
    for (int64_t i = 0; i < pairs - 1; ++i) {   // the last pair is the probe
      if (p.frac_noise > 0 && i != not_noise && rng.uniform() < p.frac_noise) {
        for (int j = 0; j < 2; ++j) {
          in.push_back(non_special + draw(rng, p.noise_vocab_size));
          tg.push_back(kIgnoreIndex);
        }
        continue;
      }
      const int64_t k = draw(rng, num_keys);
      auto it = value_of.find(k);
      if (it == value_of.end()) it = value_of.emplace(k, num_keys + draw(rng, num_values)).first;
      const int64_t v = it->second;
      in.insert(in.end(), {k, v});
      tg.insert(tg.end(), {kIgnoreIndex, presented[k] ? v : kIgnoreIndex});  // recall only a repeated key
      if (!presented[k]) presented_order.push_back(k);
      presented[k] = 1;
    }
    // mad-lab fails here when every slot was noise (its guaranteed slot can be the probe's); we
    // draw the example again instead.
    if (presented_order.empty()) continue;
    const int64_t k_probe = presented_order[draw(rng, static_cast<int64_t>(presented_order.size()))];
    in.insert(in.end(), {k_probe, value_of[k_probe]});
    tg.insert(tg.end(), {kIgnoreIndex, value_of[k_probe]});
    return shift(in, tg, training);
  }
}

Example fuzzy_in_context_recall(const MadParams& p, bool training, Rng& rng) {
  const int64_t pad = p.vocab_size - 1;
  const int64_t non_special = p.vocab_size - 1 - p.noise_vocab_size;
  const int64_t num_keys = non_special / 2, value_lo = non_special / 2, num_values = non_special - non_special / 2;
  const int64_t K = p.k_motif_size, V = p.v_motif_size;
  // Training keys have 1..K tokens; test keys always K ("we always prompt at the maximum key size").
  const auto key_size = [&] { return training ? 1 + draw(rng, K) : K; };
  const auto value_size = [&] { return 1 + draw(rng, V); };

  const int64_t k_probe_size = key_size(), v_probe_size = value_size();
  const auto k_probe = distinct_tokens(rng, 0, num_keys, k_probe_size);
  const auto v_probe = distinct_tokens(rng, value_lo, num_values, v_probe_size);
  const int64_t probe_len = k_probe_size + v_probe_size;
  const int64_t probe_at = draw(rng, p.seq_len - 2 * probe_len);
  bool probe_added = false;

  std::vector<int64_t> in, tg;
  std::map<std::vector<int64_t>, std::vector<int64_t>> value_of;  // keys of different sizes never collide
  std::set<std::vector<int64_t>> presented;
  const auto append = [](std::vector<int64_t>& to, const std::vector<int64_t>& x) { to.insert(to.end(), x.begin(), x.end()); };
  const auto ignore = [&](int64_t n) { tg.insert(tg.end(), n, kIgnoreIndex); };
  while (static_cast<int64_t>(in.size()) < p.seq_len - probe_len - (K + V)) {
    const int64_t k_size = key_size(), v_size = value_size();
    if (static_cast<int64_t>(in.size()) >= probe_at && !probe_added) {
      append(in, k_probe);
      append(in, v_probe);
      ignore(probe_len);
      value_of[k_probe] = v_probe;
      presented.insert(k_probe);
      probe_added = true;
      continue;
    }
    if (p.frac_noise > 0 && rng.uniform() < p.frac_noise) {
      for (int64_t j = 0; j < k_size + v_size; ++j) in.push_back(non_special + draw(rng, p.noise_vocab_size));
      ignore(k_size + v_size);
      continue;
    }
    const auto k = distinct_tokens(rng, 0, num_keys, k_size);
    std::vector<int64_t> v;
    if (k == k_probe) {  // mad-lab: a key equal to the probe's takes its value and counts as the probe
      v = v_probe;
      probe_added = true;
    } else {
      auto it = value_of.find(k);
      if (it == value_of.end()) it = value_of.emplace(k, distinct_tokens(rng, value_lo, num_values, v_size)).first;
      v = it->second;
    }
    append(in, k);
    append(in, v);
    ignore(k_size);
    if (presented.contains(k)) {
      append(tg, v);
    } else {
      ignore(static_cast<int64_t>(v.size()));
    }
    presented.insert(k);
  }
  append(in, k_probe);
  append(in, v_probe);
  ignore(k_probe_size);
  append(tg, v_probe);

  const int64_t n_pad = p.seq_len + 1 - static_cast<int64_t>(in.size());
  if (n_pad < 0) throw std::logic_error("fuzzy_in_context_recall: example longer than seq_len + 1");
  in.insert(in.begin(), n_pad, pad);  // left padding
  tg.insert(tg.begin(), n_pad, kIgnoreIndex);
  return shift(in, tg, training);
}

// The tokens selective copying copies: the setting, or mad-lab's default where it was not passed on.
int64_t copies(const MadParams& p) { return p.pass_num_tokens_to_copy ? p.num_tokens_to_copy : kMadLabCopies; }

Example selective_copying(const MadParams& p, Rng& rng) {
  const int64_t copy_token = p.vocab_size - 1, blank = p.vocab_size - 2;
  const int64_t n = copies(p);
  const int64_t num_blank = p.seq_len - 2 * n - 1;
  std::vector<int64_t> to_copy(n), blanks_before(n, 0);
  for (auto& t : to_copy) t = draw(rng, p.vocab_size - 2);
  // Blanks go before a uniformly chosen content token (np.insert at randint(0, n)): never after the last.
  for (int64_t b = 0; b < num_blank; ++b) ++blanks_before[draw(rng, n)];
  Example e;
  for (int64_t j = 0; j < n; ++j) {
    e.inputs.insert(e.inputs.end(), blanks_before[j], blank);
    e.inputs.push_back(to_copy[j]);
  }
  e.inputs.push_back(copy_token);
  e.inputs.insert(e.inputs.end(), n, blank);
  e.targets.assign(n + num_blank + 1, kIgnoreIndex);
  e.targets.insert(e.targets.end(), to_copy.begin(), to_copy.end());
  return e;
}

Example compression(const MadParams& p, Rng& rng) {
  const int64_t non_special = p.vocab_size - 1 - p.noise_vocab_size;
  Example e;
  for (int64_t i = 0; i < p.seq_len - 1; ++i) e.inputs.push_back(draw(rng, non_special));
  e.inputs.push_back(p.vocab_size - 1);  // the compression token
  if (p.frac_noise > 0) {
    for (int64_t i = 0; i < p.seq_len - 1; ++i) {
      if (rng.uniform() < p.frac_noise) e.inputs[i] = non_special + draw(rng, p.noise_vocab_size);
    }
  }
  e.targets = e.inputs;  // mad-lab returns (inputs, inputs): the targets are the inputs, noise included
  return e;
}

// Memorization's fixed map: shuffled keys [0, (V-1)/2) zipped with shuffled values [(V-1)/2, V-1). As
// mad-lab's MADConfig builds it (generate_kv_map(seed=self.seed)): from a generator of its own seeded
// with the data's seed, so that train and test share the map and another seed draws another map.
std::vector<int64_t> memorization_map(const MadParams& p, uint64_t seed) {
  Rng rng(seed);
  const int64_t non_special = p.vocab_size - 1 - p.noise_vocab_size;
  const int64_t num_keys = non_special / 2;
  const auto shuffled = [&](int64_t lo, int64_t hi) {
    std::vector<int64_t> x(hi - lo);
    std::iota(x.begin(), x.end(), lo);
    for (int64_t i = static_cast<int64_t>(x.size()) - 1; i > 0; --i) std::swap(x[i], x[draw(rng, i + 1)]);
    return x;
  };
  const auto keys = shuffled(0, num_keys);
  const auto values = shuffled(num_keys, non_special);
  std::vector<int64_t> value_of(num_keys);
  for (int64_t i = 0; i < num_keys; ++i) value_of[keys[i]] = values[i];
  return value_of;
}

Example memorization(const MadParams& p, const std::vector<int64_t>& value_of, Rng& rng) {
  const int64_t insert_token = p.vocab_size - 1;
  const int64_t non_special = p.vocab_size - 1 - p.noise_vocab_size;
  const int64_t pairs = p.seq_len / 2;
  const int64_t not_noise = draw(rng, pairs);
  Example e;
  for (int64_t i = 0; i < pairs; ++i) {
    if (p.frac_noise > 0 && i != not_noise && rng.uniform() < p.frac_noise) {
      for (int j = 0; j < 2; ++j) {
        e.inputs.push_back(non_special + draw(rng, p.noise_vocab_size));
        e.targets.push_back(kIgnoreIndex);
      }
      continue;
    }
    const int64_t k = draw(rng, static_cast<int64_t>(value_of.size()));
    e.inputs.insert(e.inputs.end(), {k, insert_token});
    e.targets.insert(e.targets.end(), {kIgnoreIndex, value_of[k]});
  }
  return e;
}

TaskData stack(const std::vector<Example>& examples, int64_t length, int64_t vocab_size) {
  const auto n = static_cast<int64_t>(examples.size());
  at::Tensor inputs = at::empty({n, length}, at::kLong), targets = at::empty({n, length}, at::kLong);
  auto in = inputs.accessor<int64_t, 2>();
  auto tg = targets.accessor<int64_t, 2>();
  for (int64_t i = 0; i < n; ++i) {
    if (static_cast<int64_t>(examples[i].inputs.size()) != length ||
        static_cast<int64_t>(examples[i].targets.size()) != length) {
      throw std::logic_error("mad: example " + std::to_string(i) + " has length " +
                             std::to_string(examples[i].inputs.size()) + ", expected " + std::to_string(length));
    }
    for (int64_t t = 0; t < length; ++t) {
      in[i][t] = examples[i].inputs[t];
      tg[i][t] = examples[i].targets[t];
    }
  }
  return {inputs, targets, Metric::kMadAccuracy, vocab_size};
}

}  // namespace

std::string_view mad_task_name(MadTask task) {
  switch (task) {
    case MadTask::kInContextRecall: return "in-context-recall";
    case MadTask::kNoisyInContextRecall: return "noisy-in-context-recall";
    case MadTask::kFuzzyInContextRecall: return "fuzzy-in-context-recall";
    case MadTask::kSelectiveCopying: return "selective-copying";
    case MadTask::kCompression: return "compression";
    case MadTask::kMemorization: return "memorization";
  }
  return "unknown";
}

const std::vector<ParamSpec>& mad_param_specs(MadTask task) {
  static const ParamSpec ntr{"num_train_examples", "12800", "training examples"};
  static const ParamSpec nte{"num_test_examples", "1280", "test examples"};
  static const std::map<MadTask, std::vector<ParamSpec>> specs = {
      {MadTask::kInContextRecall,
       {{"vocab_size", "16", "keys [0, V/2), values [V/2, V)"}, {"seq_len", "128", "inputs are seq_len - 1 long"}, ntr, nte}},
      {MadTask::kNoisyInContextRecall,
       {{"vocab_size", "32", "including the noise tokens"},
        {"seq_len", "128", "inputs are seq_len - 1 long"},
        {"noise_vocab_size", "16", "noise tokens [V - noise, V)"},
        {"frac_noise", "0.2", "chance that a pair's slot holds two noise tokens"},
        ntr, nte}},
      {MadTask::kFuzzyInContextRecall,
       {{"vocab_size", "16", "the last token pads"},
        {"seq_len", "128", "left-padded to seq_len"},
        {"k_motif_size", "3", "tokens per key (1..k in training, k at test)"},
        {"v_motif_size", "3", "tokens per value (1..v)"},
        ntr, nte}},
      {MadTask::kSelectiveCopying,
       {{"vocab_size", "16", "V-1 copy token, V-2 blank"},
        {"seq_len", "256", "> 2 * num_tokens_to_copy + 1"},
        {"num_tokens_to_copy", "16", "tokens to copy"},
        {"pass_num_tokens_to_copy", "true", "false: copy 16 whatever num_tokens_to_copy says (mad-lab before 35772e8)"},
        ntr, nte}},
      {MadTask::kCompression,
       {{"vocab_size", "16", "V-1 is the compression token"}, {"seq_len", "32", "tokens to reproduce"}, ntr, nte}},
      {MadTask::kMemorization,
       {{"vocab_size", "256", "V-1 is the insert token"},
        {"seq_len", "32", "pairs of [key, insert]"},
        {"num_train_examples", "256", "training examples"},
        nte}},
  };
  return specs.at(task);
}

MadParams mad_params(MadTask task, const Params& p) {
  MadParams m;
  m.task = task;
  const auto& values = p.values();
  const auto has = [&](const char* name) { return values.contains(name); };
  m.vocab_size = p.integer("vocab_size");
  m.seq_len = p.integer("seq_len");
  m.num_train_examples = p.integer("num_train_examples");
  m.num_test_examples = p.integer("num_test_examples");
  if (has("noise_vocab_size")) m.noise_vocab_size = p.integer("noise_vocab_size");
  if (has("frac_noise")) m.frac_noise = p.real("frac_noise");
  if (has("k_motif_size")) m.k_motif_size = p.integer("k_motif_size");
  if (has("v_motif_size")) m.v_motif_size = p.integer("v_motif_size");
  if (has("num_tokens_to_copy")) m.num_tokens_to_copy = p.integer("num_tokens_to_copy");
  if (has("pass_num_tokens_to_copy")) m.pass_num_tokens_to_copy = p.flag("pass_num_tokens_to_copy");
  validate(m);
  return m;
}

void validate(const MadParams& m) {
  const std::string task(mad_task_name(m.task));
  const auto fail = [&](const std::string& message) { throw TaskError(task + ": " + message); };
  const auto s = [](auto v) { return std::to_string(v); };
  if (m.num_train_examples < 1) fail("num_train_examples must be >= 1 (got " + s(m.num_train_examples) + ")");
  if (m.num_test_examples < 1) fail("num_test_examples must be >= 1 (got " + s(m.num_test_examples) + ")");
  check_at_most(task, "vocab_size", m.vocab_size, kMaxVocabSize);
  check_at_most(task, "seq_len", m.seq_len, kMaxSeqLen);
  check_at_most(task, "num_train_examples", m.num_train_examples, kMaxExamples);
  check_at_most(task, "num_test_examples", m.num_test_examples, kMaxExamples);
  check_at_most(task, "num_train_examples * seq_len", m.num_train_examples * m.seq_len, kMaxTokens);
  check_at_most(task, "num_test_examples * seq_len", m.num_test_examples * m.seq_len, kMaxTokens);
  if (!(m.frac_noise >= 0 && m.frac_noise < 1)) fail("frac_noise must be in [0, 1) (got " + std::to_string(m.frac_noise) + ")");
  if (m.noise_vocab_size < 0) fail("noise_vocab_size must be >= 0 (got " + s(m.noise_vocab_size) + ")");
  if (m.frac_noise > 0 && m.noise_vocab_size == 0) fail("noise_vocab_size must be > 0 when frac_noise > 0");
  const int64_t specials = m.task == MadTask::kInContextRecall || m.task == MadTask::kNoisyInContextRecall ? 0
                           : m.task == MadTask::kSelectiveCopying                                         ? 2
                                                                                                          : 1;
  const int64_t non_special = m.vocab_size - specials - m.noise_vocab_size;
  switch (m.task) {
    case MadTask::kInContextRecall:
    case MadTask::kNoisyInContextRecall:
      if (m.seq_len < 4 || m.seq_len % 2 != 0) fail("seq_len must be even and >= 4 (got " + s(m.seq_len) + ")");
      if (non_special < 2) {
        fail("vocab_size - noise_vocab_size must be >= 2 for keys and values (got " + s(m.vocab_size) + " - " +
             s(m.noise_vocab_size) + ")");
      }
      break;
    case MadTask::kFuzzyInContextRecall:
      if (m.k_motif_size < 1 || m.v_motif_size < 1) {
        fail("k_motif_size and v_motif_size must be >= 1 (got " + s(m.k_motif_size) + ", " + s(m.v_motif_size) + ")");
      }
      if (non_special / 2 < m.k_motif_size || non_special - non_special / 2 < m.v_motif_size) {
        fail("vocab_size " + s(m.vocab_size) + " leaves " + s(non_special / 2) + " keys and " +
             s(non_special - non_special / 2) + " values, too few for motifs of " + s(m.k_motif_size) + " and " +
             s(m.v_motif_size) + " distinct tokens");
      }
      if (m.seq_len <= 2 * (m.k_motif_size + m.v_motif_size)) {
        fail("seq_len must be > 2 * (k_motif_size + v_motif_size) (got " + s(m.seq_len) + " <= " +
             s(2 * (m.k_motif_size + m.v_motif_size)) + ")");
      }
      break;
    case MadTask::kSelectiveCopying:
      if (m.num_tokens_to_copy < 1) fail("num_tokens_to_copy must be >= 1 (got " + s(m.num_tokens_to_copy) + ")");
      if (m.seq_len <= 2 * copies(m) + 1) {
        const std::string n = m.pass_num_tokens_to_copy ? "num_tokens_to_copy" : "16 (pass_num_tokens_to_copy = false)";
        fail("seq_len must be > " + n + " * 2 + 1 (got " + s(m.seq_len) + " <= " + s(2 * copies(m) + 1) + ")");
      }
      if (non_special < 1) fail("vocab_size must be >= 3 (got " + s(m.vocab_size) + ")");
      break;
    case MadTask::kCompression:
      if (m.seq_len < 2) fail("seq_len must be >= 2 (got " + s(m.seq_len) + ")");
      if (non_special < 1) fail("vocab_size - noise_vocab_size must be >= 2 (got " + s(m.vocab_size) + ")");
      break;
    case MadTask::kMemorization:
      if (m.seq_len < 2 || m.seq_len % 2 != 0) fail("seq_len must be even and >= 2 (got " + s(m.seq_len) + ")");
      if (non_special / 2 < 1) fail("vocab_size must be >= 3 (got " + s(m.vocab_size) + ")");
      break;
  }
}

int64_t mad_example_length(const MadParams& p) {
  const bool shifted = p.task == MadTask::kInContextRecall || p.task == MadTask::kNoisyInContextRecall;
  return shifted ? p.seq_len - 1 : p.seq_len;
}

MadSplits make_mad(const MadParams& p, uint64_t seed) {
  validate(p);
  Rng rng(seed);
  const std::vector<int64_t> value_of =
      p.task == MadTask::kMemorization ? memorization_map(p, seed) : std::vector<int64_t>{};
  const auto one = [&](bool training) {
    switch (p.task) {
      case MadTask::kInContextRecall:
      case MadTask::kNoisyInContextRecall: return in_context_recall(p, training, rng);
      case MadTask::kFuzzyInContextRecall: return fuzzy_in_context_recall(p, training, rng);
      case MadTask::kSelectiveCopying: return selective_copying(p, rng);
      case MadTask::kCompression: return compression(p, rng);
      case MadTask::kMemorization: return memorization(p, value_of, rng);
    }
    throw std::logic_error("mad: unknown task");
  };
  const auto many = [&](int64_t n, bool training) {
    std::vector<Example> out;
    out.reserve(n);
    for (int64_t i = 0; i < n; ++i) out.push_back(one(training));
    return stack(out, mad_example_length(p), p.vocab_size);
  };
  MadSplits splits;
  splits.train = many(p.num_train_examples, /*training=*/true);
  splits.test = many(p.num_test_examples, /*training=*/false);
  return splits;
}

}  // namespace deltabench::tasks
