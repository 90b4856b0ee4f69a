// Tests bench/kernel_cases.cpp: the shipped registry and its sweeps' expansion, and the errors of a bad
// registry (file, line, key, expected and actual).

#include "bench/kernel_cases.h"
#include "tests/support/catch.h"

#include <algorithm>
#include <string>

using namespace deltabench;

namespace {

const bench::KernelCase* find(const bench::KernelCases& r, const std::string& op, int64_t B, int64_t T, int64_t K = 128,
                              const std::string& dtype = "bf16") {
  for (const auto& c : r.cases) {
    if (c.op == op && c.B == B && c.T == T && c.K == K && c.dtype == dtype) return &c;
  }
  return nullptr;
}

std::string error_of(const std::string& text) {
  try {
    bench::parse_kernel_cases(text, "cases.toml");
  } catch (const bench::KernelCaseError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("the kernel case registry: fixed cases first, then the sweeps' new ones") {
  const auto& r = bench::kernel_cases();
  REQUIRE(r.cases.size() >= 24);
  CHECK(bench::case_name(r.cases[0]) == "delta_rule/B16/T2048/H16/K128");
  CHECK(r.cases[0].target_ms == 0.60);
  CHECK(r.cases[0].fixed);
  REQUIRE(r.sweeps.size() == 6);
  CHECK(r.sweeps[0].name == "tokens_32k");  // the file's order, not the names'
  CHECK(r.sweeps[1].name == "batch_1");
  CHECK_FALSE(r.sweeps[0].over_batch());
  // The decode sweep goes over B at T = 1, every family; B = 64 of the gated rule is a fixed case too.
  const auto& decode = r.sweeps[4];
  CHECK(decode.name == "decode");
  CHECK(decode.over_batch());
  CHECK(decode.axis() == decode.B);
  for (const auto* op : {"decode_delta_rule", "decode_gated_delta_rule", "decode_linear_attention"}) {
    for (const int64_t B : decode.B) {
      INFO(op << " B " << B);
      REQUIRE(find(r, op, B, 1));
      CHECK(find(r, op, B, 1)->sweeps.back() == "decode");
    }
  }
  CHECK(find(r, "decode_gated_delta_rule", 64, 1)->fixed);
  CHECK_FALSE(find(r, "decode_delta_rule", 64, 1)->fixed);
  // B x T = 32768: B = 32768 / T, at least 1; the 2K point is the fixed case, with its target.
  const auto* c2k = find(r, "delta_rule", 16, 2048);
  REQUIRE(c2k);
  CHECK(c2k->sweeps == std::vector<std::string>{"tokens_32k"});
  REQUIRE(find(r, "fwd_bwd_gated_delta_rule", 64, 512));
  CHECK_FALSE(find(r, "fwd_bwd_gated_delta_rule", 64, 512)->fixed);
  REQUIRE(find(r, "delta_rule", 1, 65536));
  CHECK(find(r, "delta_rule", 1, 65536)->sweeps == std::vector<std::string>{"tokens_32k", "batch_1"});
  // The 1 x 32K point belongs to the fixed list and both length sweeps.
  CHECK(find(r, "gated_delta_rule", 1, 32768)->sweeps == std::vector<std::string>{"tokens_32k", "batch_1"});
  CHECK(find(r, "gated_delta_rule", 1, 32768)->target_ms == 0.80);
  REQUIRE(find(r, "sdpa", 16, 2048, 64));
  // The fp16 sweep: the same shapes as tokens_32k's in fp16, cases of their own, named so.
  CHECK(r.sweeps[5].name == "fp16");
  CHECK(r.sweeps[5].dtype == "fp16");
  const auto* half = find(r, "fwd_bwd_gated_delta_rule", 16, 2048, 128, "fp16");
  REQUIRE(half);
  CHECK(half->sweeps == std::vector<std::string>{"fp16"});
  CHECK_FALSE(half->fixed);
  CHECK(bench::case_name(*half) == "fwd_bwd_gated_delta_rule/B16/T2048/H16/K128/fp16");
  // The bf16 case of that shape stays the fixed one, with its target; the fp16 one is another entry.
  const auto* bf16 = find(r, "fwd_bwd_gated_delta_rule", 16, 2048);
  REQUIRE(bf16);
  CHECK(bf16 != half);
  CHECK(bf16->fixed);
  CHECK(bf16->target_ms == 3.28);
  // No shape twice.
  for (size_t i = 0; i < r.cases.size(); ++i) {
    for (size_t j = i + 1; j < r.cases.size(); ++j) {
      const auto &a = r.cases[i], &b = r.cases[j];
      CHECK_FALSE((a.op == b.op && a.B == b.B && a.T == b.T && a.H == b.H && a.K == b.K && a.V == b.V &&
                   a.dtype == b.dtype));
    }
  }
}

TEST_CASE("a bad kernel case registry is an error naming the line and the key") {
  CHECK(error_of("[fixed]\ncases = [[\"delta\", 1, 2, 3, 4, 5, 0]]\n")
            .starts_with("cases.toml:2: [fixed] cases: expected one of delta_rule, "));
  CHECK(error_of("[fixed]\ncases = [[\"delta_rule\", 1, 2, 3, 4, 5]]\n") ==
        "cases.toml:2: [fixed] cases: expected [op, B, T, H, K, V, target ms] or [op, B, T, H, K, V, target ms, dtype], "
        "got 6 fields");
  CHECK(error_of("[fixed]\ncases = [[\"delta_rule\", 1, 2, 3, 4, 5, 0, \"fp8\"]]\n") ==
        "cases.toml:2: [fixed] cases: expected one of bf16, fp16, got \"fp8\"");
  const auto fixed_half = bench::parse_kernel_cases(
      "[fixed]\ncases = [[\"delta_rule\", 1, 2, 3, 4, 5, 0], [\"delta_rule\", 1, 2, 3, 4, 5, 0, \"fp16\"]]\n", "cases.toml");
  REQUIRE(fixed_half.cases.size() == 2);  // the same shape in two dtypes: two cases
  CHECK(bench::case_name(fixed_half.cases[1]) == "delta_rule/B1/T2/H3/K4/fp16");
  CHECK(error_of("[fixed]\ncases = [[\"delta_rule\", 1, 0, 3, 4, 5, 0]]\n") ==
        "cases.toml:2: [fixed] cases: expected a positive integer, got 0");
  CHECK(error_of("[fixed]\ncases = [[\"delta_rule\", 1, 2, 3, 4, 5, 0], [\"delta_rule\", 1, 2, 3, 4, 5, 1.0]]\n") ==
        "cases.toml:2: [fixed] cases: a second row for delta_rule/B1/T2/H3/K4");
  const std::string sweep = "[sweeps.s]\ntitle = \"t\"\nops = [\"sdpa\"]\nT = [512]\nH = 1\nK = 64\nV = 64\n";
  CHECK(error_of(sweep) == "cases.toml:1: [sweeps.s]: needs exactly one of 'tokens' (B x T constant) and 'B'");
  CHECK(error_of(sweep + "B = 1\ntokens = 8\n") ==
        "cases.toml:1: [sweeps.s]: needs exactly one of 'tokens' (B x T constant) and 'B'");
  CHECK(error_of(sweep + "B = 1\nbatch = 2\n") == "cases.toml:9: [sweeps.s]: unknown key 'batch'");
  CHECK(error_of(sweep + "B = 1\ndtype = 16\n") == "cases.toml:9: [sweeps.s] dtype: expected one of bf16, fp16 in quotes, got 16");
  CHECK(error_of("[cases]\n") == "cases.toml:1: top level: unknown table [cases]");
  CHECK(error_of("") == "cases.toml:1: top level: no cases: give [fixed] cases or [sweeps.<name>] tables");
  CHECK(error_of(sweep + "B = 1\n") == "");
  CHECK(error_of(sweep + "B = [1, 0]\n") == "cases.toml:8: [sweeps.s] B: expected a positive integer, got 0");
  const std::string two_lengths = "[sweeps.s]\ntitle = \"t\"\nops = [\"sdpa\"]\nT = [1, 2]\nH = 1\nK = 64\nV = 64\nB = [1, 2]\n";
  CHECK(error_of(two_lengths) == "cases.toml:4: [sweeps.s] T: a sweep over B (an array) takes one T, got 2");
  const auto batches = bench::parse_kernel_cases(sweep + "B = [4, 1]\n", "cases.toml");
  REQUIRE(batches.cases.size() == 2);
  CHECK(bench::case_name(batches.cases[0]) == "sdpa/B4/T512/H1/K64");  // the array's order
  CHECK(bench::case_name(batches.cases[1]) == "sdpa/B1/T512/H1/K64");
}
