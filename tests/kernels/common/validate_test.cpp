// Tests kernels/common/validate.cpp through the public ops: every user mistake is a c10::Error
// whose message names the tensor and gives the expected and the actual value. Never a crash.

#include "kernels/delta_rule/op.h"
#include "kernels/family.h"
#include "kernels/gated_delta_rule/op.h"
#include "kernels/linear_attn/op.h"
#include "tests/support/catch.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <functional>
#include <string>
#include <vector>

using namespace deltabench;

namespace {

// Runs `call` and checks that it throws a c10::Error whose message contains every fragment.
void expect_error(const std::function<void()>& call, const std::vector<std::string>& fragments) {
  std::string message;
  try {
    call();
  } catch (const c10::Error& e) {
    message = e.what_without_backtrace();
  }
  INFO("message: " << message);
  REQUIRE_FALSE(message.empty());
  for (const auto& fragment : fragments) {
    INFO("expected fragment: " << fragment);
    CHECK(message.find(fragment) != std::string::npos);
  }
}

const SampleShape kShape{2, 8, 2, 4, 3};

SequenceInputs inputs(Family family) {
  return sample_inputs(family, kShape, at::kFloat, 1, /*decay=*/true);
}

}  // namespace

TEST_CASE("validation: shapes", "[validate]") {
  for (const Family family : kFamilies) {
    INFO(family_name(family));
    const std::string op(family_name(family));
    {
      auto in = inputs(family);
      in.k = at::randn({2, 8, 2, 5});
      expect_error([&] { run_family(family, in, {}); },
                   {op, "k must have shape [B, T, H, K] = [2, 8, 2, 4]", "got [2, 8, 2, 5]"});
    }
    {
      auto in = inputs(family);
      in.v = at::randn({3, 8, 2, 3});
      expect_error([&] { run_family(family, in, {}); },
                   {"v must have shape [B, T, H, V] = [2, 8, 2, 3]", "got [3, 8, 2, 3]"});
    }
    {
      auto in = inputs(family);
      in.q = at::randn({8, 2, 4});
      expect_error([&] { run_family(family, in, {}); }, {"q must have 4 dimensions", "got 3"});
    }
    if (family != Family::kDeltaRule) {
      auto in = inputs(family);
      in.g = at::randn({2, 7, 2});
      expect_error([&] { run_family(family, in, {}); }, {"g must have shape [B, T, H] = [2, 8, 2]", "got [2, 7, 2]"});
    }
    if (family != Family::kLinearAttention) {
      auto in = inputs(family);
      in.beta = at::rand({2, 8, 3});
      expect_error([&] { run_family(family, in, {}); },
                   {"beta must have shape [B, T, H] = [2, 8, 2]", "got [2, 8, 3]"});
    }
  }
}

TEST_CASE("validation: required inputs", "[validate]") {
  auto in = inputs(Family::kGatedDeltaRule);
  expect_error([&] { delta_rule(in.q, in.k, in.v, at::Tensor()); }, {"delta_rule", "beta", "required"});
  expect_error([&] { gated_delta_rule(in.q, in.k, in.v, in.beta, at::Tensor()); },
               {"gated_delta_rule", "g", "required"});
}

TEST_CASE("validation: dtypes and devices", "[validate]") {
  for (const Family family : kFamilies) {
    INFO(family_name(family));
    {
      auto in = inputs(family);
      in.k = in.k.to(at::kDouble);
      expect_error([&] { run_family(family, in, {}); }, {"k must have the dtype of q (Float)", "got Double"});
    }
    {
      auto in = inputs(family);
      in.q = in.q.to(at::kInt);
      in.k = in.k.to(at::kInt);
      in.v = in.v.to(at::kInt);
      expect_error([&] { run_family(family, in, {}); }, {"q must be float32", "got Int"});
    }
    if (family != Family::kDeltaRule) {
      auto in = inputs(family);
      in.g = in.g.to(at::kDouble);
      expect_error([&] { run_family(family, in, {}); }, {"g must have the dtype of q (Float) or float32", "got Double"});
    }
    {
      // The meta device stands in for a second device on a machine that has only a CPU.
      auto in = inputs(family);
      in.v = at::empty({2, 8, 2, 3}, at::TensorOptions().device(at::kMeta));
      expect_error([&] { run_family(family, in, {}); }, {"v must be on the device of q (cpu)", "got meta"});
    }
  }
}

TEST_CASE("validation: options", "[validate]") {
  const Family family = Family::kDeltaRule;
  const auto in = inputs(family);
  {
    SequenceOptions options;
    options.chunk_size = 48;
    expect_error([&] { run_family(family, in, options); }, {"chunk_size must be 16, 32 or 64", "got 48"});
  }
  for (const int64_t length : {int64_t{-2}, int64_t{100}}) {
    SequenceOptions options;
    options.kernel_segment_length = length;
    expect_error([&] { run_family(family, in, options); },
                 {"kernel_segment_length must be 0 (chosen), -1 (whole sequences) or a positive multiple of 64",
                  "got " + std::to_string(length)});
  }
  {
    SequenceOptions options;
    options.initial_state = at::zeros({2, 2, 3, 4});
    expect_error([&] { run_family(family, in, options); },
                 {"initial_state must have shape [N, H, K, V] = [2, 2, 4, 3]", "got [2, 2, 3, 4]"});
  }
  {
    SequenceOptions options;
    options.initial_state = at::zeros({2, 2, 4, 3}, at::kHalf);
    expect_error([&] { run_family(family, in, options); }, {"initial_state must be float32", "got Half"});
  }
  {
    SequenceOptions options;
    options.scale = std::numeric_limits<double>::infinity();
    expect_error([&] { run_family(family, in, options); }, {"scale must be finite"});
  }
}

TEST_CASE("validation: cu_seqlens", "[validate]") {
  const Family family = Family::kGatedDeltaRule;
  const auto batch = inputs(family);
  SequenceInputs packed;  // B = 1, T = 16
  const auto flat = [](const at::Tensor& t) { return t.defined() ? t.reshape({1, 16, 2, -1}).squeeze(-1) : t; };
  packed.q = batch.q.reshape({1, 16, 2, 4});
  packed.k = batch.k.reshape({1, 16, 2, 4});
  packed.v = batch.v.reshape({1, 16, 2, 3});
  packed.beta = flat(batch.beta.unsqueeze(-1));
  packed.g = flat(batch.g.unsqueeze(-1));
  const auto with = [&](std::vector<int64_t> starts) {
    SequenceOptions options;
    options.cu_seqlens = at::tensor(starts, at::kLong);
    return options;
  };
  expect_error([&] { run_family(family, packed, with({0, 5, 3, 16})); },
               {"cu_seqlens must be strictly increasing", "cu_seqlens[1] = 5", "cu_seqlens[2] = 3"});
  expect_error([&] { run_family(family, packed, with({0, 5, 5, 16})); }, {"strictly increasing"});
  expect_error([&] { run_family(family, packed, with({0, 4, 7})); }, {"cu_seqlens must end at T = 16", "got 7"});
  expect_error([&] { run_family(family, packed, with({1, 4, 16})); }, {"cu_seqlens must start at 0", "got 1"});
  expect_error([&] { run_family(family, batch, with({0, 4, 8})); }, {"B = 1", "got B = 2"});
  {
    SequenceOptions options;
    options.cu_seqlens = at::tensor(std::vector<double>{0, 16});
    expect_error([&] { run_family(family, packed, options); }, {"cu_seqlens must be int32 or int64", "got Double"});
  }
  {
    SequenceOptions options = with({0, 4, 16});
    options.initial_state = at::zeros({3, 2, 4, 3});
    expect_error([&] { run_family(family, packed, options); },
                 {"initial_state must have shape [N, H, K, V] = [2, 2, 4, 3]", "got [3, 2, 4, 3]"});
  }
}
