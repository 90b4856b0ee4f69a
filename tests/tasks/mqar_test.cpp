// Tests tasks/mqar.cpp: bit-identical to Zoology's generator (numpy fixtures made by
// tests/fixtures/make_mqar_fixtures.py), and the task's properties on many seeds.

#include "tasks/mqar.h"
#include "tasks/npy.h"
#include "tests/support/catch.h"
#include "tests/support/source_dir.h"

#include <ATen/ATen.h>

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace deltabench::tasks;

namespace {

const std::string kFixtures = deltabench::testing::source_dir() + "/tests/fixtures/mqar/";

MqarParams params(int64_t V, int64_t L, int64_t kv, int64_t N, double a = 0.01, bool random = false) {
  MqarParams p;
  p.vocab_size = V;
  p.seq_len = L;
  p.num_kv_pairs = kv;
  p.num_examples = N;
  p.power_a = a;
  p.random_non_queries = random;
  return p;
}

}  // namespace

TEST_CASE("mqar: bit-identical to Zoology's numpy generator", "[mqar]") {
  std::ifstream cases(kFixtures + "cases.txt");
  REQUIRE(cases);
  std::string line;
  int checked = 0;
  while (std::getline(cases, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string name;
    uint64_t seed;
    int64_t V, L, kv, N;
    double a;
    fields >> name >> seed >> V >> L >> kv >> N >> a;
    const auto data = make_mqar(params(V, L, kv, N, a), seed);
    const auto inputs = read_npy(kFixtures + name + ".inputs.npy");
    const auto targets = read_npy(kFixtures + name + ".targets.npy");
    INFO(name);
    CHECK(at::equal(data.inputs, inputs));
    CHECK(at::equal(data.targets, targets));
    ++checked;
  }
  CHECK(checked == 8);
}

TEST_CASE("mqar: every label is the value paired with its query's key", "[mqar]") {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const int64_t V = 512, L = 128, kv = 8;
    const auto data = make_mqar(params(V, L, kv, 50), seed);
    const auto in = data.inputs.accessor<int64_t, 2>();
    const auto tg = data.targets.accessor<int64_t, 2>();
    for (int64_t i = 0; i < 50; ++i) {
      std::set<int64_t> keys, values;
      for (int64_t j = 0; j < kv; ++j) {
        const int64_t k = in[i][2 * j], v = in[i][2 * j + 1];
        CHECK((k >= 1 && k < V / 2));   // keys from [1, V/2)
        CHECK((v >= V / 2 && v < V));   // values from [V/2, V)
        keys.insert(k);
        values.insert(v);
      }
      CHECK(static_cast<int64_t>(keys.size()) == kv);    // distinct within the example
      CHECK(static_cast<int64_t>(values.size()) == kv);
      int64_t labels = 0;
      for (int64_t t = 0; t < L; ++t) {
        if (tg[i][t] == kIgnoreIndex) {
          if (t >= 2 * kv) CHECK(in[i][t] == 0);  // with random_non_queries off, non-queries are blank
          continue;
        }
        ++labels;
        CHECK(t >= 2 * kv);
        CHECK((t - 2 * kv) % 2 == 0);  // queries only at even offsets after the key-value block
        int64_t paired = -1;
        for (int64_t j = 0; j < kv; ++j) {
          if (in[i][2 * j] == in[i][t]) paired = in[i][2 * j + 1];
        }
        CHECK(tg[i][t] == paired);
      }
      CHECK(labels == kv);  // every key queried exactly once
    }
  }
}

TEST_CASE("mqar: query gaps follow the power law", "[mqar]") {
  // The first key's gap is numpy's first weighted draw, so it follows p exactly: a chi-square test.
  const int64_t L = 64, kv = 4, N = 20000, space = (L - 2 * kv) / 2;
  const double a = 0.3;
  const auto data = make_mqar(params(1024, L, kv, N, a), 123);
  std::vector<double> observed(space, 0.0), expected(space);
  const auto in = data.inputs.accessor<int64_t, 2>();
  for (int64_t i = 0; i < N; ++i) {
    for (int64_t g = 0; g < space; ++g) {
      if (in[i][2 * kv + 2 * g] == in[i][0]) observed[g] += 1;
    }
  }
  double total = 0;
  for (int64_t g = 0; g < space; ++g) total += expected[g] = std::pow(g + 1.0, a - 1);
  double chi2 = 0;
  for (int64_t g = 0; g < space; ++g) {
    const double e = expected[g] / total * N;
    chi2 += (observed[g] - e) * (observed[g] - e) / e;
  }
  const double df = static_cast<double>(space - 1);
  INFO("chi2 " << chi2 << " with " << df << " degrees of freedom");
  CHECK(chi2 < df + 6 * std::sqrt(2 * df));  // far in the upper tail: p < 1e-6 for df = 27
  // And it is not uniform: the same statistic against a flat distribution is huge.
  double chi2_flat = 0;
  for (int64_t g = 0; g < space; ++g) {
    const double e = static_cast<double>(N) / space;
    chi2_flat += (observed[g] - e) * (observed[g] - e) / e;
  }
  CHECK(chi2_flat > 10 * (df + 6 * std::sqrt(2 * df)));
}

TEST_CASE("mqar: seeds", "[mqar]") {
  const auto p = params(8192, 64, 4, 30);
  CHECK(at::equal(make_mqar(p, 5).inputs, make_mqar(p, 5).inputs));
  CHECK_FALSE(at::equal(make_mqar(p, 5).inputs, make_mqar(p, 6).inputs));
}

TEST_CASE("mqar: random_non_queries fills only the blanks", "[mqar]") {
  const auto off = make_mqar(params(256, 64, 4, 40, 0.01, false), 9);
  const auto on = make_mqar(params(256, 64, 4, 40, 0.01, true), 9);
  CHECK(at::equal(on.targets, off.targets));
  const auto kept = off.inputs != 0;
  CHECK(at::equal(on.inputs.masked_select(kept), off.inputs.masked_select(kept)));
  CHECK(on.inputs.eq(0).sum().item<int64_t>() < off.inputs.eq(0).sum().item<int64_t>() / 50);
  CHECK(on.inputs.max().item<int64_t>() < 256);
}

TEST_CASE("mqar: bad parameters name the parameter", "[mqar]") {
  const auto message = [](const MqarParams& p) {
    try {
      validate(p);
    } catch (const TaskError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(message(params(8192, 128, 64, 10)) == "mqar: num_kv_pairs * 4 must be <= seq_len (got 64 * 4 > 128)");
  CHECK(message(params(8192, 63, 4, 10)) == "mqar: seq_len must be even and positive (got 63)");
  CHECK(message(params(64, 128, 4, 10)) == "mqar: vocab_size must be > seq_len (got 64 <= 128)");
  CHECK(message(params(8192, 64, 0, 10)) == "mqar: num_kv_pairs must be >= 1 (got 0)");
  CHECK(message(params(8192, 64, 4, 0)) == "mqar: num_examples must be >= 1 (got 0)");
  CHECK(message(params(8192, 64, 4, 10, 0.0)).find("power_a must be in (0, 1]") != std::string::npos);
  CHECK_THROWS_AS(make_mqar(params(8192, 64, 4, 10), 1ULL << 32), TaskError);
}
