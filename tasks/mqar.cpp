#include "tasks/mqar.h"

#include "tasks/numpy_random.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <string>

namespace deltabench::tasks {

const std::vector<ParamSpec>& mqar_param_specs() {
  static const std::vector<ParamSpec> specs = {
      {"vocab_size", "8192", "tokens; keys from [1, V/2), values from [V/2, V), 0 is the blank"},
      {"seq_len", "64", "input length L (even)"},
      {"num_kv_pairs", "8", "key-value pairs per example (4 * pairs <= L)"},
      {"num_examples", "1000", "examples N"},
      {"power_a", "0.01", "query gaps follow p(i) ~ i^(power_a - 1)"},
      {"random_non_queries", "on", "replace blanks by random tokens (on: not Zoology-identical)"},
  };
  return specs;
}

MqarParams mqar_params(const Params& p) {
  MqarParams m;
  m.vocab_size = p.integer("vocab_size");
  m.seq_len = p.integer("seq_len");
  m.num_kv_pairs = p.integer("num_kv_pairs");
  m.num_examples = p.integer("num_examples");
  m.power_a = p.real("power_a");
  m.random_non_queries = p.flag("random_non_queries");
  validate(m);
  return m;
}

void validate(const MqarParams& m) {
  const auto fail = [](const std::string& message) { throw TaskError("mqar: " + message); };
  const auto s = [](auto v) { return std::to_string(v); };
  if (m.seq_len <= 0 || m.seq_len % 2 != 0) fail("seq_len must be even and positive (got " + s(m.seq_len) + ")");
  if (m.num_kv_pairs < 1) fail("num_kv_pairs must be >= 1 (got " + s(m.num_kv_pairs) + ")");
  if (m.num_kv_pairs * 4 > m.seq_len) {
    fail("num_kv_pairs * 4 must be <= seq_len (got " + s(m.num_kv_pairs) + " * 4 > " + s(m.seq_len) + ")");
  }
  if (m.vocab_size <= m.seq_len) {
    fail("vocab_size must be > seq_len (got " + s(m.vocab_size) + " <= " + s(m.seq_len) + ")");
  }
  if (m.num_examples < 1) fail("num_examples must be >= 1 (got " + s(m.num_examples) + ")");
  check_at_most("mqar", "vocab_size", m.vocab_size, kMaxVocabSize);
  check_at_most("mqar", "seq_len", m.seq_len, kMaxSeqLen);
  check_at_most("mqar", "num_examples", m.num_examples, kMaxExamples);
  check_at_most("mqar", "num_examples * seq_len", m.num_examples * m.seq_len, kMaxTokens);
  if (!(m.power_a > 0 && m.power_a <= 1)) {
    fail("power_a must be in (0, 1] (got " + std::to_string(m.power_a) + ")");
  }
}

TaskData make_mqar(const MqarParams& m, uint64_t seed) {
  validate(m);
  if (seed > 0xffffffffULL) {
    throw TaskError("mqar: seed must be in [0, 2^32) as numpy's (got " + std::to_string(seed) + ")");
  }
  const int64_t N = m.num_examples, L = m.seq_len, kv = m.num_kv_pairs;
  const int64_t context = 2 * kv;      // the key-value block
  const int64_t half = m.vocab_size / 2;
  LegacyRandomState rs(static_cast<uint32_t>(seed));

  // Keys: choice(arange(1, V/2), kv, replace=False) per row, then values likewise from [V/2, V):
  // all rows' keys are drawn before any row's values, as np.apply_along_axis does.
  std::vector<int64_t> keys(N * kv), values(N * kv);
  for (int64_t i = 0; i < N; ++i) {
    const auto idx = rs.choice_without_replacement(half - 1, kv);
    for (int64_t j = 0; j < kv; ++j) keys[i * kv + j] = 1 + idx[j];
  }
  for (int64_t i = 0; i < N; ++i) {
    const auto idx = rs.choice_without_replacement(m.vocab_size - half, kv);
    for (int64_t j = 0; j < kv; ++j) values[i * kv + j] = half + idx[j];
  }

  // Query gaps: p(i) = a * i^(a - 1) for i = 1..space, normalised by numpy's pairwise sum.
  const int64_t space = (L - context) / 2;
  std::vector<double> p(space);
  for (int64_t i = 0; i < space; ++i) p[i] = m.power_a * std::pow(static_cast<double>(i + 1), m.power_a - 1);
  const double total = numpy_pairwise_sum(p);
  for (double& x : p) x /= total;

  at::Tensor inputs = at::zeros({N, L}, at::kLong);
  at::Tensor targets = at::full({N, L}, kIgnoreIndex, at::kLong);
  auto in = inputs.accessor<int64_t, 2>();
  auto tg = targets.accessor<int64_t, 2>();
  for (int64_t i = 0; i < N; ++i) {
    const auto gaps = rs.weighted_choice_without_replacement(p, kv);
    for (int64_t j = 0; j < kv; ++j) {
      in[i][2 * j] = keys[i * kv + j];
      in[i][2 * j + 1] = values[i * kv + j];
      // The j-th key is queried at context + 2 * gap_j; its label sits at the query's own position.
      const int64_t pos = context + 2 * gaps[j];
      in[i][pos] = keys[i * kv + j];
      tg[i][pos] = values[i * kv + j];
    }
  }

  if (m.random_non_queries) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    const auto noise = at::randint(m.vocab_size, {N, L}, gen, at::TensorOptions().dtype(at::kLong));
    inputs = at::where(inputs == 0, noise, inputs);
  }
  return {inputs, targets, Metric::kMqarAccuracy, m.vocab_size};
}

}  // namespace deltabench::tasks
