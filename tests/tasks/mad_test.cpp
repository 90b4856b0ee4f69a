// Tests tasks/mad.cpp and tasks/mad_settings.cpp: each task's format and semantics (mad-lab's), one
// fixed memorization map, determinism, the 66 benchmark settings, and parameter errors.

#include "tasks/mad.h"
#include "tasks/mad_settings.h"
#include "tests/support/catch.h"

#include <ATen/ATen.h>

#include <map>
#include <set>
#include <string>

using namespace deltabench::tasks;

namespace {

MadParams base(MadTask task) {
  const std::map<std::string, std::string> none;
  return mad_params(task, Params(std::string(mad_task_name(task)), mad_param_specs(task), none));
}

MadParams small(MadTask task) {
  auto p = base(task);
  p.num_train_examples = 64;
  p.num_test_examples = 64;
  return p;
}

}  // namespace

TEST_CASE("mad: in-context recall targets are the values of keys seen earlier", "[mad]") {
  for (const MadTask task : {MadTask::kInContextRecall, MadTask::kNoisyInContextRecall}) {
    const auto p = small(task);
    const auto data = make_mad(p, 3);
    const int64_t L = p.seq_len - 1;  // multi-query inputs are seq_len - 1 long
    REQUIRE(data.test.inputs.sizes() == at::IntArrayRef({64, L}));
    // Training targets are the next tokens, noise included.
    CHECK(at::equal(data.train.targets.slice(1, 0, L - 1), data.train.inputs.slice(1, 1, L)));
    const int64_t non_special = p.vocab_size - p.noise_vocab_size;
    const auto in = data.test.inputs.accessor<int64_t, 2>();
    const auto tg = data.test.targets.accessor<int64_t, 2>();
    for (int64_t i = 0; i < 64; ++i) {
      CHECK(tg[i][L - 1] != kIgnoreIndex);  // the final probe is always scored
      for (int64_t t = 0; t < L; ++t) {
        if (tg[i][t] == kIgnoreIndex) continue;
        const int64_t key = in[i][t];
        CHECK(key < non_special / 2);
        CHECK((tg[i][t] >= non_special / 2 && tg[i][t] < non_special));
        bool seen_before = false;
        for (int64_t s = 0; s + 1 < t; ++s) {
          if (in[i][s] == key && in[i][s + 1] == tg[i][t]) seen_before = true;
        }
        CHECK(seen_before);
      }
    }
    if (task == MadTask::kNoisyInContextRecall) {
      // Noise tokens appear, and are never scored at test.
      CHECK((data.test.inputs >= non_special).any().item<bool>());
      CHECK_FALSE((data.test.targets >= non_special).any().item<bool>());
    }
  }
}

TEST_CASE("mad: fuzzy recall", "[mad]") {
  const auto p = small(MadTask::kFuzzyInContextRecall);
  const auto data = make_mad(p, 4);
  REQUIRE(data.test.inputs.sizes() == at::IntArrayRef({64, p.seq_len}));
  const int64_t pad = p.vocab_size - 1, non_special = p.vocab_size - 1;
  const auto in = data.test.inputs.accessor<int64_t, 2>();
  const auto tg = data.test.targets.accessor<int64_t, 2>();
  for (int64_t i = 0; i < 64; ++i) {
    bool in_padding = true;
    for (int64_t t = 0; t < p.seq_len; ++t) {
      if (in[i][t] != pad) in_padding = false;
      CHECK((in_padding || in[i][t] != pad));  // padding only on the left
      if (tg[i][t] != kIgnoreIndex) CHECK((tg[i][t] >= non_special / 2 && tg[i][t] < non_special));
    }
    CHECK(tg[i][p.seq_len - 1] != kIgnoreIndex);  // the probe's value ends every example
  }
  CHECK(at::equal(data.train.targets.slice(1, 0, p.seq_len - 1), data.train.inputs.slice(1, 1, p.seq_len)));
}

TEST_CASE("mad: selective copying targets are the non-blank tokens in order", "[mad]") {
  auto p = small(MadTask::kSelectiveCopying);
  const auto data = make_mad(p, 5);
  const int64_t blank = p.vocab_size - 2, copy = p.vocab_size - 1, n = p.num_tokens_to_copy;
  for (const auto* split : {&data.train, &data.test}) {
    const auto in = split->inputs.accessor<int64_t, 2>();
    const auto tg = split->targets.accessor<int64_t, 2>();
    for (int64_t i = 0; i < 64; ++i) {
      std::vector<int64_t> content, copied;
      int64_t t = 0;
      for (; in[i][t] != copy; ++t) {
        if (in[i][t] != blank) content.push_back(in[i][t]);
      }
      CHECK(t == p.seq_len - n - 1);  // the copy token, then n blanks
      CHECK(in[i][t - 1] != blank);   // nothing is inserted after the last content token
      for (int64_t s = 0; s < p.seq_len; ++s) {
        if (tg[i][s] != kIgnoreIndex) copied.push_back(tg[i][s]);
        if (s > t) CHECK(in[i][s] == blank);
      }
      CHECK(content == copied);
      CHECK(static_cast<int64_t>(copied.size()) == n);
    }
  }
}

TEST_CASE("mad: compression targets equal its inputs", "[mad]") {
  const auto p = small(MadTask::kCompression);
  const auto data = make_mad(p, 6);
  CHECK(at::equal(data.test.targets, data.test.inputs));  // mad-lab's quirk, kept
  CHECK((data.test.inputs.select(1, p.seq_len - 1) == p.vocab_size - 1).all().item<bool>());
  CHECK((data.test.inputs.slice(1, 0, p.seq_len - 1) < p.vocab_size - 1).all().item<bool>());
}

TEST_CASE("mad: memorization's map is fixed by the data's seed, as mad-lab's", "[mad]") {
  const auto p = small(MadTask::kMemorization);
  // The map one seed's train and test sets follow.
  const auto map_of = [&](uint64_t seed) {
    std::map<int64_t, int64_t> value_of;
    const auto data = make_mad(p, seed);
    for (const auto* split : {&data.train, &data.test}) {
      const auto in = split->inputs.accessor<int64_t, 2>();
      const auto tg = split->targets.accessor<int64_t, 2>();
      for (int64_t i = 0; i < 64; ++i) {
        for (int64_t t = 0; t < p.seq_len; t += 2) {
          CHECK(in[i][t + 1] == p.vocab_size - 1);  // the insert token
          CHECK(tg[i][t] == kIgnoreIndex);
          const auto [it, fresh] = value_of.emplace(in[i][t], tg[i][t + 1]);
          CHECK(it->second == tg[i][t + 1]);  // the same key always maps to the same value
        }
      }
    }
    return value_of;
  };
  const auto one = map_of(1), again = map_of(1), other = map_of(2);
  std::set<int64_t> values;
  for (const auto& [k, v] : one) values.insert(v);
  CHECK(values.size() == one.size());  // a one-to-one map
  CHECK(one.size() > 100);
  CHECK(one == again);
  // Another seed, another map: most of the keys both sets use map to other values.
  int64_t shared = 0, moved = 0;
  for (const auto& [k, v] : one) {
    const auto it = other.find(k);
    if (it == other.end()) continue;
    ++shared;
    moved += it->second != v ? 1 : 0;
  }
  CHECK(shared > 100);
  CHECK(moved > shared / 2);
}

TEST_CASE("mad: same seed, same bytes; different seeds differ", "[mad]") {
  for (const MadTask task : kMadTasks) {
    INFO(mad_task_name(task));
    const auto p = small(task);
    const auto a = make_mad(p, 11), b = make_mad(p, 11), c = make_mad(p, 12);
    CHECK(at::equal(a.train.inputs, b.train.inputs));
    CHECK(at::equal(a.test.targets, b.test.targets));
    CHECK_FALSE(at::equal(a.train.inputs, c.train.inputs));
    CHECK((a.train.inputs >= 0).all().item<bool>());
    CHECK((a.train.inputs < p.vocab_size).all().item<bool>());
  }
}

TEST_CASE("mad: the 66 benchmark settings", "[mad]") {
  const auto& settings = mad_settings();
  CHECK(settings.size() == 66);
  std::map<MadTask, int> per_task;
  std::set<std::string> names;
  for (const auto& s : settings) {
    ++per_task[s.task];
    names.insert(s.name);
    INFO(s.name);
    const Params params(std::string(mad_task_name(s.task)), mad_param_specs(s.task), s.params);
    CHECK_NOTHROW(mad_params(s.task, params));
  }
  CHECK(names.size() == 66);
  CHECK(per_task[MadTask::kInContextRecall] == 11);
  CHECK(per_task[MadTask::kNoisyInContextRecall] == 14);
  CHECK(per_task[MadTask::kFuzzyInContextRecall] == 11);
  CHECK(per_task[MadTask::kSelectiveCopying] == 13);
  CHECK(per_task[MadTask::kCompression] == 11);
  CHECK(per_task[MadTask::kMemorization] == 6);
  const auto& noisy = find_mad_setting("noisy-in-context-recall:frac_noise=0.8");
  CHECK(noisy.params.at("frac_noise") == "0.8");
  CHECK(noisy.params.at("vocab_size") == "32");
  CHECK_THROWS_AS(find_mad_setting("in-context-recall:vocab_size=17"), TaskError);
}

TEST_CASE("mad: selective copying's num_tokens_to_copy under the published protocol copies 16, as mad-lab did", "[mad]") {
  // mad-lab's MADConfig passed num_tokens_to_copy to the generator only from 35772e8 (December 2024):
  // the benchmark's settings 32, 64 and 96 made the baseline's data.
  auto p = small(MadTask::kSelectiveCopying);
  const auto baseline = make_mad(p, 9);
  p.num_tokens_to_copy = 32;
  const auto fixed = make_mad(p, 9);
  p.pass_num_tokens_to_copy = false;
  const auto published = make_mad(p, 9);
  CHECK(at::equal(published.train.inputs, baseline.train.inputs));
  CHECK(at::equal(published.test.targets, baseline.test.targets));
  const auto copied = [](const at::Tensor& targets) { return (targets.select(0, 0) != kIgnoreIndex).sum().item<int64_t>(); };
  CHECK(copied(published.test.targets) == kMadLabCopies);
  CHECK(copied(fixed.test.targets) == 32);

  for (const auto protocol : {MadProtocol::kPublished, MadProtocol::kFixed}) {
    INFO(mad_protocol_name(protocol));
    CHECK(mad_settings(protocol).size() == 66);
    const auto& s = find_mad_setting("selective-copying:num_tokens_to_copy=64", protocol);
    CHECK(s.params.at("num_tokens_to_copy") == "64");
    CHECK(s.params.contains("pass_num_tokens_to_copy") == (protocol == MadProtocol::kPublished));
    if (protocol == MadProtocol::kPublished) CHECK(s.params.at("pass_num_tokens_to_copy") == "false");
    // Every other setting reads the same under both protocols.
    CHECK(find_mad_setting("selective-copying:baseline", protocol).params ==
          find_mad_setting("selective-copying:baseline", MadProtocol::kFixed).params);
    CHECK(find_mad_setting("selective-copying:seq_len=512", protocol).params ==
          find_mad_setting("selective-copying:seq_len=512", MadProtocol::kFixed).params);
  }
}

TEST_CASE("mad: bad parameters name the parameter", "[mad]") {
  const auto message = [](MadParams p) {
    try {
      validate(p);
    } catch (const TaskError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  auto sc = base(MadTask::kSelectiveCopying);
  sc.seq_len = 32;
  CHECK(message(sc) == "selective-copying: seq_len must be > num_tokens_to_copy * 2 + 1 (got 32 <= 33)");
  auto nr = base(MadTask::kNoisyInContextRecall);
  nr.frac_noise = 1.0;
  CHECK(message(nr) == "noisy-in-context-recall: frac_noise must be in [0, 1) (got 1.000000)");
  auto cr = base(MadTask::kInContextRecall);
  cr.seq_len = 127;
  CHECK(message(cr) == "in-context-recall: seq_len must be even and >= 4 (got 127)");
  auto fr = base(MadTask::kFuzzyInContextRecall);
  fr.vocab_size = 6;
  CHECK(message(fr).find("too few for motifs of 3 and 3 distinct tokens") != std::string::npos);
  const std::map<std::string, std::string> unknown = {{"vocab", "16"}};
  try {
    Params("compression", mad_param_specs(MadTask::kCompression), unknown);
    FAIL("no error for an unknown parameter");
  } catch (const TaskError& e) {
    CHECK(std::string(e.what()) ==
          "compression: unknown parameter 'vocab' (known: vocab_size, seq_len, num_train_examples, num_test_examples)");
  }
  const std::map<std::string, std::string> not_a_number = {{"seq_len", "long"}};
  const Params params("compression", mad_param_specs(MadTask::kCompression), not_a_number);
  CHECK_THROWS_AS(mad_params(MadTask::kCompression, params), TaskError);
}
