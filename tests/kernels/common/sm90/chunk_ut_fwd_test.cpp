// GPU tests of chunk_ut_fwd.cu (ctest label "cuda"): the UT transform's W and U, and T where asked, against the
// fp64 transform (support.h's ut_fp64) on the same 16-bit inputs.

#include "kernels/common/poison.h"
#include "tests/kernels/common/sm90/support.h"
#include "tests/support/catch.h"
#include "tests/support/sequence_checks.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>

#include <algorithm>
#include <cstdint>
#include <vector>

using namespace deltabench;
using namespace deltabench::testing::hopper;

namespace {

void check_ut(const std::vector<int64_t>& lengths, int64_t H, int64_t K, int64_t V, bool gated, at::ScalarType dtype,
              uint64_t seed) {
  at::manual_seed(seed);
  const auto b = batch_of(lengths);
  auto k = at::randn({b.tokens, H, K}, kF64);
  k = (k / k.norm(2, -1, true)).to(dtype);
  const auto v = at::randn({b.tokens, H, V}, kF64).to(dtype);
  const auto beta = at::sigmoid(at::randn({b.tokens, H}, kF64)).to(at::kFloat);
  const auto g = gated ? (-at::softplus(at::randn({b.tokens, H}, kF64)) * 0.2).to(at::kFloat) : at::zeros({b.tokens, H}, at::kFloat);
  const auto [w_ref, u_ref] = ut_fp64(lengths, k.to(at::kDouble), v.to(at::kDouble), beta.to(at::kDouble), g.to(at::kDouble));
  const auto kd = k.to(at::kCUDA), vd = v.to(at::kCUDA), betad = beta.to(at::kCUDA), gd = g.to(at::kCUDA);
  auto w = at::empty_like(kd, kd.options().dtype(at::kHalf)), u = at::empty_like(vd, vd.options().dtype(at::kHalf));
  poison_(w);
  poison_(u);
  cuda::sm90::UtFwdParams p;
  p.dtype = dtype_of(dtype);
  p.k = kd.data_ptr();
  p.v = vd.data_ptr();
  p.beta = betad.data_ptr<float>();
  p.g = gated ? gd.data_ptr<float>() : nullptr;
  p.w = w.data_ptr();
  p.u = u.data_ptr();
  p.seq_starts = b.seq.data_ptr<int64_t>();
  p.chunk_starts = b.chunk.data_ptr<int64_t>();
  p.chunks = b.chunks;
  p.N = static_cast<int64_t>(lengths.size());
  p.H = H;
  p.K = K;
  p.V = V;
  cuda::sm90::chunk_ut_forward(p, at::cuda::getCurrentCUDAStream().stream());
  INFO("UT transform: K " << K << " V " << V << (gated ? " gated " : " ") << dtype << " tokens " << b.tokens);
  // T diag(beta e^G) and T diag(beta) rounded to fp16, fp32 accumulation, W and U rounded to fp16: about
  // 3e-4 (bf16 would give 2e-3-2.6e-3, an fp64 emulation on the CPU said).
  CHECK(testing::rel_rms(w, w_ref) <= 1.5e-3);
  CHECK(testing::rel_rms(u, u_ref) <= 1.5e-3);

  // T where asked (for the UT backward): W and U unchanged to the bit, and T diag(beta e^G) K, in fp64 chunk by
  // chunk from the T written, equal to W as closely as the kernel's own W is (T rounded to fp16 once).
  auto t = at::empty({b.chunks, H, cuda::sm90::kStateChunk, cuda::sm90::kStateChunk}, kd.options().dtype(at::kHalf));
  poison_(t);
  const auto w_alone = w.clone(), u_alone = u.clone();
  p.t = t.data_ptr();
  cuda::sm90::chunk_ut_forward(p, at::cuda::getCurrentCUDAStream().stream());
  CHECK(at::equal(w, w_alone));
  CHECK(at::equal(u, u_alone));
  const auto t64 = t.to(at::kDouble).cpu(), k64 = k.to(at::kDouble), g64 = g.to(at::kDouble), b64 = beta.to(at::kDouble);
  auto from_t = at::zeros_like(w_ref);
  int64_t start = 0, chunk = 0;
  for (const auto T : lengths) {
    for (int64_t t0 = start; t0 < start + T; t0 += cuda::sm90::kStateChunk, ++chunk) {
      const int64_t n = std::min<int64_t>(cuda::sm90::kStateChunk, start + T - t0);
      for (int64_t hh = 0; hh < H; ++hh) {
        const auto rows = [&](const at::Tensor& x) { return x.slice(0, t0, t0 + n).select(1, hh); };
        const auto scale = rows(b64) * rows(g64).cumsum(0).exp();
        rows(from_t).copy_(t64[chunk][hh].slice(0, 0, n).slice(1, 0, n).matmul(scale.unsqueeze(1) * rows(k64)));
      }
    }
    start += T;
  }
  CHECK(testing::rel_rms(from_t, w_ref) <= 1.5e-3);

  // T by version 3f's column substitution (stage_bench's comparison row) rather than by blocks: the same
  // bound, and T itself within a few fp16 roundings of the blocks' (the two sum in different orders).
  auto t_columns = at::empty_like(t);
  poison_(t_columns);
  p.t = t_columns.data_ptr();
  p.column_inverse = true;
  cuda::sm90::chunk_ut_forward(p, at::cuda::getCurrentCUDAStream().stream());
  INFO("with column_inverse");
  CHECK(testing::rel_rms(w, w_ref) <= 1.5e-3);
  CHECK(testing::rel_rms(u, u_ref) <= 1.5e-3);
  CHECK(testing::rel_rms(t_columns, t.to(at::kDouble)) <= 1e-3);
}

}  // namespace

TEST_CASE("cuda: the sm90 UT transform equals the fp64 one", "[cuda][sm90][small]") {
  REQUIRE(at::hasCUDA());
  if (!on_hopper()) return;
  uint64_t seed = 300;
  for (const bool gated : {false, true}) {
    for (const int64_t K : {64, 128, 256}) {
      check_ut({1, 63, 64, 65, 130}, 2, K, 128, gated, at::kBFloat16, seed++);
    }
    check_ut({200}, 3, 128, 256, gated, at::kHalf, seed++);
    check_ut({100}, 1, 64, 64, gated, at::kBFloat16, seed++);
  }
}
