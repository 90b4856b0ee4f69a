// GPU tests of chunk_dqkw.cu (ctest label "cuda"): dq, dk, dW and dG of the chunk-parallel backward, the fp64 loop
// against autograd first, then the kernel against the loop, and its scaled and 16-bit output forms bit for bit.

#include "kernels/common/poison.h"
#include "tests/kernels/common/sm90/support.h"
#include "tests/support/catch.h"
#include "tests/support/sequence_checks.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

using namespace deltabench;
using namespace deltabench::testing::hopper;

namespace {

// The chunk-parallel gradients in fp64, chunk by chunk (dA rounded to fp16 where `round`, as the kernel does):
//   dA = scale (dO v_new^T * Gamma) on and below the diagonal,
//   dq = scale e^G (dO h^T) + dA k,  dk = exp(G_last - G) (v_new dh^T) + dA^T q,  dW = -(dv_new h^T).
struct DqkwInputs {
  std::vector<int64_t> lengths;
  at::Tensor q, k, dout, g, v_new, dv_new, h, dh;  // fp64; dv_new undefined for linear attention
  double scale = 1;
};
struct DqkwOutputs {
  at::Tensor dq, dk, dw, dG;  // dG: the gradient of the within-chunk cumulative G
};

DqkwOutputs dqkw_fp64(const DqkwInputs& in, bool round) {
  DqkwOutputs out{at::zeros_like(in.q), at::zeros_like(in.k), in.dv_new.defined() ? at::zeros_like(in.k) : at::Tensor(),
                  at::zeros_like(in.g)};
  int64_t start = 0, chunk = 0;
  for (const auto T : in.lengths) {
    for (int64_t t0 = start; t0 < start + T; t0 += 64, ++chunk) {
      const int64_t m = std::min<int64_t>(64, start + T - t0);
      for (int64_t h = 0; h < in.q.size(1); ++h) {
        auto sl = [&](const at::Tensor& x) { return x.slice(0, t0, t0 + m).select(1, h); };
        const auto G = sl(in.g).cumsum(0);
        const auto G_last = G[m - 1];
        auto dA = (sl(in.dout).matmul(sl(in.v_new).t()) * (G.unsqueeze(1) - G.unsqueeze(0)).exp()).tril(0) * in.scale;
        if (round) dA = dA.to(at::kHalf).to(at::kDouble);
        const auto hc = in.h[chunk][h], dhc = in.dh[chunk][h];
        sl(out.dq).copy_(in.scale * G.exp().unsqueeze(1) * sl(in.dout).matmul(hc.t()) + dA.matmul(sl(in.k)));
        const auto dk_end = (G_last - G).exp().unsqueeze(1) * sl(in.v_new).matmul(dhc.t());
        sl(out.dk).copy_(dk_end + dA.t().matmul(sl(in.q)));
        auto dG = (sl(out.dq) * sl(in.q)).sum(1) - (sl(out.dk) * sl(in.k)).sum(1);
        dG[m - 1] += (dk_end * sl(in.k)).sum() + G_last.exp() * (hc * dhc).sum();
        sl(out.dG).copy_(dG);
        if (out.dw.defined()) sl(out.dw).copy_(-sl(in.dv_new).matmul(hc.t()));
      }
    }
    start += T;
  }
  return out;
}

// dq and dk of the loop against autograd through the chunk's output and end state, with h and v_new held
// fixed: loss = sum(o dO) + sum(S_end dh), o = scale (e^G q h + (q k^T * Gamma) v_new),
// S_end = exp(G_last) h + k^T (v_new exp(G_last - G)).
void check_dqkw_by_autograd(const DqkwInputs& in) {
  const auto q = in.q.clone().requires_grad_(true), k = in.k.clone().requires_grad_(true);
  // G within each chunk as a leaf, so that its gradient is the loop's dG.
  auto Gc = at::zeros_like(in.g);
  {
    int64_t start = 0;
    for (const auto T : in.lengths) {
      for (int64_t t0 = start; t0 < start + T; t0 += 64) {
        const int64_t m = std::min<int64_t>(64, start + T - t0);
        Gc.slice(0, t0, t0 + m).copy_(in.g.slice(0, t0, t0 + m).cumsum(0));
      }
      start += T;
    }
  }
  Gc.requires_grad_(true);
  at::Tensor loss = at::zeros({}, kF64);
  int64_t start = 0, chunk = 0;
  for (const auto T : in.lengths) {
    for (int64_t t0 = start; t0 < start + T; t0 += 64, ++chunk) {
      const int64_t m = std::min<int64_t>(64, start + T - t0);
      for (int64_t h = 0; h < in.q.size(1); ++h) {
        auto sl = [&](const at::Tensor& x) { return x.slice(0, t0, t0 + m).select(1, h); };
        const auto G = sl(Gc);
        const auto G_last = G[m - 1];
        const auto P = (sl(q).matmul(sl(k).t()) * (G.unsqueeze(1) - G.unsqueeze(0)).exp()).tril(0);
        const auto o = in.scale * (G.exp().unsqueeze(1) * sl(q).matmul(in.h[chunk][h]) + P.matmul(sl(in.v_new)));
        const auto S_end = G_last.exp() * in.h[chunk][h] + sl(k).t().matmul(sl(in.v_new) * (G_last - G).exp().unsqueeze(1));
        loss = loss + (o * sl(in.dout)).sum() + (S_end * in.dh[chunk][h]).sum();
      }
    }
    start += T;
  }
  loss.backward();
  const auto loop = dqkw_fp64(in, false);
  const double worst = std::max({testing::rel_rms(loop.dq, q.grad()), testing::rel_rms(loop.dk, k.grad()),
                                 testing::rel_rms(loop.dG, Gc.grad())});
  INFO("dq, dk, dG of the loop against autograd: worst relative RMS " << worst);
  CHECK(worst <= 1e-10);
}

DqkwInputs random_dqkw_inputs(const std::vector<int64_t>& lengths, int64_t H, int64_t K, int64_t V, bool gated, bool with_w,
                              at::ScalarType dtype) {
  struct {
    int64_t tokens = 0, chunks = 0;
  } b;  // on the host: the autograd check runs without a GPU
  for (const auto t : lengths) {
    b.tokens += t;
    b.chunks += (t + 63) / 64;
  }
  auto r = [&](const at::Tensor& x) { return x.to(dtype).to(at::kDouble); };
  auto r16 = [](const at::Tensor& x) { return x.to(at::kHalf).to(at::kDouble); };
  DqkwInputs in;
  in.lengths = lengths;
  in.q = r(at::randn({b.tokens, H, K}, kF64));
  auto k = at::randn({b.tokens, H, K}, kF64);
  in.k = r(k / k.norm(2, -1, true));
  in.dout = r(at::randn({b.tokens, H, V}, kF64));
  in.g = gated ? (-at::softplus(at::randn({b.tokens, H}, kF64)) * 0.2).to(at::kFloat).to(at::kDouble) : at::zeros({b.tokens, H}, kF64);
  in.v_new = r16(at::randn({b.tokens, H, V}, kF64));
  if (with_w) in.dv_new = r16(at::randn({b.tokens, H, V}, kF64));
  in.h = r16(at::randn({b.chunks, H, K, V}, kF64) * 0.3);
  in.dh = r16(at::randn({b.chunks, H, K, V}, kF64) * 0.3);
  in.scale = 1.0 / std::sqrt(static_cast<double>(K));
  return in;
}

}  // namespace

TEST_CASE("cuda: the sm90 dq, dk, dW and dG: the loop is autograd's, and the kernel its loop", "[cuda][sm90][small]") {
  at::manual_seed(31);
  for (const bool gated : {false, true}) {
    auto in = random_dqkw_inputs({1, 65, 130}, 2, 16, 8, gated, true, at::kDouble);
    INFO((gated ? "gated" : "no decay"));
    check_dqkw_by_autograd(in);
  }
  REQUIRE(at::hasCUDA());
  if (!on_hopper()) return;
  uint64_t seed = 1000;
  for (const bool gated : {false, true}) {
    for (const bool with_w : {true, false}) {
      for (const int64_t K : {64, 128}) {
        for (const int64_t V : {64, 128}) {
          const auto dtype = (seed % 2) ? at::kHalf : at::kBFloat16;
          at::manual_seed(seed++);
          const std::vector<int64_t> lengths{1, 63, 64, 65, 200};
          const auto in = random_dqkw_inputs(lengths, 2, K, V, gated, with_w, dtype);
          const auto same = dqkw_fp64(in, true), exact = dqkw_fp64(in, false);
          const auto b = batch_of(lengths);
          auto dev = [](const at::Tensor& x, at::ScalarType t) { return x.to(t).to(at::kCUDA); };
          const auto q = dev(in.q, dtype), k = dev(in.k, dtype), dout = dev(in.dout, dtype), g = dev(in.g, at::kFloat);
          const auto vn = dev(in.v_new, at::kHalf), h = dev(in.h, at::kHalf), dh = dev(in.dh, at::kHalf);
          const auto dvn = with_w ? dev(in.dv_new, at::kHalf) : at::Tensor();
          const auto f32 = at::TensorOptions().device(at::kCUDA).dtype(at::kFloat);
          auto dq = at::empty(in.q.sizes(), f32), dk = at::empty(in.k.sizes(), f32), dw = at::empty(in.k.sizes(), f32.dtype(at::kHalf));
          auto dg = at::empty(in.g.sizes(), f32);
          poison_(dq);
          poison_(dk);
          poison_(dw);
          poison_(dg);
          cuda::sm90::DqkwParams p;
          p.dtype = dtype_of(dtype);
          p.q = q.data_ptr();
          p.k = k.data_ptr();
          p.dout = dout.data_ptr();
          p.g = gated ? g.data_ptr<float>() : nullptr;
          p.v_new = vn.data_ptr();
          p.dv_new = with_w ? dvn.data_ptr() : nullptr;
          p.h = h.data_ptr();
          p.dh = dh.data_ptr();
          p.dq = dq.data_ptr<float>();
          p.dk = dk.data_ptr<float>();
          p.dw = with_w ? dw.data_ptr() : nullptr;
          p.dg = gated ? dg.data_ptr<float>() : nullptr;
          p.seq_starts = b.seq.data_ptr<int64_t>();
          p.chunk_starts = b.chunk.data_ptr<int64_t>();
          p.chunks = b.chunks;
          p.N = static_cast<int64_t>(lengths.size());
          p.H = 2;
          p.K = K;
          p.V = V;
          p.scale = static_cast<float>(in.scale);
          cuda::sm90::chunk_dqkw(p, at::cuda::getCurrentCUDAStream().stream());
          INFO("dqkw: K " << K << " V " << V << (gated ? " gated" : "") << (with_w ? " W " : " ") << dtype);
          CHECK(dq.isfinite().all().item<bool>());
          CHECK(dk.isfinite().all().item<bool>());
          // fp32 accumulation of fp16 operands against the loop that rounds dA as the kernel does; the fp32
          // outputs are not rounded.
          CHECK(testing::rel_rms(dq, same.dq) <= 1e-3);
          CHECK(testing::rel_rms(dk, same.dk) <= 1e-3);
          CHECK(testing::rel_rms(dq, exact.dq) <= 2e-3);
          CHECK(testing::rel_rms(dk, exact.dk) <= 2e-3);
          if (with_w) {
            // dW rounded to fp16 (the UT backward's operand): fp16's half ulp, 2^-11 relative, on top.
            CHECK(dw.isfinite().all().item<bool>());
            CHECK(testing::rel_rms(dw.to(at::kFloat), same.dw) <= 1e-3);
          }
          if (gated) {
            CHECK(dg.isfinite().all().item<bool>());
            CHECK(testing::rel_rms(dg, same.dG) <= 2e-3);
          }
          // dq in the inputs' dtype times a factor on the device, as sm90::chunk_train asks: the fp32 dq times
          // it, rounded, bit for bit; the other outputs as before.
          const auto dk_fp32 = dk.clone(), dw_fp32 = dw.clone(), dg_fp32 = dg.clone();
          const auto factor = at::full({}, 0.3, f32);
          auto dq_out = at::empty(in.q.sizes(), f32.dtype(dtype));
          poison_(dq_out);
          poison_(dk);
          poison_(dw);
          poison_(dg);
          p.dq = nullptr;
          p.dq_out = dq_out.data_ptr();
          p.grad_scale = factor.data_ptr<float>();
          cuda::sm90::chunk_dqkw(p, at::cuda::getCurrentCUDAStream().stream());
          CHECK(at::equal(dq_out, (dq * factor).to(dtype)));
          CHECK(at::equal(dk, dk_fp32));
          if (with_w) CHECK(at::equal(dw, dw_fp32));
          if (gated) CHECK(at::equal(dg, dg_fp32));
          // dO times a factor on the device where the kernel rounds it to fp16 (sm90::chunk_train's way): the
          // same bits as dO times it beforehand, which rounds the same product once.
          const auto quarter = at::full({}, 0.25, f32);
          const auto dout_quarter = (dout * 0.25).contiguous();
          p.dout = dout_quarter.data_ptr();
          cuda::sm90::chunk_dqkw(p, at::cuda::getCurrentCUDAStream().stream());
          const auto dq_before = dq_out.clone(), dk_before = dk.clone(), dw_before = dw.clone(), dg_before = dg.clone();
          poison_(dq_out);
          poison_(dk);
          poison_(dw);
          poison_(dg);
          p.dout = dout.data_ptr();
          p.dout_scale = quarter.data_ptr<float>();
          cuda::sm90::chunk_dqkw(p, at::cuda::getCurrentCUDAStream().stream());
          CHECK(at::equal(dq_out, dq_before));
          CHECK(at::equal(dk, dk_before));
          if (with_w) CHECK(at::equal(dw, dw_before));
          if (gated) CHECK(at::equal(dg, dg_before));
        }
      }
    }
  }
}
