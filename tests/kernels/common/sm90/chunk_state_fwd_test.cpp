// GPU tests of chunk_state_fwd.cu (ctest label "cuda"), the forward's state pass, against an fp64 chunk loop on the
// same 16-bit inputs. W and U come from the UT transform of a real delta rule (in fp64, then rounded), so that
// the recurrence is the one the models run and stays bounded over many chunks; two references, one that
// rounds where the kernel rounds (S before W S, the decayed v_new before K^T v_new: to fp16, the kernels'
// Inner type) for tight bounds that a wrong fragment, swizzle or chunk order fails by far, one that rounds
// nowhere, for the error the design itself costs.

#include "kernels/common/poison.h"
#include "kernels/delta_rule/reference.h"
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

struct Outputs {
  at::Tensor h, v_new, ht;  // [chunks, H, K, V], [tokens, H, V], [N, H, K, V] (fp64 for the reference)
};

Outputs chunk_loop(const Case& c, const Inputs& in, bool round) {
  const int64_t H = c.H, K = c.K, V = c.V, N = static_cast<int64_t>(c.lengths.size());
  int64_t tokens = 0, chunks = 0;
  for (const auto t : c.lengths) {
    tokens += t;
    chunks += (t + cuda::sm90::kStateChunk - 1) / cuda::sm90::kStateChunk;
  }
  const auto w = in.w.to(at::kDouble), u = in.u.to(at::kDouble), k = in.k.to(at::kDouble);
  const auto g = in.g.to(at::kDouble);
  auto r = [&](const at::Tensor& x) { return round ? x.to(at::kHalf).to(at::kDouble) : x; };
  Outputs out{at::zeros({chunks, H, K, V}, kF64), at::zeros({tokens, H, V}, kF64), at::zeros({N, H, K, V}, kF64)};
  int64_t start = 0, chunk = 0;
  for (int64_t n = 0; n < N; ++n) {
    const int64_t T = c.lengths[n];
    for (int64_t h = 0; h < H; ++h) {
      auto S = c.h0 ? in.h0[n][h].to(at::kDouble) : at::zeros({K, V}, kF64);
      int64_t ci = chunk;
      for (int64_t t0 = start; t0 < start + T; t0 += cuda::sm90::kStateChunk, ++ci) {
        const int64_t m = std::min<int64_t>(cuda::sm90::kStateChunk, start + T - t0);
        out.h[ci][h].copy_(S);
        auto vn = u.slice(0, t0, t0 + m).select(1, h);
        if (c.w) vn = vn - w.slice(0, t0, t0 + m).select(1, h).matmul(r(S));
        out.v_new.slice(0, t0, t0 + m).select(1, h).copy_(vn);
        const auto G = g.slice(0, t0, t0 + m).select(1, h).cumsum(0);
        const auto G_last = G[m - 1];
        S = G_last.exp() * S + k.slice(0, t0, t0 + m).select(1, h).t().matmul(r(vn * (G_last - G).exp().unsqueeze(1)));
      }
      out.ht[n][h].copy_(S);
    }
    start += T;
    chunk += (T + cuda::sm90::kStateChunk - 1) / cuda::sm90::kStateChunk;
  }
  return out;
}

Outputs run_kernel(const Case& c, const Inputs& in) {
  const auto cuda = at::TensorOptions().device(at::kCUDA);
  const int64_t N = static_cast<int64_t>(c.lengths.size());
  const auto b = batch_of(c.lengths);
  const auto w = in.w.to(at::kCUDA), u = in.u.to(at::kCUDA), k = in.k.to(at::kCUDA), g = in.g.to(at::kCUDA);
  const auto h0 = c.h0 ? in.h0.to(at::kCUDA) : at::Tensor();
  Outputs out{at::empty({b.chunks, c.H, c.K, c.V}, cuda.dtype(at::kHalf)), at::empty({b.tokens, c.H, c.V}, cuda.dtype(at::kHalf)),
              at::empty({N, c.H, c.K, c.V}, cuda.dtype(at::kFloat))};
  poison_(out.h);
  poison_(out.v_new);
  poison_(out.ht);
  cuda::sm90::StateFwdParams p;
  p.dtype = dtype_of(c.dtype);
  p.w = c.w ? w.data_ptr() : nullptr;
  p.u = u.data_ptr();
  p.k = k.data_ptr();
  p.g = c.gated ? g.data_ptr<float>() : nullptr;
  p.h0 = c.h0 ? h0.data_ptr<float>() : nullptr;
  p.h = out.h.data_ptr();
  p.v_new = out.v_new.data_ptr();
  p.ht = out.ht.data_ptr<float>();
  if (c.varlen) {
    p.seq_starts = b.seq.data_ptr<int64_t>();
    p.chunk_starts = b.chunk.data_ptr<int64_t>();
  } else {
    p.T = c.lengths.front();
  }
  p.N = N;
  p.H = c.H;
  p.K = c.K;
  p.V = c.V;
  cuda::sm90::chunk_state_forward(p, at::cuda::getCurrentCUDAStream().stream());
  return Outputs{out.h.cpu(), out.v_new.cpu(), out.ht.cpu()};
}

// The reference's final states against the delta rule's recurrent definition (reference.h), one token at
// a time on the unrounded W and U's sources: a check of the test's own UT transform and chunk loop.
void check_reference(const Case& c, const Inputs& in, const Outputs& exact) {
  int64_t start = 0;
  for (size_t n = 0; n < c.lengths.size(); ++n) {
    const int64_t T = c.lengths[n];
    reference::PackedInputs p;
    auto seq = [&](const at::Tensor& x) { return x.slice(0, start, start + T).unsqueeze(0); };
    p.k = seq(in.k64);
    p.q = p.k;
    p.v = seq(in.v64);
    p.beta = seq(in.beta64);
    if (c.gated) p.g = seq(in.g.to(at::kDouble));
    p.h0 = c.h0 ? in.h0.slice(0, n, n + 1).to(at::kDouble) : at::zeros({1, c.H, c.K, c.V}, kF64);
    p.zero_h0 = !c.h0;
    const auto ht = reference::delta_rule_recurrent(p).second;
    // W and U were rounded to fp16: the states agree to that.
    CHECK(testing::rel_rms(exact.ht.slice(0, n, n + 1), ht) <= 1e-3);  // 1e-4 to 2.5e-4 on the CPU
    start += T;
  }
}

void check(const Case& c, uint64_t seed) {
  const auto in = make_inputs(c, seed);
  const auto got = run_kernel(c, in);
  const auto same = chunk_loop(c, in, true);
  const auto exact = chunk_loop(c, in, false);
  INFO(describe(c));
  if (c.w) check_reference(c, in, exact);
  // Every element written (the outputs were poisoned with NaN).
  CHECK(got.h.isfinite().all().item<bool>());
  CHECK(got.v_new.isfinite().all().item<bool>());
  CHECK(got.ht.isfinite().all().item<bool>());
  // Against the reference that rounds where the kernel does: what is left is fp32 accumulation and the
  // outputs' own rounding to fp16 (about 3e-4 relative).
  CHECK(testing::rel_rms(got.h, same.h) <= 2e-3);
  CHECK(testing::rel_rms(got.v_new, same.v_new) <= 2e-3);
  CHECK(testing::rel_rms(got.ht, same.ht) <= 1e-3);
  // Against exact arithmetic on the same inputs: the design's error.
  CHECK(testing::rel_rms(got.v_new, exact.v_new) <= 5e-3);
  CHECK(testing::rel_rms(got.ht, exact.ht) <= 5e-3);
}

}  // namespace

TEST_CASE("cuda: the sm90 state pass on one chunk and its edges", "[cuda][sm90][small]") {
  REQUIRE(at::hasCUDA());
  if (!on_hopper()) return;
  uint64_t seed = 1;
  for (const bool w : {true, false}) {
    for (const bool gated : {false, true}) {
      for (const int64_t T : {1, 63, 64, 65}) {
        Case c;
        c.lengths = {T, T};
        c.w = w;
        c.gated = gated;
        check(c, seed++);
      }
    }
  }
}

TEST_CASE("cuda: the sm90 state pass over head dims, dtypes, initial states and many chunks", "[cuda][sm90]") {
  REQUIRE(at::hasCUDA());
  if (!on_hopper()) return;
  uint64_t seed = 100;
  for (const int64_t K : {64, 128, 256}) {  // 256: the forward's pass alone (one block an SM, S in 128 registers)
    for (const int64_t V : {64, 128, 256}) {
      for (const auto dtype : {at::kBFloat16, at::kHalf}) {
        for (const bool gated : {false, true}) {
          Case c;
          c.lengths = {1000, 1000};
          c.H = 3;
          c.K = K;
          c.V = V;
          c.gated = gated;
          c.h0 = (seed % 2) == 0;
          c.dtype = dtype;
          check(c, seed++);
        }
      }
    }
  }
  Case longer;
  longer.lengths = {4096};
  longer.gated = true;
  longer.h0 = true;
  check(longer, seed++);
}

TEST_CASE("cuda: the sm90 state pass on a varlen batch", "[cuda][sm90][small]") {
  REQUIRE(at::hasCUDA());
  if (!on_hopper()) return;
  uint64_t seed = 200;
  for (const bool gated : {false, true}) {
    Case c;
    c.lengths = {1, 63, 64, 65, 200, 130};
    c.varlen = true;
    c.gated = gated;
    c.h0 = true;
    check(c, seed++);
  }
}

TEST_CASE("cuda: the sm90 state pass refuses what it cannot take, saying what", "[cuda][sm90]") {
  REQUIRE(at::hasCUDA());
  if (!on_hopper()) return;
  Case c;
  c.lengths = {64};
  const auto in = make_inputs(c, 7);
  const auto cuda = at::TensorOptions().device(at::kCUDA);
  auto k = in.k.to(at::kCUDA), u = in.u.to(at::kCUDA);
  auto h = at::empty({1, c.H, 96, c.V}, cuda.dtype(c.dtype)), v_new = at::empty_like(u);
  cuda::sm90::StateFwdParams p;
  p.u = u.data_ptr();
  p.k = k.data_ptr();
  p.h = h.data_ptr();
  p.v_new = v_new.data_ptr();
  p.N = 1;
  p.T = 64;
  p.H = c.H;
  p.K = 96;
  p.V = c.V;
  const auto stream = at::cuda::getCurrentCUDAStream().stream();
  CHECK_THROWS_WITH(cuda::sm90::chunk_state_forward(p, stream), testing::contains("K must be 64, 128 or 256") &&
                                                                    testing::contains("got K 96, V 128"));
  // K 256 with the output fused: S's registers leave none for O and P.
  p.K = 256;
  int dummy_o = 0;
  p.o = &dummy_o;
  p.q = p.k;
  CHECK_THROWS_WITH(cuda::sm90::chunk_state_forward(p, stream),
                    testing::contains("the output fused into the state pass takes K 64 or 128 (got K 256)"));
  p.o = nullptr;
  p.q = nullptr;
  p.K = 128;
  p.V = 96;
  CHECK_THROWS_WITH(cuda::sm90::chunk_state_forward(p, stream), testing::contains("V a positive multiple of 64"));
  p.V = 128;
  p.dtype = cuda::Dtype::kFP32;
  CHECK_THROWS_WITH(cuda::sm90::chunk_state_forward(p, stream), testing::contains("dtype must be bf16 or fp16"));
  p.dtype = cuda::Dtype::kBF16;
  p.u = static_cast<const char*>(p.u) + 2;
  CHECK_THROWS_WITH(cuda::sm90::chunk_state_forward(p, stream), testing::contains("u must start on a 16-byte boundary"));
}
