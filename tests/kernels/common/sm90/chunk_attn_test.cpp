// GPU tests of chunk_attn.cu (ctest label "cuda"): the output kernel against its fp64 formula, and dv_local (the
// same kernel with P's operands swapped) against P^T dO in fp64.

#include "kernels/common/poison.h"
#include "tests/kernels/common/sm90/support.h"
#include "tests/support/catch.h"
#include "tests/support/sequence_checks.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>

#include <cmath>
#include <cstdint>
#include <vector>

using namespace deltabench;
using namespace deltabench::testing::hopper;

namespace {

void check_output(const std::vector<int64_t>& lengths, int64_t H, int64_t K, int64_t V, bool gated, at::ScalarType dtype,
                  uint64_t seed) {
  at::manual_seed(seed);
  const auto b = batch_of(lengths);
  const double scale = 1.0 / std::sqrt(static_cast<double>(K));
  const auto q = at::randn({b.tokens, H, K}, kF64).to(dtype), k = at::randn({b.tokens, H, K}, kF64).to(dtype);
  const auto vn = at::randn({b.tokens, H, V}, kF64).to(at::kHalf);  // v_new and h as the state pass writes them
  const auto h = (at::randn({b.chunks, H, K, V}, kF64) * 0.3).to(at::kHalf);
  const auto g = gated ? (-at::softplus(at::randn({b.tokens, H}, kF64)) * 0.2).to(at::kFloat) : at::zeros({b.tokens, H}, at::kFloat);
  // fp64: O = scale ((Q h) e^G + ((Q K^T) * Gamma) v_new), chunk by chunk.
  auto ref = at::zeros({b.tokens, H, V}, kF64);
  {
    const auto q64 = q.to(at::kDouble), k64 = k.to(at::kDouble), v64 = vn.to(at::kDouble), h64 = h.to(at::kDouble);
    const auto g64 = g.to(at::kDouble);
    int64_t start = 0, chunk = 0;
    for (const auto T : lengths) {
      for (int64_t t0 = start; t0 < start + T; t0 += cuda::sm90::kStateChunk, ++chunk) {
        const int64_t n = std::min<int64_t>(cuda::sm90::kStateChunk, start + T - t0);
        for (int64_t hh = 0; hh < H; ++hh) {
          const auto qc = q64.slice(0, t0, t0 + n).select(1, hh), kc = k64.slice(0, t0, t0 + n).select(1, hh);
          const auto G = g64.slice(0, t0, t0 + n).select(1, hh).cumsum(0);
          const auto P = (qc.matmul(kc.t()) * (G.unsqueeze(1) - G.unsqueeze(0)).exp()).tril(0);
          ref.slice(0, t0, t0 + n).select(1, hh).copy_(
              scale * (qc.matmul(h64[chunk][hh]) * G.exp().unsqueeze(1) + P.matmul(v64.slice(0, t0, t0 + n).select(1, hh))));
        }
      }
      start += T;
    }
  }
  const auto qd = q.to(at::kCUDA), kd = k.to(at::kCUDA), vd = vn.to(at::kCUDA), hd = h.to(at::kCUDA), gd = g.to(at::kCUDA);
  auto o = at::empty(vd.sizes(), qd.options());  // in the inputs' dtype, as the kernel writes it
  poison_(o);
  cuda::sm90::OutputFwdParams p;
  p.dtype = dtype_of(dtype);
  p.q = qd.data_ptr();
  p.k = kd.data_ptr();
  p.v_new = vd.data_ptr();
  p.h = hd.data_ptr();
  p.g = gated ? gd.data_ptr<float>() : nullptr;
  p.o = o.data_ptr();
  p.seq_starts = b.seq.data_ptr<int64_t>();
  p.chunk_starts = b.chunk.data_ptr<int64_t>();
  p.chunks = b.chunks;
  p.N = static_cast<int64_t>(lengths.size());
  p.H = H;
  p.K = K;
  p.V = V;
  p.scale = static_cast<float>(scale);
  cuda::sm90::chunk_output_forward(p, at::cuda::getCurrentCUDAStream().stream());
  INFO("output: K " << K << " V " << V << (gated ? " gated " : " ") << dtype << " tokens " << b.tokens);
  // P rounded to fp16 before its product, fp32 accumulation, O rounded to the dtype: about 1.7e-3 for bf16
  // (an fp64 emulation on the CPU), most of it O's own rounding.
  CHECK(testing::rel_rms(o, ref) <= 3e-3);
}

}  // namespace

TEST_CASE("cuda: the sm90 output equals its fp64 formula", "[cuda][sm90][small]") {
  REQUIRE(at::hasCUDA());
  if (!on_hopper()) return;
  uint64_t seed = 400;
  for (const bool gated : {false, true}) {
    for (const int64_t K : {64, 128, 256}) {
      check_output({1, 63, 64, 65, 130}, 2, K, 128, gated, at::kBFloat16, seed++);
    }
    check_output({200}, 3, 128, 192, gated, at::kHalf, seed++);
  }
}

TEST_CASE("cuda: the sm90 dv_local equals P^T dO in fp64", "[cuda][sm90][small]") {
  REQUIRE(at::hasCUDA());
  if (!on_hopper()) return;
  uint64_t seed = 900;
  // V 128 and 256 run two 64-column slices a block (P' once for both), 64 and 192 one.
  for (const bool gated : {false, true}) {
    for (const int64_t K : {64, 128}) {
      for (const auto dtype : {at::kBFloat16, at::kHalf}) {
        for (const int64_t V : {64, 128, 192, 256}) {
          at::manual_seed(seed++);
          BwdInputs in;
          in.lengths = {1, 63, 64, 65, 130};
          const auto b = batch_of(in.lengths);
          const int64_t H = 2;
          in.q = at::randn({b.tokens, H, K}, kF64).to(dtype).to(at::kDouble);
          in.k = at::randn({b.tokens, H, K}, kF64).to(dtype).to(at::kDouble);
          in.dout = at::randn({b.tokens, H, V}, kF64).to(dtype).to(at::kDouble);
          in.g = gated ? (-at::softplus(at::randn({b.tokens, H}, kF64)) * 0.2).to(at::kFloat).to(at::kDouble)
                       : at::zeros({b.tokens, H}, kF64);
          in.scale = 1.0 / std::sqrt(static_cast<double>(K));
          const auto want = dv_local_fp64(in);
          const auto q = in.q.to(dtype).to(at::kCUDA), k = in.k.to(dtype).to(at::kCUDA), dout = in.dout.to(dtype).to(at::kCUDA);
          const auto g = in.g.to(at::kFloat).to(at::kCUDA);
          auto dv_local = at::empty({b.tokens, H, V}, at::TensorOptions().device(at::kCUDA).dtype(at::kHalf));
          poison_(dv_local);
          cuda::sm90::DvLocalParams p;
          p.dtype = dtype_of(dtype);
          p.q = q.data_ptr();
          p.k = k.data_ptr();
          p.dout = dout.data_ptr();
          p.g = gated ? g.data_ptr<float>() : nullptr;
          p.dv_local = dv_local.data_ptr();
          p.seq_starts = b.seq.data_ptr<int64_t>();
          p.chunk_starts = b.chunk.data_ptr<int64_t>();
          p.chunks = b.chunks;
          p.N = static_cast<int64_t>(in.lengths.size());
          p.H = H;
          p.K = K;
          p.V = V;
          p.scale = static_cast<float>(in.scale);
          cuda::sm90::chunk_dv_local(p, at::cuda::getCurrentCUDAStream().stream());
          INFO("dv_local: K " << K << " V " << V << (gated ? " gated " : " ") << dtype);
          CHECK(dv_local.isfinite().all().item<bool>());
          // P' rounded to fp16 before its product, dv_local written fp16: about 5e-4.
          CHECK(testing::rel_rms(dv_local, want) <= 2e-3);
          // dO times a factor on the device where the kernel rounds it to fp16 (sm90::chunk_train's way): the same
          // bits as dO times it beforehand, which rounds the same product once.
          const auto dv_first = dv_local.clone();
          const auto quarter = at::full({}, 0.25, at::TensorOptions().device(at::kCUDA).dtype(at::kFloat));
          const auto dout_quarter = (dout * 0.25).contiguous();
          p.dout = dout_quarter.data_ptr();
          poison_(dv_local);
          cuda::sm90::chunk_dv_local(p, at::cuda::getCurrentCUDAStream().stream());
          const auto dv_before = dv_local.clone();
          p.dout = dout.data_ptr();
          p.dout_scale = quarter.data_ptr<float>();
          poison_(dv_local);
          cuda::sm90::chunk_dv_local(p, at::cuda::getCurrentCUDAStream().stream());
          CHECK(at::equal(dv_local, dv_before));
          CHECK_FALSE(at::equal(dv_local, dv_first));  // the factor took effect
        }
      }
    }
  }
}
