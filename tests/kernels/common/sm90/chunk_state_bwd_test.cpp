// GPU tests of chunk_state_bwd.cu (ctest label "cuda"), the backward's state pass: its fp64 loop against autograd
// through the forward's chunk loop, then the kernel against the loop (rounded where the kernel rounds, and not),
// whole and segment-parallel (kernels/common/segments.h), with every pipeline depth giving the same bits.

#include "kernels/common/poison.h"
#include "kernels/common/segments.h"
#include "kernels/common/sm90/forward.h"
#include "tests/kernels/common/sm90/support.h"
#include "tests/support/catch.h"
#include "tests/support/sequence_checks.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

using namespace deltabench;
using namespace deltabench::testing::hopper;

namespace {

// The backward state pass's fp64 loop over one batch: per sequence and head, from the last chunk to the first,
//   dv_new = dv_local + diag(exp(G_last - G)) K dS,   dS <- exp(G_last) dS + (scale e^G dO)^T-weighted Q - W^T dv_new,
// rounding (when `round`) where the kernel rounds: dS before K dS, scale e^G dO and -dv_new before their
// products, to fp16. dh[c] is dS at chunk c's end.
struct BwdOutputs {
  at::Tensor dh, dv_new, dh0;
};

BwdOutputs state_bwd_loop(const BwdInputs& in, bool round) {
  const int64_t H = in.q.size(1), K = in.q.size(2), V = in.dout.size(2), N = static_cast<int64_t>(in.lengths.size());
  int64_t chunks = 0;
  for (const auto t : in.lengths) chunks += (t + 63) / 64;
  auto r = [&](const at::Tensor& x) { return round ? x.to(at::kHalf).to(at::kDouble) : x; };
  BwdOutputs out{at::zeros({chunks, H, K, V}, kF64), at::zeros_like(in.dout), at::zeros({N, H, K, V}, kF64)};
  int64_t start = 0, chunk = 0;
  for (int64_t n = 0; n < N; ++n) {
    const int64_t T = in.lengths[n], first = chunk, count = (T + 63) / 64;
    for (int64_t h = 0; h < H; ++h) {
      auto dS = in.dht.defined() ? in.dht[n][h].clone() : at::zeros({K, V}, kF64);
      for (int64_t c = count - 1; c >= 0; --c) {
        const int64_t t0 = start + c * 64, m = std::min<int64_t>(64, start + T - t0);
        auto sl = [&](const at::Tensor& x) { return x.slice(0, t0, t0 + m).select(1, h); };
        out.dh[first + c][h].copy_(dS);
        const auto G = sl(in.g).cumsum(0);
        const auto G_last = G[m - 1];
        const auto dv = sl(in.dv_local) + (G_last - G).exp().unsqueeze(1) * sl(in.k).matmul(r(dS));
        sl(out.dv_new).copy_(dv);
        auto next = G_last.exp() * dS + sl(in.q).t().matmul(r(in.scale * G.exp().unsqueeze(1) * sl(in.dout)));
        if (in.w.defined()) next = next + sl(in.w).t().matmul(r(-dv));
        dS = next;
      }
      out.dh0[n][h].copy_(dS);
    }
    start += T;
    chunk += count;
  }
  return out;
}

// The loop (unrounded) against autograd through the forward's chunk loop in fp64: the gradients of each chunk's
// end state, of v_new and of h0 for the loss sum(o dO) + sum(ht dht), with dv_local = P^T dO.
void check_bwd_loop_by_autograd(const BwdInputs& in, const at::Tensor& u, const at::Tensor& h0) {
  const int64_t H = in.q.size(1), K = in.q.size(2), V = in.dout.size(2), N = static_cast<int64_t>(in.lengths.size());
  auto h0v = h0.clone().requires_grad_(true);
  const auto uv = u.clone().requires_grad_(true);  // so that v_new has a gradient without W too
  std::vector<at::Tensor> ends, vnews;  // retained, in chunk order per (n, h)
  at::Tensor loss = at::zeros({}, kF64);
  int64_t start = 0;
  for (int64_t n = 0; n < N; ++n) {
    const int64_t T = in.lengths[n];
    for (int64_t h = 0; h < H; ++h) {
      at::Tensor S = h0v[n][h];
      for (int64_t t0 = start; t0 < start + T; t0 += 64) {
        const int64_t m = std::min<int64_t>(64, start + T - t0);
        auto sl = [&](const at::Tensor& x) { return x.slice(0, t0, t0 + m).select(1, h); };
        const auto G = sl(in.g).cumsum(0);
        const auto G_last = G[m - 1];
        auto vn = in.w.defined() ? sl(uv) - sl(in.w).matmul(S) : sl(uv).clone();
        vn.retain_grad();
        vnews.push_back(vn);
        const auto P = (sl(in.q).matmul(sl(in.k).t()) * (G.unsqueeze(1) - G.unsqueeze(0)).exp()).tril(0) * in.scale;
        const auto o = in.scale * sl(in.q).matmul(S) * G.exp().unsqueeze(1) + P.matmul(vn);
        loss = loss + (o * sl(in.dout)).sum();
        S = G_last.exp() * S + sl(in.k).t().matmul(vn * (G_last - G).exp().unsqueeze(1));
        S.retain_grad();
        ends.push_back(S);
      }
      if (in.dht.defined()) loss = loss + (S * in.dht[n][h]).sum();
    }
    start += T;
  }
  loss.backward();
  const auto loop = state_bwd_loop(in, false);
  // The same order: sequence, head, chunk.
  std::vector<at::Tensor> dh, dv;
  int64_t chunk = 0;
  start = 0;
  for (int64_t n = 0; n < N; ++n) {
    const int64_t T = in.lengths[n], count = (T + 63) / 64;
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t c = 0; c < count; ++c) {
        const int64_t t0 = start + c * 64, m = std::min<int64_t>(64, start + T - t0);
        dh.push_back(loop.dh[chunk + c][h]);
        dv.push_back(loop.dv_new.slice(0, t0, t0 + m).select(1, h));
      }
    }
    start += T;
    chunk += count;
  }
  double worst = 0;
  for (size_t i = 0; i < ends.size(); ++i) {
    const auto want = ends[i].grad().defined() ? ends[i].grad() : at::zeros({K, V}, kF64);
    worst = std::max(worst, testing::rel_rms(dh[i], want));
    worst = std::max(worst, testing::rel_rms(dv[i], vnews[i].grad()));
  }
  worst = std::max(worst, testing::rel_rms(loop.dh0, h0v.grad()));
  INFO("the backward loop against autograd: worst relative RMS " << worst);
  CHECK(worst <= 1e-10);
}

// The pass p (buffers 2, as check_bwd sets it) has written dh, dv_new and dh0 into p's outputs: `run` runs it
// again with single buffers (pipelines 1 and 3), then with the default (0: chosen for the grid), into the same
// tensors, poisoned first, which must then hold the same bits (the same sums in the same order). These cases'
// grids are small enough that the default picks 2 (the rule itself: forward_test.cpp), so the default's
// check shows that 0 is taken and dispatched, not which side it takes. A pipeline that is neither is refused
// before anything runs.
template <class Run>
void check_single_buffered(const cuda::sm90::StateBwdParams& p, at::Tensor& dh, at::Tensor& dv_new, at::Tensor& dh0,
                           Run run) {
  const auto dh2 = dh.clone(), dv_new2 = dv_new.clone(), dh02 = dh0.clone();
  for (const int buffers : {1, 3, 0}) {
    poison_(dh);
    poison_(dv_new);
    poison_(dh0);
    auto other = p;
    other.buffers = buffers;
    run(other);
    INFO("pipeline " << buffers << " against the double-buffered one");
    CHECK(at::equal(dh, dh2));
    CHECK(at::equal(dv_new, dv_new2));
    CHECK(at::equal(dh0, dh02));
  }
  auto bad = p;
  bad.buffers = 4;
  CHECK_THROWS_WITH(cuda::sm90::chunk_state_backward(bad, at::cuda::getCurrentCUDAStream().stream()),
                    testing::contains("buffers must be 0 (chosen for the grid), 1, 2 or 3 (got 4)"));
}

// The backward state pass on the GPU against its loop, on the forward state pass's inputs (support.h's make_inputs:
// W from a real UT transform, k unit-norm) with random q and dO; dht where the case has an initial state. With a
// segment length, the segment-parallel pass (forward.h's detail::segmented_state_backward) in segments of that
// many tokens, against the same loop at the design's bound, and against the whole pass: equal it would mean it
// never ran. Either way the single-buffered pipeline (StateBwdParams::buffers 1) runs too and must give the same bits.
void check_bwd(const Case& c, uint64_t seed, int64_t segment_length = 0) {
  const auto fwd = make_inputs(c, seed);
  at::manual_seed(seed + 1000);
  BwdInputs in;
  in.lengths = c.lengths;
  const int64_t tokens = fwd.k.size(0), N = static_cast<int64_t>(c.lengths.size());
  in.k = fwd.k.to(at::kDouble);
  if (c.w) in.w = fwd.w.to(at::kDouble);
  in.g = fwd.g.to(at::kDouble);
  in.q = at::randn({tokens, c.H, c.K}, kF64).to(c.dtype).to(at::kDouble);
  in.dout = at::randn({tokens, c.H, c.V}, kF64).to(c.dtype).to(at::kDouble);
  in.scale = 1.0 / std::sqrt(static_cast<double>(c.K));
  if (c.h0) in.dht = (at::randn({N, c.H, c.K, c.V}, kF64) * 0.1).to(at::kFloat).to(at::kDouble);
  in.dv_local = dv_local_fp64(in).to(at::kHalf).to(at::kDouble);  // as the kernel reads it
  const auto same = state_bwd_loop(in, true), exact = state_bwd_loop(in, false);

  const auto b = batch_of(c.lengths);
  const auto q = in.q.to(c.dtype).to(at::kCUDA), k = fwd.k.to(at::kCUDA), dout = in.dout.to(c.dtype).to(at::kCUDA);
  const auto w = c.w ? fwd.w.to(at::kCUDA) : at::Tensor(), g = fwd.g.to(at::kCUDA);
  const auto dvl = in.dv_local.to(at::kHalf).to(at::kCUDA);
  const auto dht = c.h0 ? in.dht.to(at::kFloat).to(at::kCUDA) : at::Tensor();
  const auto half = at::TensorOptions().device(at::kCUDA).dtype(at::kHalf);
  auto dh = at::empty({b.chunks, c.H, c.K, c.V}, half), dv_new = at::empty({tokens, c.H, c.V}, half);
  auto dh0 = at::empty({N, c.H, c.K, c.V}, at::TensorOptions().device(at::kCUDA).dtype(at::kFloat));
  poison_(dh);
  poison_(dv_new);
  poison_(dh0);
  cuda::sm90::StateBwdParams p;
  p.dtype = dtype_of(c.dtype);
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.w = c.w ? w.data_ptr() : nullptr;
  p.g = c.gated ? g.data_ptr<float>() : nullptr;
  p.dout = dout.data_ptr();
  p.dv_local = dvl.data_ptr();
  p.dht = c.h0 ? dht.data_ptr<float>() : nullptr;
  p.dh = dh.data_ptr();
  p.dv_new = dv_new.data_ptr();
  p.dh0 = dh0.data_ptr<float>();
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
  p.scale = static_cast<float>(in.scale);
  p.buffers = 2;  // the double-buffered pipeline here; check_single_buffered runs 1 and the default against it
  cuda::sm90::chunk_state_backward(p, at::cuda::getCurrentCUDAStream().stream());
  INFO("backward state pass: " << describe(c) << (segment_length ? " in segments of " + std::to_string(segment_length) : ""));
  if (segment_length > 0) {
    std::vector<int64_t> starts{0};
    for (const auto t : c.lengths) starts.push_back(starts.back() + t);
    const auto whole_dh = dh.clone(), whole_dh0 = dh0.clone();
    poison_(dh);
    poison_(dv_new);
    poison_(dh0);
    sm90::detail::segmented_state_backward(p, split_sequences(starts, segment_length), dht, dh0);
    check_single_buffered(p, dh, dv_new, dh0, [&](const cuda::sm90::StateBwdParams& one) {
      sm90::detail::segmented_state_backward(one, split_sequences(starts, segment_length), dht, dh0);
    });
    CHECK(dh.isfinite().all().item<bool>());
    CHECK(dv_new.isfinite().all().item<bool>());
    CHECK(dh0.isfinite().all().item<bool>());
    // Each segment starts from a joined gradient, rounded otherwise than the whole walk's: near it, not equal.
    CHECK(testing::rel_rms(dh, exact.dh) <= 5e-3);
    CHECK(testing::rel_rms(dv_new, exact.dv_new) <= 5e-3);
    CHECK(testing::rel_rms(dh0, exact.dh0) <= 5e-3);
    CHECK(testing::rel_rms(dh0, whole_dh0) <= 5e-3);
    // Without decay the joined gradients differ from the whole walk's in their last bits, which shows that the
    // segments ran. Under decay (192 tokens of log-decay near -0.16 each: exp(-30) or less) a later segment's part
    // falls below fp32's resolution of the first segment's own, so both ways give the same bits there.
    if (!c.gated) {
      CHECK_FALSE(at::equal(dh0, whole_dh0));
      CHECK_FALSE(at::equal(dh, whole_dh));
    }
    return;
  }
  check_single_buffered(p, dh, dv_new, dh0, [&](const cuda::sm90::StateBwdParams& one) {
    cuda::sm90::chunk_state_backward(one, at::cuda::getCurrentCUDAStream().stream());
  });
  CHECK(dh.isfinite().all().item<bool>());
  CHECK(dv_new.isfinite().all().item<bool>());
  CHECK(dh0.isfinite().all().item<bool>());
  // Rounded where the kernel rounds: fp32 accumulation and the fp16 outputs' own rounding are left.
  CHECK(testing::rel_rms(dh, same.dh) <= 2e-3);
  CHECK(testing::rel_rms(dv_new, same.dv_new) <= 2e-3);
  CHECK(testing::rel_rms(dh0, same.dh0) <= 1e-3);
  // Rounded nowhere: the design's own error.
  CHECK(testing::rel_rms(dv_new, exact.dv_new) <= 5e-3);
  CHECK(testing::rel_rms(dh0, exact.dh0) <= 5e-3);
}

}  // namespace

TEST_CASE("cuda: the sm90 backward state pass's loop is autograd's, and the kernel its loop", "[cuda][sm90][small]") {
  // The loop against autograd on small fp64 inputs first (no GPU needed), then the kernel against the loop.
  for (const bool gated : {false, true}) {
    for (const bool with_w : {true, false}) {
      at::manual_seed(5);
      BwdInputs in;
      in.lengths = {1, 65, 130};
      const int64_t tokens = 196, H = 2, K = 16, V = 8;
      in.q = at::randn({tokens, H, K}, kF64);
      in.k = at::randn({tokens, H, K}, kF64) * 0.3;
      if (with_w) in.w = at::randn({tokens, H, K}, kF64) * 0.1;
      in.g = gated ? -at::softplus(at::randn({tokens, H}, kF64)) * 0.2 : at::zeros({tokens, H}, kF64);
      in.dout = at::randn({tokens, H, V}, kF64);
      in.dht = at::randn({3, H, K, V}, kF64);
      in.scale = 0.25;
      in.dv_local = dv_local_fp64(in);
      INFO((gated ? "gated" : "no decay") << (with_w ? ", W" : ", no W"));
      check_bwd_loop_by_autograd(in, at::randn({tokens, H, V}, kF64), at::randn({3, H, K, V}, kF64));
    }
  }
  REQUIRE(at::hasCUDA());
  if (!on_hopper()) return;
  uint64_t seed = 700;
  for (const bool w : {true, false}) {
    for (const bool gated : {false, true}) {
      Case c;
      c.lengths = {1, 63, 64, 65, 200};
      c.varlen = true;
      c.w = w;
      c.gated = gated;
      c.h0 = true;
      check_bwd(c, seed++);
    }
  }
}

TEST_CASE("cuda: the sm90 backward state pass over head dims, dtypes and many chunks", "[cuda][sm90]") {
  REQUIRE(at::hasCUDA());
  if (!on_hopper()) return;
  uint64_t seed = 800;
  for (const int64_t K : {64, 128}) {
    for (const int64_t V : {64, 128}) {
      for (const auto dtype : {at::kBFloat16, at::kHalf}) {
        for (const bool gated : {false, true}) {
          Case c;
          c.lengths = {1000, 1000};
          c.H = 2;
          c.K = K;
          c.V = V;
          c.gated = gated;
          c.h0 = (seed % 2) == 0;
          c.dtype = dtype;
          check_bwd(c, seed++);
        }
      }
    }
  }
}

TEST_CASE("cuda: the sm90 backward state pass in segments matches its loop", "[cuda][sm90]") {
  // The three steps first in fp64 on the CPU, with the loop standing in for the kernel in each of its forms
  // (dh0 alone from a zero end; the transition: dO and dv_local zero, dht = I, V = K): every chunk's dh,
  // v_new's gradient and dh0 equal the whole loop's.
  for (const bool gated : {false, true}) {
    at::manual_seed(9);
    BwdInputs in;
    in.lengths = {1, 300, 130};
    const int64_t tokens = 431, H = 2, K = 8, V = 4, N = 3;
    in.q = at::randn({tokens, H, K}, kF64);
    in.k = at::randn({tokens, H, K}, kF64) * 0.3;
    in.w = at::randn({tokens, H, K}, kF64) * 0.1;
    in.g = gated ? -at::softplus(at::randn({tokens, H}, kF64)) * 0.2 : at::zeros({tokens, H}, kF64);
    in.dout = at::randn({tokens, H, V}, kF64);
    in.dht = at::randn({N, H, K, V}, kF64);
    in.scale = 0.25;
    in.dv_local = dv_local_fp64(in);
    const auto whole = state_bwd_loop(in, false);
    const auto segments = split_sequences({0, 1, 301, 431}, 128);
    BwdInputs seg = in;
    seg.lengths.clear();
    for (size_t i = 0; i + 1 < segments.starts.size(); ++i) seg.lengths.push_back(segments.starts[i + 1] - segments.starts[i]);
    const int64_t S = static_cast<int64_t>(seg.lengths.size());
    BwdInputs m = seg, l = seg;
    m.dout = at::zeros({tokens, H, K}, kF64);
    m.dv_local = at::zeros({tokens, H, K}, kF64);
    m.dht = at::eye(K, kF64).expand({S, H, K, K}).contiguous();
    l.dht = at::Tensor();
    const auto M = state_bwd_loop(m, false).dh0, L = state_bwd_loop(l, false).dh0;
    const auto back = backwards(segments);
    seg.dht = segment_start_states(back, M, L, in.dht);
    const auto pieces = state_bwd_loop(seg, false);
    INFO((gated ? "gated" : "no decay") << ": the backward loop in segments against the whole loop");
    CHECK(testing::rel_rms(pieces.dh, whole.dh) <= 1e-12);
    CHECK(testing::rel_rms(pieces.dv_new, whole.dv_new) <= 1e-12);
    CHECK(testing::rel_rms(pieces.dh0.index_select(0, at::tensor(back.last)), whole.dh0) <= 1e-12);
  }
  REQUIRE(at::hasCUDA());
  if (!on_hopper()) return;
  // Segments of 192 tokens (3 chunks): 6 of T 1000 (the last partial); a varlen batch's sequences split 1 to 4
  // ways; each family's form (W and decay, W, decay alone); with and without dht; K 64 and 128.
  uint64_t seed = 880;
  for (const int64_t K : {64, 128}) {
    for (const auto& [w, gated] : {std::pair{true, false}, std::pair{true, true}, std::pair{false, true}}) {
      for (const bool varlen : {false, true}) {
        Case c;
        c.lengths = varlen ? std::vector<int64_t>{1, 63, 200, 65, 700} : std::vector<int64_t>{1000, 1000};
        c.varlen = varlen;
        c.K = K;
        c.V = 128;
        c.w = w;
        c.gated = gated;
        c.h0 = varlen || K == 64;
        check_bwd(c, seed++, 192);
      }
    }
  }
}
