// GPU tests of chunk_ut_bwd.cu (ctest label "cuda"): the UT transform's backward against autograd through the
// transform in fp64, with T recomputed or read from the forward, and its scaled and 16-bit output forms.

#include "kernels/common/poison.h"
#include "kernels/common/sm90/forward.h"
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

// The UT transform's backward by autograd through its forward in fp64 (chunk by chunk): the gradients of k,
// v, beta and Gc (the within-chunk cumulative log decay, a leaf here) for loss = sum(W dW) + sum(U dU).
struct UtGrads {
  at::Tensor dk, dv, dbeta, dG;
};
UtGrads ut_backward_by_autograd(const std::vector<int64_t>& lengths, const at::Tensor& k, const at::Tensor& v,
                                const at::Tensor& beta, const at::Tensor& Gc, const at::Tensor& dW, const at::Tensor& dU) {
  auto kl = k.clone().requires_grad_(true), vl = v.clone().requires_grad_(true);
  auto bl = beta.clone().requires_grad_(true), Gl = Gc.clone().requires_grad_(true);
  at::Tensor loss = at::zeros({}, kF64);
  int64_t start = 0;
  for (const auto T : lengths) {
    for (int64_t t0 = start; t0 < start + T; t0 += 64) {
      const int64_t n = std::min<int64_t>(64, start + T - t0);
      for (int64_t h = 0; h < k.size(1); ++h) {
        auto sl = [&](const at::Tensor& x) { return x.slice(0, t0, t0 + n).select(1, h); };
        const auto kc = sl(kl), bc = sl(bl).unsqueeze(1), G = sl(Gl);
        const auto A = (bc * kc.matmul(kc.t()) * (G.unsqueeze(1) - G.unsqueeze(0)).exp()).tril(-1);
        const auto Tinv = at::linalg_inv(at::eye(n, kF64) + A);
        const auto W = Tinv.matmul(bc * G.exp().unsqueeze(1) * kc), U = Tinv.matmul(bc * sl(vl));
        loss = loss + (W * sl(dW)).sum() + (U * sl(dU)).sum();
      }
    }
    start += T;
  }
  loss.backward();
  return {kl.grad(), vl.grad(), bl.grad(), Gl.grad()};
}

}  // namespace

TEST_CASE("cuda: the sm90 UT backward equals autograd through the UT transform", "[cuda][sm90][small]") {
  REQUIRE(at::hasCUDA());
  if (!on_hopper()) return;
  uint64_t seed = 1100;
  for (const bool gated : {false, true}) {
    for (const int64_t K : {64, 128}) {
      for (const int64_t V : {64, 128}) {
        const auto dtype = (seed % 2) ? at::kHalf : at::kBFloat16;
        at::manual_seed(seed++);
        const std::vector<int64_t> lengths{1, 63, 64, 65, 130};
        const auto b = batch_of(lengths);
        const int64_t H = 2;
        auto k = at::randn({b.tokens, H, K}, kF64);
        k = (k / k.norm(2, -1, true)).to(dtype).to(at::kDouble);
        const auto v = at::randn({b.tokens, H, V}, kF64).to(dtype).to(at::kDouble);
        const auto beta = at::sigmoid(at::randn({b.tokens, H}, kF64)).to(at::kFloat).to(at::kDouble);
        const auto g = gated ? (-at::softplus(at::randn({b.tokens, H}, kF64)) * 0.2).to(at::kFloat).to(at::kDouble)
                             : at::zeros({b.tokens, H}, kF64);
        // G within each chunk, as the kernel forms it from g.
        auto Gc = at::zeros_like(g);
        {
          int64_t start = 0;
          for (const auto T : lengths) {
            for (int64_t t0 = start; t0 < start + T; t0 += 64) {
              const int64_t n = std::min<int64_t>(64, start + T - t0);
              Gc.slice(0, t0, t0 + n).copy_(g.slice(0, t0, t0 + n).cumsum(0));
            }
            start += T;
          }
        }
        const auto dW = at::randn({b.tokens, H, K}, kF64).to(at::kHalf).to(at::kDouble);  // fp16, as chunk_dqkw writes it
        const auto dU = at::randn({b.tokens, H, V}, kF64).to(at::kHalf).to(at::kDouble);
        const auto want = ut_backward_by_autograd(lengths, k, v, beta, Gc, dW, dU);
        const auto f32 = at::TensorOptions().device(at::kCUDA).dtype(at::kFloat);
        const auto kd = k.to(dtype).to(at::kCUDA), vd = v.to(dtype).to(at::kCUDA), betad = beta.to(f32), gd = g.to(f32);
        const auto dWd = dW.to(at::kHalf).to(at::kCUDA), dUd = dU.to(at::kHalf).to(at::kCUDA);
        auto dk = at::zeros({b.tokens, H, K}, f32), dv = at::empty({b.tokens, H, V}, f32), dbeta = at::empty({b.tokens, H}, f32);
        auto dg = at::zeros({b.tokens, H}, f32);
        poison_(dv);
        poison_(dbeta);
        cuda::sm90::UtBwdParams p;
        p.dtype = dtype_of(dtype);
        p.k = kd.data_ptr();
        p.v = vd.data_ptr();
        p.beta = betad.data_ptr<float>();
        p.g = gated ? gd.data_ptr<float>() : nullptr;
        p.dw = dWd.data_ptr();
        p.du = dUd.data_ptr();
        p.dk = dk.data_ptr<float>();
        p.dv = dv.data_ptr<float>();
        p.dbeta = dbeta.data_ptr<float>();
        p.dg = gated ? dg.data_ptr<float>() : nullptr;
        p.seq_starts = b.seq.data_ptr<int64_t>();
        p.chunk_starts = b.chunk.data_ptr<int64_t>();
        p.chunks = b.chunks;
        p.N = static_cast<int64_t>(lengths.size());
        p.H = H;
        p.K = K;
        p.V = V;
        cuda::sm90::chunk_ut_backward(p, at::cuda::getCurrentCUDAStream().stream());
        INFO("UT backward: K " << K << " V " << V << (gated ? " gated " : " ") << dtype);
        CHECK(dv.isfinite().all().item<bool>());
        CHECK(dbeta.isfinite().all().item<bool>());
        // fp16 operands (k, v, dW, T, dT, X, dS rounded): an fp64 emulation of exactly the kernel's steps
        // (2026-12-05, CPU; without the roundings it equals autograd to 5e-16) gave dk 3.5e-4 to 3.9e-4, dv 1.6e-5
        // to 6.6e-5, dbeta 3e-5 to 1.2e-4 on inputs like these.
        CHECK(testing::rel_rms(dk, want.dk) <= 2e-3);
        CHECK(testing::rel_rms(dv, want.dv) <= 1e-3);
        CHECK(testing::rel_rms(dbeta, want.dbeta) <= 2e-3);
        if (gated) CHECK(testing::rel_rms(dg, want.dG) <= 2e-3);

        // With the forward's T read instead of recomputed: the same bits (both round the same blocked inverse).
        auto t = at::empty({b.chunks, H, cuda::sm90::kStateChunk, cuda::sm90::kStateChunk}, kd.options().dtype(at::kHalf));
        {
          auto w = at::empty({b.tokens, H, K}, kd.options().dtype(at::kHalf)), u = at::empty({b.tokens, H, V}, w.options());
          cuda::sm90::UtFwdParams f;
          f.dtype = p.dtype, f.k = p.k, f.v = p.v, f.beta = p.beta, f.g = p.g, f.w = w.data_ptr(), f.u = u.data_ptr();
          f.t = t.data_ptr();
          f.seq_starts = p.seq_starts, f.chunk_starts = p.chunk_starts, f.chunks = p.chunks;
          f.N = p.N, f.H = H, f.K = K, f.V = V;
          cuda::sm90::chunk_ut_forward(f, at::cuda::getCurrentCUDAStream().stream());
        }
        const auto dk_alone = dk.clone(), dv_alone = dv.clone(), dbeta_alone = dbeta.clone(), dg_alone = dg.clone();
        dk.zero_();
        dg.zero_();
        poison_(dv);
        poison_(dbeta);
        p.t = t.data_ptr();
        cuda::sm90::chunk_ut_backward(p, at::cuda::getCurrentCUDAStream().stream());
        INFO("with the forward's T");
        CHECK(at::equal(dk, dk_alone));
        CHECK(at::equal(dv, dv_alone));
        CHECK(at::equal(dbeta, dbeta_alone));
        CHECK(at::equal(dg, dg_alone));

        // dk (added to a dk already there) and dv in the inputs' dtype times a factor on the device, as
        // sm90::chunk_train asks: the fp32 sums times it, rounded, bit for bit; dk itself left as it was.
        const auto dk_before = at::randn({b.tokens, H, K}, f32);
        dk.copy_(dk_before);
        dg.zero_();
        cuda::sm90::chunk_ut_backward(p, at::cuda::getCurrentCUDAStream().stream());
        const auto dk_sum = dk.clone(), dv_fp32 = dv.clone();
        const auto factor = at::full({}, 0.3, f32);
        auto dk_out = at::empty({b.tokens, H, K}, f32.dtype(dtype)), dv_out = at::empty({b.tokens, H, V}, f32.dtype(dtype));
        poison_(dk_out);
        poison_(dv_out);
        poison_(dbeta);
        dk.copy_(dk_before);
        dg.zero_();
        p.dv = nullptr;
        p.dk_out = dk_out.data_ptr();
        p.dv_out = dv_out.data_ptr();
        p.grad_scale = factor.data_ptr<float>();
        cuda::sm90::chunk_ut_backward(p, at::cuda::getCurrentCUDAStream().stream());
        INFO("dk and dv in the inputs' dtype, scaled");
        CHECK(at::equal(dk_out, (dk_sum * factor).to(dtype)));
        CHECK(at::equal(dv_out, (dv_fp32 * factor).to(dtype)));
        CHECK(at::equal(dk, dk_before));
        CHECK(at::equal(dbeta, dbeta_alone));
        CHECK(at::equal(dg, dg_alone));
        // The stores' form is chosen once for both: one of the two alone is refused, naming it.
        p.dv_out = nullptr;
        p.dv = dv.data_ptr<float>();
        CHECK_THROWS_WITH(cuda::sm90::chunk_ut_backward(p, at::cuda::getCurrentCUDAStream().stream()),
                          testing::contains("dk_out and dv_out go together (got only dk_out)"));
        p.dv_out = dv_out.data_ptr();
        p.dv = nullptr;
        if (!gated) continue;
        // g's gradient written by the kernel (dg_out), as sm90::chunk_train asks: the caller's dG plus the kernel's
        // part (dg_alone: added to zeros above), summed within each chunk from its end, times the factor, as the
        // op's ATen path (sm90::detail::chunk_suffix_sums, also fp64) computes it; dg itself only read. The two
        // sum in different orders, so to within a rounding of fp32.
        const auto dg_in = at::randn({b.tokens, H}, f32);
        auto dg_out = at::empty({b.tokens, H}, f32);
        poison_(dg_out);
        dg.copy_(dg_in);
        dk.copy_(dk_before);
        p.dg_out = dg_out.data_ptr<float>();
        cuda::sm90::chunk_ut_backward(p, at::cuda::getCurrentCUDAStream().stream());
        INFO("g's gradient by the kernel");
        CHECK(at::equal(dg, dg_in));
        std::vector<int64_t> starts{0};
        for (const auto T : lengths) starts.push_back(starts.back() + T);
        const auto want_dg = sm90::detail::chunk_suffix_sums(dg_in + dg_alone, 1, b.tokens, starts) * factor;
        CHECK(testing::rel_rms(dg_out, want_dg) <= 1e-6);
        CHECK(at::equal(dbeta, dbeta_alone));
        // Without grad_scale or g, refused, naming what is missing.
        p.grad_scale = nullptr;
        p.dk_out = p.dv_out = nullptr;
        p.dv = dv.data_ptr<float>();
        CHECK_THROWS_WITH(cuda::sm90::chunk_ut_backward(p, at::cuda::getCurrentCUDAStream().stream()),
                          testing::contains("dg_out needs g and grad_scale (got no grad_scale)"));
      }
    }
  }
}
