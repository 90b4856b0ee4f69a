#include "tests/kernels/common/sm90/support.h"

#include "tests/support/catch.h"

#include <ATen/cuda/CUDAContext.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <tuple>

namespace deltabench::testing::hopper {

bool on_hopper() {
  const auto* props = at::cuda::getCurrentDeviceProperties();
  std::string why;
  const bool ok = cuda::sm90::available(&why);
  if (props->major == 9 && props->minor == 0) {
    INFO(why);
    REQUIRE(ok);
    return true;
  }
  WARN("sm90 kernels not run: " << why);
  return false;
}

cuda::Dtype dtype_of(at::ScalarType t) { return t == at::kBFloat16 ? cuda::Dtype::kBF16 : cuda::Dtype::kFP16; }

SampleShape switch_case_shape() {
  SampleShape shape;
  shape.B = 2;
  shape.T = 300;
  shape.H = 2;
  shape.K = 64;
  shape.V = 128;
  return shape;
}

Batch batch_of(const std::vector<int64_t>& lengths) {
  std::vector<int64_t> seq{0}, chunk{0};
  for (const auto t : lengths) {
    seq.push_back(seq.back() + t);
    chunk.push_back(chunk.back() + (t + cuda::sm90::kStateChunk - 1) / cuda::sm90::kStateChunk);
  }
  return {at::tensor(seq, at::kLong).to(at::kCUDA), at::tensor(chunk, at::kLong).to(at::kCUDA), chunk.back(), seq.back()};
}

std::string describe(const Case& c) {
  return fmt::format("lengths {}{} H {} K {} V {} {}{}{} {}", fmt::join(c.lengths, " "), c.varlen ? " varlen" : "", c.H, c.K,
                     c.V, c.w ? "W" : "no W", c.gated ? " gated" : "", c.h0 ? " h0" : "",
                     c.dtype == at::kBFloat16 ? "bf16" : "fp16");
}

std::pair<at::Tensor, at::Tensor> ut_fp64(const std::vector<int64_t>& lengths, const at::Tensor& k, const at::Tensor& v,
                                          const at::Tensor& beta, const at::Tensor& g) {
  auto w = at::zeros_like(k), u = at::zeros_like(v);
  int64_t start = 0;
  for (const auto T : lengths) {
    for (int64_t t0 = start; t0 < start + T; t0 += cuda::sm90::kStateChunk) {
      const int64_t n = std::min<int64_t>(cuda::sm90::kStateChunk, start + T - t0);
      for (int64_t h = 0; h < k.size(1); ++h) {
        const auto kc = k.slice(0, t0, t0 + n).select(1, h);
        const auto bc = beta.slice(0, t0, t0 + n).select(1, h).unsqueeze(1);
        const auto G = g.slice(0, t0, t0 + n).select(1, h).cumsum(0);
        const auto A = (bc * kc.matmul(kc.t()) * (G.unsqueeze(1) - G.unsqueeze(0)).exp()).tril(-1);
        const auto Tinv = at::linalg_inv(at::eye(n, kF64) + A);
        w.slice(0, t0, t0 + n).select(1, h).copy_(Tinv.matmul(bc * G.exp().unsqueeze(1) * kc));
        u.slice(0, t0, t0 + n).select(1, h).copy_(Tinv.matmul(bc * v.slice(0, t0, t0 + n).select(1, h)));
      }
    }
    start += T;
  }
  return {w, u};
}

Inputs make_inputs(const Case& c, uint64_t seed) {
  at::manual_seed(seed);
  int64_t tokens = 0;
  for (const auto t : c.lengths) tokens += t;
  const int64_t H = c.H, K = c.K, V = c.V;
  auto k = at::randn({tokens, H, K}, kF64);
  k = k / k.norm(2, -1, true);
  const auto v = at::randn({tokens, H, V}, kF64);
  const auto beta = at::sigmoid(at::randn({tokens, H}, kF64));
  const auto g = c.gated ? -at::softplus(at::randn({tokens, H}, kF64)) * 0.2 : at::zeros({tokens, H}, kF64);
  // k as the kernel reads it (rounded), so that W and U are exact functions of it.
  k = k.to(c.dtype).to(at::kDouble);
  auto w = at::zeros({tokens, H, K}, kF64);
  auto u = v.clone();
  if (c.w) std::tie(w, u) = ut_fp64(c.lengths, k, v, beta, g);
  Inputs in;
  // W and U as the UT kernel writes them (fp16); linear attention's U is v itself, in the inputs' dtype.
  in.w = w.to(at::kHalf);
  in.u = c.w ? u.to(at::kHalf) : u.to(c.dtype);
  in.k = k.to(c.dtype);
  in.g = g.to(at::kFloat);
  in.k64 = k;
  in.v64 = v;
  in.beta64 = beta;
  if (c.h0) in.h0 = (at::randn({int64_t(c.lengths.size()), H, K, V}, kF64) * 0.1).to(at::kFloat);
  return in;
}

at::Tensor dv_local_fp64(const BwdInputs& in) {
  auto out = at::zeros_like(in.dout);
  int64_t start = 0;
  for (const auto T : in.lengths) {
    for (int64_t t0 = start; t0 < start + T; t0 += 64) {
      const int64_t m = std::min<int64_t>(64, start + T - t0);
      for (int64_t h = 0; h < in.q.size(1); ++h) {
        auto sl = [&](const at::Tensor& x) { return x.slice(0, t0, t0 + m).select(1, h); };
        const auto G = sl(in.g).cumsum(0);
        const auto P = (sl(in.q).matmul(sl(in.k).t()) * (G.unsqueeze(1) - G.unsqueeze(0)).exp()).tril(0) * in.scale;
        sl(out).copy_(P.t().matmul(sl(in.dout)));
      }
    }
    start += T;
  }
  return out;
}

}  // namespace deltabench::testing::hopper
