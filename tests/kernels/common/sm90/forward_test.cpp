// Tests kernels/common/sm90/forward.cpp and available.cpp on the CPU: the Hopper forward's checks of a call
// come before any device work, each a sentence naming the input and what it got, and where no Hopper GPU is
// visible the kernels say so instead of running. The kernels: the GPU tests beside this file.

#include "tests/support/catch.h"

#ifdef DELTABENCH_HAVE_CUDA
#include "kernels/common/sm90/forward.h"
#include "kernels/common/sm90/sm90_kernels.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

using namespace deltabench;

namespace {

std::string error_of(Family family, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& beta,
                     const at::Tensor& g = {}, const at::Tensor& cu_seqlens = {}) {
  try {
    (void)sm90::chunk_forward(family, q, k, v, beta, g, {}, cu_seqlens, 0.125, false);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("sm90 forward: a call it cannot take is a sentence naming the input", "[kernels][sm90]") {
  const auto bf16 = at::TensorOptions().dtype(at::kBFloat16);
  const auto q = at::randn({2, 64, 2, 64}, bf16), v = at::randn({2, 64, 2, 64}, bf16);
  const auto beta = at::rand({2, 64, 2});
  CHECK_THAT(error_of(Family::kDeltaRule, q, at::randn({2, 64, 2, 32}, bf16), v, beta),
             testing::contains("q, k must be [B, T, H, K] and v [B, T, H, V] (got q [2, 64, 2, 64], k [2, 64, 2, 32]"));
  CHECK_THAT(error_of(Family::kDeltaRule, q, q, v, beta), testing::contains("q, k and v must be contiguous CUDA tensors"));
  for (const int64_t length : {-2, 100}) {
    INFO("segment_length " << length);
    CHECK_THROWS_WITH(sm90::chunk_forward(Family::kDeltaRule, q, q, v, beta, {}, {}, {}, 0.125, false, true, length),
                      testing::contains("segment_length must be 0 (chosen), -1 (whole sequences) or a positive multiple "
                                        "of 64 (got " + std::to_string(length) + ")"));
    CHECK_THROWS_WITH(sm90::chunk_train(Family::kDeltaRule, q, q, v, beta, {}, {}, {}, 0.125, false, length),
                      testing::contains("(got " + std::to_string(length) + ")"));
  }
  if (!at::hasCUDA()) return;  // the checks past the device's need one
  const auto cuda = at::TensorOptions().device(at::kCUDA);
  const auto qc = q.to(at::kCUDA), vc = v.to(at::kCUDA), betac = beta.to(at::kCUDA);
  CHECK_THAT(error_of(Family::kDeltaRule, qc.to(at::kFloat), qc.to(at::kFloat), vc.to(at::kFloat), betac),
             testing::contains("q, k and v must all be bf16 or all fp16"));
  CHECK_THAT(error_of(Family::kDeltaRule, qc, qc, vc, {}), testing::contains("the delta rules need beta [B, T, H], fp32"));
  CHECK_THAT(error_of(Family::kGatedDeltaRule, qc, qc, vc, betac), testing::contains("the gated delta rule needs g"));
  CHECK_THAT(error_of(Family::kDeltaRule, qc, qc, vc, betac, {}, at::tensor(std::vector<int64_t>{0, 64}, cuda.dtype(at::kLong))),
             testing::contains("with cu_seqlens B must be 1 (got 2)"));
}

TEST_CASE("sm90 forward: the output fused into the state pass but for the gated rule over one block an SM",
          "[kernels][sm90]") {
  // The H100's and H200's 132 SMs at H 16, V 128 (two slices a head): 16 x 2K is 512 blocks, apart for the gated
  // rule; 4 x 8K whole and 1 x 32K in four segments are 128, fused (kernels/delta_rule/NOTES.md, 3r measured).
  for (const Family family : {Family::kDeltaRule, Family::kLinearAttention}) {
    CHECK(sm90::fuses_output(family, 512, 132));
    CHECK(sm90::fuses_output(family, 128, 132));
  }
  CHECK_FALSE(sm90::fuses_output(Family::kGatedDeltaRule, 512, 132));
  CHECK_FALSE(sm90::fuses_output(Family::kGatedDeltaRule, 133, 132));
  CHECK(sm90::fuses_output(Family::kGatedDeltaRule, 132, 132));
  CHECK(sm90::fuses_output(Family::kGatedDeltaRule, 128, 132));
}

TEST_CASE("sm90 backward state pass: the pipeline chosen for the grid", "[kernels][sm90]") {
  // 132 SMs (an H100 SXM). K 128: double buffers while every block has an SM to itself (1 x 32K, H 16: 32 blocks),
  // single buffers, two blocks an SM, once blocks share SMs (16 x 2K: 512 blocks).
  CHECK(cuda::sm90::state_backward_buffers(32, 128, 132) == 2);
  CHECK(cuda::sm90::state_backward_buffers(132, 128, 132) == 2);
  CHECK(cuda::sm90::state_backward_buffers(133, 128, 132) == 1);
  CHECK(cuda::sm90::state_backward_buffers(512, 128, 132) == 1);
  // K 64: both pipelines fit two blocks an SM, so the double buffers stay.
  CHECK(cuda::sm90::state_backward_buffers(512, 64, 132) == 2);
  CHECK(cuda::sm90::StateBwdParams{}.buffers == 0);
}

TEST_CASE("sm90 kernels: without a Hopper GPU they say why and run nothing", "[kernels][sm90]") {
  std::string why;
  const bool ok = cuda::sm90::available(&why);
  if (at::hasCUDA()) {
    INFO(why);
    CHECK(ok == why.empty());
    return;  // the GPU tests cover a device that has them
  }
  CHECK_FALSE(ok);
  CHECK_THAT(why, testing::contains("no CUDA device is visible"));
  cuda::sm90::StateFwdParams p;
  CHECK_THROWS_WITH(cuda::sm90::chunk_state_forward(p, nullptr), testing::contains("sm90::chunk_state_forward: no CUDA device"));
  const auto bf16 = at::TensorOptions().dtype(at::kBFloat16);
  CHECK_THAT(error_of(Family::kLinearAttention, at::randn({1, 64, 1, 64}, bf16), at::randn({1, 64, 1, 64}, bf16),
                      at::randn({1, 64, 1, 64}, bf16), {}),
             testing::contains("must be contiguous CUDA tensors"));
}

namespace {

// dg_t = the sum of dG_s over s >= t in t's chunk of 64, one sequence at a time, in fp64.
at::Tensor suffix_sums_loop(const at::Tensor& dG, const std::vector<int64_t>& seq) {
  auto out = at::zeros_like(dG, at::TensorOptions().dtype(at::kDouble));
  const auto d = dG.to(at::kDouble);
  for (size_t n = 0; n + 1 < seq.size(); ++n) {
    for (int64_t t = seq[n]; t < seq[n + 1]; ++t) {
      const int64_t end = std::min(seq[n] + ((t - seq[n]) / 64 + 1) * 64, seq[n + 1]);
      out[t] = d.slice(0, t, end).sum(0);
    }
  }
  return out.to(at::kFloat);
}

}  // namespace

TEST_CASE("sm90 training op: dg's sums within chunks, equal rows and varlen, against a loop", "[kernels][sm90]") {
  for (const int64_t T : {1, 63, 64, 65, 130}) {
    const int64_t B = 2, H = 3;
    const auto dG = at::randn({B * T, H});
    std::vector<int64_t> seq;
    for (int64_t b = 0; b <= B; ++b) seq.push_back(b * T);
    INFO("T " << T);
    const auto want = suffix_sums_loop(dG, seq);
    CHECK(at::allclose(sm90::detail::chunk_suffix_sums(dG, B, T, {}), want, 1e-6, 1e-6));
    CHECK(at::allclose(sm90::detail::chunk_suffix_sums(dG, B, T, seq), want, 1e-6, 1e-6));
  }
  const std::vector<int64_t> seq{0, 1, 64, 129, 400, 1023};
  const auto dG = at::randn({1023, 2});
  CHECK(at::allclose(sm90::detail::chunk_suffix_sums(dG, 1, 1023, seq), suffix_sums_loop(dG, seq), 1e-6, 1e-6));
}

TEST_CASE("sm90 training op: the gradient exponent scales the largest of dO and dh_T to between 1 and 2 and leaves the rest",
          "[kernels][sm90]") {
  const auto exponent = [](const at::Tensor& dout, const at::Tensor& dht) {
    const auto e = sm90::detail::gradient_exponent(dout, dht, at::kCPU);
    REQUIRE(e.dim() == 0);
    REQUIRE(e.scalar_type() == at::kFloat);
    return e.item<float>();
  };
  // A loss averaged over many tokens: dO near 1e-5 (bf16, as autograd gives it under autocast).
  const auto dout = (at::randn({2, 70, 3, 16}) * 1e-5).to(at::kBFloat16);
  const float e = exponent(dout, {});
  const float largest = dout.abs().max().item<float>();
  CHECK(e == std::floor(std::log2(largest)));
  CHECK(largest * std::exp2(-e) >= 1.0f);
  CHECK(largest * std::exp2(-e) < 2.0f);
  // dh_T counts when it is the larger, and alone.
  const auto dht = at::full({2, 3, 16, 16}, 40.0);
  CHECK(exponent(dout, dht) == 5.0f);  // 32 <= 40 < 64
  CHECK(exponent({}, dht) == 5.0f);
  CHECK(exponent(dout, dht * 1e-9) == e);
  // Exact powers of two land on their own exponent; zero, infinity and NaN leave dO as it is (2^0).
  CHECK(exponent(at::full({4}, 0.25), {}) == -2.0f);
  CHECK(exponent(at::zeros({4}), {}) == 0.0f);
  CHECK(exponent({}, {}) == 0.0f);
  auto bad = at::ones({4});
  bad[1] = std::numeric_limits<float>::infinity();
  CHECK(exponent(bad, {}) == 0.0f);
  bad[1] = std::numeric_limits<float>::quiet_NaN();
  CHECK(exponent(bad, {}) == 0.0f);
  // Clamped inside fp32's exponents: a denormal dO (2^-149) is scaled by 2^100 at most, a huge one by 2^-100.
  CHECK(exponent(at::full({4}, std::numeric_limits<float>::denorm_min()), {}) == -100.0f);
  CHECK(exponent(at::full({4}, 1e38), {}) == 100.0f);
}

TEST_CASE("sm90 entry points: tensors made contiguous and aligned as they take them, and which calls they take",
          "[kernels][sm90]") {
  const auto base = at::arange(40, at::TensorOptions().dtype(at::kFloat));
  const auto view = base.slice(0, 1, 33).view({4, 8});  // 4 bytes past an aligned start
  REQUIRE(reinterpret_cast<std::uintptr_t>(view.data_ptr()) % 16 != 0);
  const auto a = sm90::contiguous_aligned(view);
  CHECK(reinterpret_cast<std::uintptr_t>(a.data_ptr()) % 16 == 0);
  CHECK(a.is_contiguous());
  CHECK(at::equal(a, view));
  const auto t = at::randn({3, 5}).t();  // not contiguous
  const auto b = sm90::contiguous_aligned(t, at::kBFloat16);
  CHECK(b.is_contiguous());
  CHECK(b.scalar_type() == at::kBFloat16);
  CHECK(at::equal(b, t.to(at::kBFloat16)));
  const auto whole = at::randn({4, 8});
  CHECK(sm90::contiguous_aligned(whole).data_ptr() == whole.data_ptr());  // no copy where none is needed
  CHECK_FALSE(sm90::contiguous_aligned(at::Tensor(), at::kFloat).defined());
  if (!cuda::sm90::available()) {  // every call is refused where the kernels cannot run
    CHECK_FALSE(sm90::serves(Family::kDeltaRule, 64, 64, 4, at::kBFloat16, false));
    CHECK_FALSE(sm90::serves(Family::kDeltaRule, 64, 64, 4, at::kBFloat16, true));
    return;
  }
  CHECK(sm90::serves(Family::kDeltaRule, 128, 256, 4, at::kBFloat16, false));
  CHECK_FALSE(sm90::serves(Family::kDeltaRule, 128, 256, 4, at::kBFloat16, true));  // the training op: V 64 or 128
  CHECK(sm90::serves(Family::kGatedDeltaRule, 256, 256, 4, at::kBFloat16, false));  // K 256: the forward alone
  CHECK_FALSE(sm90::serves(Family::kGatedDeltaRule, 256, 128, 4, at::kBFloat16, true));
  CHECK(sm90::serves(Family::kLinearAttention, 64, 512, 4, at::kHalf, false));
  CHECK_FALSE(sm90::serves(Family::kDeltaRule, 64, 512, 4, at::kHalf, false));
  CHECK_FALSE(sm90::serves(Family::kGatedDeltaRule, 32, 64, 4, at::kBFloat16, true));
  CHECK_FALSE(sm90::serves(Family::kGatedDeltaRule, 64, 64, 4, at::kFloat, true));
  CHECK_FALSE(sm90::serves(Family::kGatedDeltaRule, 64, 64, 65536, at::kBFloat16, true));
}
#endif
