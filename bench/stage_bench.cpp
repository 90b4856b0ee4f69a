// The Hopper forward (kernels/common/sm90) against what the ops run today, stage and whole, on the same
// shapes as bench/fla_stage.py times FLA's:
//   state_fwd/sm90/<rule>/B/T/H/K:  the state pass alone, FLA's chunk_gated_delta_rule_fwd_h stage (per chunk of
//                                    64 tokens v_new = U - W S, S <- gamma S + (K decayed)^T v_new, writing the
//                                    state at each chunk's start and v_new), wgmma on fp16 operands
//   state_fwd/walk/<rule>/B/T/H/K:  the chunked training pair's forward walk (kernels/common/chunk_state.cu:
//                                    fp32 buffers [BH, NT, C, *], TF32 products), what training runs today
//   state_bwd/sm90/<rule>/B/T/H/K:  the backward's state pass alone, FLA's chunk_gated_delta_rule_bwd_dhu stage, in
//                                    the pipeline sm90::state_backward_buffers chooses for the grid
//   state_bwd/sm90_{1,2}buf/...:    the same pass in each pipeline: 2, every tile double-buffered (one block an SM
//                                    at K 128); 1, Q, W, dO and dv_local single-buffered (two blocks an SM)
//   state_bwd/sm90_split/...:       pipeline 3: pipeline 1's buffers, each refilled as soon as its chunk is done with it
//   state_{fwd,bwd}/sm90_segments/<rule>/1/T/H/K: at B = 1, the sm90 passes in the segments the ops' cost model
//                                    chooses (transitions, join and pass), beside the whole ones
//   state_bwd/walk/<rule>/B/T/H/K:  the training pair's backward walk (its q^T dO comes in whole from chunk_dout,
//                                    so it does less than the other two)
//   dv_local/{sm90,tf32}/...:       the backward's dv_local (FLA's chunk_bwd_dv_local); tf32: chunk_dout, which
//                                    writes q^T dO too
//   dqkw/{sm90,tf32}/...:           the backward's dq, dk, dW (FLA's chunk_bwd_dqkwg); tf32: chunk_grads; both
//                                    write dG too in the gated rows
//   ut_fwd/sm90/...:                the UT transform alone (W and U from k, v, beta, g; FLA's
//                                    chunk_gated_delta_rule_fwd_intra), as the forward and the backward run it
//   ut_fwd/sm90_columns/...:        the same with T by version 3f's column substitution, not by blocks
//   ut_bwd/sm90_t/...:              the same reading T from the UT forward (the training op's way), not substituting
//   ut_bwd/sm90_t32/...:            sm90_t with dk and dv written fp32 (the form before version 3k), for the cost of
//                                    the 16-bit stores
//   ut_bwd/{sm90,tf32}/...:         the UT transform's backward (FLA's prepare_wy_repr_bwd, which gets the inverse
//                                    from its forward, as tf32 does; sm90 recomputes it)
//   fwd_bwd/sm90_keep/...:          sm90::chunk_train keeping W, U and T from the forward (keep_ut)
//   fwd_bwd/sm90_keep_state/...:    the same keeping h and v_new too (keep_state): no forward pass in the backward;
//                                    as the ops do where set_sm90_train is on (version 3p)
//   fwd_bwd/{sm90,chunked}/...:     the forward and every input's gradient: sm90::chunk_train, and the op under
//                                    backend kernel (the chunked training pair of versions 1-5)
//   fwd/sm90/<rule>/B/T/H/K:        the whole forward on the sm_90a kernels (sm90::chunk_forward: UT transform,
//                                    then the state pass with the output fused in; the ops' forward for the delta
//                                    rule and linear attention, and for the gated rule where the pass is at most
//                                    one block an SM: sm90::fuses_output)
//   fwd/sm90_apart/<rule>/B/T/H/K:  the same with the output kernel after the state pass (h and v_new through
//                                    device memory), for the fusion's gain; the ops' forward for the gated rule
//                                    over one block an SM
//   fwd/sm90_whole/<rule>/B/T/H/K:  fwd/sm90 with whole sequences where the training op runs the segment-parallel
//                                    pass (its cost model's choice on this GPU: 1 x 32K, 8 x 4K at H 8, K 64), for
//                                    that pass's gain
//   fwd/sm90_train_plan/...:        fwd/sm90 in the training op's segments where the forward alone plans others
//                                    (model_segment_length: one block an SM against two; version 3q)
//   fwd_bwd/sm90_whole/...:         the same for fwd_bwd/sm90 (the forward, its recomputation and the backward's
//                                    state pass)
//   fwd_bwd/sm90_seg<N>/<rule>/...: at B = 1 and at T 8192 and more, fwd_bwd/sm90_keep_state in segments of N
//                                    tokens (2048, 4096, 8192; shorter than T), against the cost model's choice
//   fwd/fused/<rule>/B/T/H/K:       the op's forward under backend kernel (the fused forward of version 2c)
//   fwd/reference/<rule>/.../K256:  the op's forward under backend reference (ATen), beside the sm_90a forward at
//                                    head dim 256 (measured 7 times slower: `auto` takes the sm_90a forward there)
//   <stage>/<impl>_fp16/.../K128:   state_fwd/sm90, state_bwd/sm90, ut_fwd/sm90, fwd/sm90, fwd/sm90_apart and
//                                    fwd_bwd/sm90_keep_state with fp16 inputs: the other rows' bf16 inputs are
//                                    converted to the kernels' fp16 in shared memory inside the chunk loops, which
//                                    fp16 ones skip (kernels_bench's fp16 sweep: 0.73 against 0.95 ms, the delta
//                                    rule's forward at 16 x 2K on an H100)
//   fwd/sm90_whole and fwd_bwd/sm90_keep_state_whole at B 1, T 512 and 2048: whole sequences beside the cost model's
//                                    segments (fwd/sm90, fwd_bwd/sm90_keep_state at the same shapes)
// At head dim 256 (16 x 2K, H 8) the forward's rows alone: state_fwd/sm90, ut_fwd/sm90 and fwd/sm90 (its output
// kernel after the pass).
// Timing as kernels_bench (bench/gpu_timing.h): median of 15, L2 flushed, the GPU's time (ms) and the call
// from an idle GPU (call_ms). Counters: GB_per_s and pct_of_copy of the bytes a pass that moves each byte
// once would move (the state pass: W, K, U and g read, h and v_new written; the forward: q, k, v, beta and g
// read, o written; 16-bit) at this machine's measured copy rate.
//
//   build/bench/stage_bench --benchmark_out=stage_bench.json --benchmark_out_format=json

#include "bench/gpu_timing.h"
#include "kernels/common/cuda_dispatch.h"
#include "kernels/common/cuda_kernels.h"
#include "kernels/common/scoped_switch.h"
#include "kernels/common/sm90/forward.h"
#include "kernels/common/sm90/sm90_kernels.h"
#include "kernels/family.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/autograd.h>
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace {

using deltabench::bench::time_once;

struct Shape {
  int64_t B, T, H, K, V;
};

// The registry's standard shapes (bench/kernel_cases.toml), FLA's own benchmark shape, one Zoology layer, and head
// dim 256 (the registry's head_dim_256 sweep at 16 x 2K; the forward's stages alone: the backward takes K 64 and 128).
const std::vector<Shape> kShapes = {{16, 2048, 16, 128, 128}, {4, 8192, 16, 128, 128}, {1, 32768, 16, 128, 128},
                                    {8, 4096, 8, 64, 64},     {256, 256, 2, 64, 64},    {16, 2048, 8, 256, 256}};

deltabench::bench::Rates g_rates;
const at::TensorOptions kCuda = at::TensorOptions().device(at::kCUDA);

std::string name(const std::string& stage, const std::string& impl, bool gated, const Shape& s) {
  return stage + "/" + impl + "/" + (gated ? "gated_delta_rule" : "delta_rule") + "/B" + std::to_string(s.B) + "/T" +
         std::to_string(s.T) + "/H" + std::to_string(s.H) + "/K" + std::to_string(s.K);
}

double forward_bytes(const Shape& s, bool gated) {
  const double tokens = static_cast<double>(s.B * s.T * s.H);
  return 2.0 * tokens * (2 * s.K + 2 * s.V) + 4.0 * tokens * (gated ? 2 : 1);
}

// The backward state pass: q, k and W read, dO and dv_local read, dh and dv_new written, g read.
double backward_pass_bytes(const Shape& s, bool gated) {
  const double tokens = static_cast<double>(s.B * s.T * s.H);
  const double chunks = static_cast<double>(s.B * ((s.T + 63) / 64) * s.H);
  return 2.0 * tokens * (3 * s.K + 3 * s.V) + 2.0 * chunks * s.K * s.V + (gated ? 4.0 * tokens : 0.0);
}

// dv_local: q, k and dO read, dv_local written (16-bit). dq, dk, dW: q, k, dO, v_new and dv_new read (16-bit),
// h and dh read; sm90: dq written in the inputs' dtype, dk fp32 and dW fp16 (as sm90::chunk_train runs it); tf32:
// dq, dk and dW written fp32.
double dv_local_bytes(const Shape& s, bool gated) {
  const double tokens = static_cast<double>(s.B * s.T * s.H);
  return 2.0 * tokens * (2 * s.K + 2 * s.V) + (gated ? 4.0 * tokens : 0.0);
}

double dqkw_bytes(const Shape& s, bool gated, bool sm90) {
  const double tokens = static_cast<double>(s.B * s.T * s.H);
  const double chunks = static_cast<double>(s.B * ((s.T + 63) / 64) * s.H);
  const double written = sm90 ? (2.0 + 4.0 + 2.0) * tokens * s.K : 4.0 * tokens * 3 * s.K;
  return 2.0 * tokens * (2 * s.K + 3 * s.V) + written + 4.0 * chunks * s.K * s.V + (gated ? 4.0 * tokens : 0.0);
}

// The UT forward: k and v read, W and U written (16-bit), beta (and g) read.
double ut_fwd_bytes(const Shape& s, bool gated) {
  const double tokens = static_cast<double>(s.B * s.T * s.H);
  return 2.0 * tokens * (2 * s.K + 2 * s.V) + 4.0 * tokens * (gated ? 2 : 1);
}

// The UT backward: k, v, dU read (16-bit), beta and dbeta (and g, dg); sm90: dW read fp16, dk read fp32 and
// written with dv in the inputs' dtype (as sm90::chunk_train runs it), or with out16 false fp32; tf32: dW read and
// dk read and written fp32, dv written fp32.
double ut_bwd_bytes(const Shape& s, bool gated, bool sm90, bool out16 = true) {
  const double tokens = static_cast<double>(s.B * s.T * s.H);
  const double rest = 8.0 * tokens * (gated ? 2 : 1);
  const double written = (out16 ? 2.0 : 4.0) * tokens * (s.K + s.V);
  if (sm90) return 2.0 * tokens * (2 * s.K + 2 * s.V) + 4.0 * tokens * s.K + written + rest;
  return 2.0 * tokens * (s.K + 2 * s.V) + 4.0 * tokens * (3 * s.K + s.V) + rest;
}

double pass_bytes(const Shape& s, bool gated) {
  const double tokens = static_cast<double>(s.B * s.T * s.H);
  const double chunks = static_cast<double>(s.B * ((s.T + 63) / 64) * s.H);
  return 2.0 * tokens * (2 * s.K + 2 * s.V) + 2.0 * chunks * s.K * s.V + (gated ? 4.0 * tokens : 0.0);
}

// K [B * T, H, K] in `io` (bf16, or fp16 for the _fp16 rows), W and U fp16 (the sm90 UT kernel's), g [B * T, H]
// fp32, drawn as kernels_bench draws a case's inputs;
// W = beta K, the UT transform's first term, keeps the state bounded over the chunks.
struct Inputs {
  at::Tensor w, k, u, g;
};

Inputs make_inputs(const Shape& s, bool gated, at::ScalarType io = at::kBFloat16) {
  at::manual_seed(0);
  const auto f32 = kCuda.dtype(at::kFloat);
  Inputs in;
  auto k = at::randn({s.B * s.T, s.H, s.K}, f32);
  k = k / k.norm(2, -1, true);
  in.k = k.to(io);
  in.w = (k * at::randn({s.B * s.T, s.H, 1}, f32).sigmoid()).to(at::kHalf);  // W and U as the UT kernel writes them
  in.u = at::randn({s.B * s.T, s.H, s.V}, f32).to(at::kHalf);
  if (gated) in.g = at::log_sigmoid(at::randn({s.B * s.T, s.H}, f32)) / 16.0;
  return in;
}

void report(benchmark::State& state, double bytes, const std::function<void()>& fn) {
  try {
    fn();  // warm-up; a call the kernel refuses is this row's error, not the end of the run
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  at::cuda::getCurrentCUDAStream().synchronize();
  for (auto _ : state) {
    const double ms = time_once(fn, 1, /*hide_launch=*/true);
    const double call_ms = time_once(fn, 1, /*hide_launch=*/false);
    state.SetIterationTime(ms / 1e3);
    state.counters["ms"] = ms;
    state.counters["call_ms"] = call_ms;
    state.counters["GB_per_s"] = bytes / (ms / 1e3) / 1e9;
    state.counters["pct_of_copy"] = 100.0 * bytes / g_rates.bytes_per_s / (ms / 1e3);
  }
}

// The token offsets of the shape's B equal sequences.
std::vector<int64_t> sequence_starts(const Shape& s) {
  std::vector<int64_t> starts;
  for (int64_t b = 0; b <= s.B; ++b) starts.push_back(b * s.T);
  return starts;
}

// The segments the sm_90a training op's cost model (forward.h's detail::plan_segments) runs these sequences in on
// this GPU, or none where it keeps them whole.
std::optional<deltabench::Segments> model_segments(const Shape& s) {
  return deltabench::sm90::detail::plan_segments(sequence_starts(s), s.H, s.K, s.V, 0);
}

// The cost model's segment lengths for the forward alone and for the training op (0: whole), or none without the
// sm_90a kernels.
std::optional<std::pair<int64_t, int64_t>> plan_lengths(const Shape& s) {
  if (!deltabench::cuda::sm90::available()) return std::nullopt;
  using deltabench::sm90::detail::model_segment_length;
  const auto starts = sequence_starts(s);
  return std::make_pair(model_segment_length(starts, s.H, s.K, s.V, true), model_segment_length(starts, s.H, s.K, s.V, false));
}

// segmented: the pass in the segments the sm_90a ops' cost model chooses (forward.h's detail::plan_segments,
// segmented_state_forward and segmented_state_backward: the transitions, the join and the pass).
// buffers: the backward pass's pipeline (StateBwdParams::buffers). io: the inputs' dtype (k; q and dO too backward).
void run_sm90(benchmark::State& state, const Shape& s, bool gated, bool backward, bool segmented = false,
              int buffers = deltabench::cuda::sm90::StateBwdParams{}.buffers, at::ScalarType io = at::kBFloat16) {
  std::string why;
  if (!deltabench::cuda::sm90::available(&why)) {
    state.SkipWithError(why.c_str());
    return;
  }
  std::optional<deltabench::Segments> segments;
  if (segmented) {
    segments = model_segments(s);
    if (!segments) {
      state.SkipWithError("the cost model keeps these sequences whole");
      return;
    }
  }
  const auto in = make_inputs(s, gated, io);
  const auto dtype = io == at::kHalf ? deltabench::cuda::Dtype::kFP16 : deltabench::cuda::Dtype::kBF16;
  const int64_t chunks = s.B * ((s.T + 63) / 64);
  auto h = at::empty({chunks, s.H, s.K, s.V}, kCuda.dtype(at::kHalf));
  auto v_new = at::empty_like(in.u);
  const auto stream = at::cuda::getCurrentCUDAStream().stream();
  if (backward) {
    const auto q = at::randn({s.B * s.T, s.H, s.K}, kCuda.dtype(at::kFloat)).to(io);
    const auto dout = at::randn({s.B * s.T, s.H, s.V}, kCuda.dtype(at::kFloat)).to(io);
    const auto dv_local = at::randn({s.B * s.T, s.H, s.V}, kCuda.dtype(at::kFloat)).to(at::kHalf);
    deltabench::cuda::sm90::StateBwdParams p;
    p.dtype = dtype;
    p.q = q.data_ptr();
    p.k = in.k.data_ptr();
    p.w = in.w.data_ptr();
    p.g = gated ? in.g.data_ptr<float>() : nullptr;
    p.dout = dout.data_ptr();
    p.dv_local = dv_local.data_ptr();
    p.dh = h.data_ptr();
    p.dv_new = v_new.data_ptr();
    p.N = s.B, p.T = s.T, p.H = s.H, p.K = s.K, p.V = s.V;
    p.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.K)));
    p.buffers = buffers;
    report(state, backward_pass_bytes(s, gated), [&] {
      if (segments) {
        deltabench::sm90::detail::segmented_state_backward(p, *segments, {}, {});
      } else {
        deltabench::cuda::sm90::chunk_state_backward(p, stream);
      }
    });
    return;
  }
  deltabench::cuda::sm90::StateFwdParams p;
  p.dtype = dtype;
  p.w = in.w.data_ptr();
  p.u = in.u.data_ptr();
  p.k = in.k.data_ptr();
  p.g = gated ? in.g.data_ptr<float>() : nullptr;
  p.h = h.data_ptr();
  p.v_new = v_new.data_ptr();
  p.N = s.B;
  p.T = s.T;
  p.H = s.H;
  p.K = s.K;
  p.V = s.V;
  report(state, pass_bytes(s, gated), [&] {
    if (segments) {
      deltabench::sm90::detail::segmented_state_forward(p, *segments, {}, {});
    } else {
      deltabench::cuda::sm90::chunk_state_forward(p, stream);
    }
  });
}

void run_walk(benchmark::State& state, const Shape& s, bool gated, bool backward) {
  if (!deltabench::cuda::chunk_state_supports(s.K, s.V)) {
    state.SkipWithError("chunk_state_forward does not take this K, V");
    return;
  }
  const auto in = make_inputs(s, gated);
  const int64_t NT = (s.T + 63) / 64, C = 64;
  // [B * T, H, D] -> [B * H, NT, C, D] fp32 (T a multiple of 64 on every shape here).
  auto chunked = [&](const at::Tensor& x) {
    return x.view({s.B, NT, C, s.H, -1}).permute({0, 3, 1, 2, 4}).contiguous().to(at::kFloat).view({s.B * s.H, NT, C, -1});
  };
  auto w = chunked(in.w), k = chunked(in.k), u = chunked(in.u);
  at::Tensor gamma;
  if (gated) {
    const auto G = in.g.view({s.B, NT, C, s.H}).permute({0, 3, 1, 2}).reshape({s.B * s.H, NT, C}).cumsum(-1);
    const auto G_last = G.select(-1, C - 1);
    k = (k * (G_last.unsqueeze(-1) - G).exp().unsqueeze(-1)).contiguous();
    gamma = G_last.exp().contiguous();
  }
  auto h = at::empty({s.B * s.H, NT, s.K, s.V}, kCuda.dtype(at::kFloat));
  auto v_new = at::empty_like(u);
  deltabench::cuda::ChunkStateParams p;
  p.BH = s.B * s.H;
  p.NT = NT;
  p.K = s.K;
  p.V = s.V;
  p.w = w.data_ptr<float>();
  p.k = k.data_ptr<float>();
  p.gamma = gated ? gamma.data_ptr<float>() : nullptr;
  p.u = u.data_ptr<float>();
  p.h = h.data_ptr<float>();
  p.v_new = v_new.data_ptr<float>();
  p.tf32 = true;
  const auto stream = at::cuda::getCurrentCUDAStream().stream();
  if (backward) {
    // q^T dO comes in whole (chunk_dout computes it before the walk), with dv_local; dh and dv_new out.
    const auto f32 = kCuda.dtype(at::kFloat);
    const auto qdo = at::randn({s.B * s.H, NT, s.K, s.V}, f32), dv_local = at::randn({s.B * s.H, NT, C, s.V}, f32);
    auto dh = at::empty({s.B * s.H, NT, s.K, s.V}, f32), dv_new = at::empty_like(dv_local);
    p.qdo = qdo.data_ptr<float>();
    p.dv_local = dv_local.data_ptr<float>();
    p.dh = dh.data_ptr<float>();
    p.dv_new = dv_new.data_ptr<float>();
    report(state, backward_pass_bytes(s, gated), [&] { deltabench::cuda::chunk_state_backward(p, stream); });
    return;
  }
  report(state, pass_bytes(s, gated), [&] { deltabench::cuda::chunk_state_forward(p, stream); });
}

// The backward's chunk-parallel stages: dv_local and dq, dk, dW. sm90: kernels/common/sm90 on [tokens, H, *]
// 16-bit inputs; tf32: the training pair's stage kernels on fp32 [BH, NT, C, *] buffers, which do more
// (chunk_dout writes q^T dO beside dv_local; chunk_grads dG beside dq, dk, dW).
void run_chunk_stage(benchmark::State& state, const Shape& s, bool gated, bool dqkw, bool sm90) {
  std::string why;
  if (sm90 && !deltabench::cuda::sm90::available(&why)) {
    state.SkipWithError(why.c_str());
    return;
  }
  if (sm90 && dqkw && s.V > 128) {
    state.SkipWithError("sm90::chunk_dqkw takes V up to 128");
    return;
  }
  at::manual_seed(0);
  const auto f32 = kCuda.dtype(at::kFloat);
  const int64_t tokens = s.B * s.T, NT = (s.T + 63) / 64, chunks = s.B * NT;
  const auto stream = at::cuda::getCurrentCUDAStream().stream();
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.K)));
  const double bytes = dqkw ? dqkw_bytes(s, gated, sm90) : dv_local_bytes(s, gated);
  if (sm90) {
    const auto q = at::randn({tokens, s.H, s.K}, f32).to(at::kBFloat16), k = at::randn({tokens, s.H, s.K}, f32).to(at::kBFloat16);
    const auto dout = at::randn({tokens, s.H, s.V}, f32).to(at::kBFloat16);
    const auto g = at::log_sigmoid(at::randn({tokens, s.H}, f32)) / 16.0;
    if (!dqkw) {
      auto dv_local = at::empty({tokens, s.H, s.V}, kCuda.dtype(at::kHalf));
      deltabench::cuda::sm90::DvLocalParams p;
      p.q = q.data_ptr(), p.k = k.data_ptr(), p.dout = dout.data_ptr(), p.g = gated ? g.data_ptr<float>() : nullptr;
      p.dv_local = dv_local.data_ptr();
      p.N = s.B, p.T = s.T, p.H = s.H, p.K = s.K, p.V = s.V, p.scale = scale;
      report(state, bytes, [&] { deltabench::cuda::sm90::chunk_dv_local(p, stream); });
      return;
    }
    const auto vn = at::randn({tokens, s.H, s.V}, f32).to(at::kHalf), dvn = at::randn({tokens, s.H, s.V}, f32).to(at::kHalf);
    const auto h = at::randn({chunks, s.H, s.K, s.V}, f32).to(at::kHalf), dh = at::randn({chunks, s.H, s.K, s.V}, f32).to(at::kHalf);
    // The outputs as sm90::chunk_train asks for them: dq in the inputs' dtype times a device factor, dW fp16.
    auto dq = at::empty_like(q), dk = at::empty({tokens, s.H, s.K}, f32), dw = at::empty_like(dk, at::kHalf);
    auto dg = at::empty({tokens, s.H}, f32);
    const auto grad_scale = at::ones({1}, f32);
    deltabench::cuda::sm90::DqkwParams p;
    p.q = q.data_ptr(), p.k = k.data_ptr(), p.dout = dout.data_ptr(), p.g = gated ? g.data_ptr<float>() : nullptr;
    p.v_new = vn.data_ptr(), p.dv_new = dvn.data_ptr(), p.h = h.data_ptr(), p.dh = dh.data_ptr();
    p.dq_out = dq.data_ptr(), p.grad_scale = grad_scale.data_ptr<float>(), p.dk = dk.data_ptr<float>(), p.dw = dw.data_ptr();
    p.dg = gated ? dg.data_ptr<float>() : nullptr;
    p.N = s.B, p.T = s.T, p.H = s.H, p.K = s.K, p.V = s.V, p.scale = scale;
    report(state, bytes, [&] { deltabench::cuda::sm90::chunk_dqkw(p, stream); });
    return;
  }
  const int64_t BH = s.B * s.H, C = 64;
  const auto q = at::randn({BH, NT, C, s.K}, f32), k = at::randn({BH, NT, C, s.K}, f32), dout = at::randn({BH, NT, C, s.V}, f32);
  const auto G = (at::log_sigmoid(at::randn({BH, NT, C}, f32)) / 16.0).cumsum(-1);
  if (!dqkw) {
    if (!deltabench::cuda::chunk_dout_supports(s.K, s.V)) {
      state.SkipWithError("chunk_dout does not take this K, V");
      return;
    }
    auto dv_local = at::empty_like(dout), qdo = at::empty({BH, NT, s.K, s.V}, f32);
    deltabench::cuda::ChunkDoutParams p;
    p.BH = BH, p.NT = NT, p.K = s.K, p.V = s.V;
    p.q = q.data_ptr<float>(), p.k = k.data_ptr<float>(), p.g = gated ? G.data_ptr<float>() : nullptr;
    p.dout = dout.data_ptr<float>(), p.dv_local = dv_local.data_ptr<float>(), p.qdo = qdo.data_ptr<float>();
    report(state, bytes, [&] { deltabench::cuda::chunk_dout(p, stream); });
    return;
  }
  if (!deltabench::cuda::chunk_grads_supports(s.K, s.V)) {
    state.SkipWithError("chunk_grads does not take this K, V");
    return;
  }
  const auto h = at::randn({BH, NT, s.K, s.V}, f32), dh = at::randn({BH, NT, s.K, s.V}, f32);
  const auto vn = at::randn({BH, NT, C, s.V}, f32), dvn = at::randn({BH, NT, C, s.V}, f32);
  auto dq = at::empty_like(q), dk = at::empty_like(q), dw = at::empty_like(q), dg = at::empty({BH, NT, C}, f32);
  deltabench::cuda::ChunkGradsParams p;
  p.BH = BH, p.NT = NT, p.K = s.K, p.V = s.V;
  p.q = q.data_ptr<float>(), p.k = k.data_ptr<float>(), p.g = gated ? G.data_ptr<float>() : nullptr;
  p.h = h.data_ptr<float>(), p.dh = dh.data_ptr<float>(), p.v_new = vn.data_ptr<float>(), p.dv_new = dvn.data_ptr<float>();
  p.dout = dout.data_ptr<float>(), p.dq = dq.data_ptr<float>(), p.dk = dk.data_ptr<float>(), p.dw = dw.data_ptr<float>();
  p.dg = gated ? dg.data_ptr<float>() : nullptr;
  report(state, bytes, [&] { deltabench::cuda::chunk_grads(p, stream); });
}

// The UT transform's backward. sm90: recomputes T; tf32: the training pair's chunk_ut_backward on fp32
// [BH, NT, C, *] buffers, with A and T given (the forward saved them).
// The sm90 UT transform: k unit-norm and v bf16, beta = sigmoid, g = logsigmoid / 16 per step; W and U fp16.
// columns: T by version 3f's column substitution (UtFwdParams::column_inverse) rather than by blocks.
void run_ut_fwd(benchmark::State& state, const Shape& s, bool gated, bool columns = false,
                at::ScalarType io = at::kBFloat16) {
  std::string why;
  if (!deltabench::cuda::sm90::available(&why)) {
    state.SkipWithError(why.c_str());
    return;
  }
  at::manual_seed(0);
  const auto f32 = kCuda.dtype(at::kFloat);
  const int64_t tokens = s.B * s.T;
  auto k = at::randn({tokens, s.H, s.K}, f32);
  k = (k / k.norm(2, -1, true)).to(io);
  const auto v = at::randn({tokens, s.H, s.V}, f32).to(io), beta = at::randn({tokens, s.H}, f32).sigmoid();
  const auto g = at::log_sigmoid(at::randn({tokens, s.H}, f32)) / 16.0;
  auto w = at::empty({tokens, s.H, s.K}, kCuda.dtype(at::kHalf)), u = at::empty({tokens, s.H, s.V}, kCuda.dtype(at::kHalf));
  deltabench::cuda::sm90::UtFwdParams p;
  p.dtype = io == at::kHalf ? deltabench::cuda::Dtype::kFP16 : deltabench::cuda::Dtype::kBF16;
  p.k = k.data_ptr(), p.v = v.data_ptr(), p.beta = beta.data_ptr<float>(), p.g = gated ? g.data_ptr<float>() : nullptr;
  p.w = w.data_ptr(), p.u = u.data_ptr();
  p.N = s.B, p.T = s.T, p.H = s.H, p.K = s.K, p.V = s.V;
  p.column_inverse = columns;
  const auto stream = at::cuda::getCurrentCUDAStream().stream();
  report(state, ut_fwd_bytes(s, gated), [&] { deltabench::cuda::sm90::chunk_ut_forward(p, stream); });
}

// with_t: the sm90 kernel reads T from a UT forward run beforehand (as the training op's backward does) rather
// than substituting again.
void run_ut_bwd(benchmark::State& state, const Shape& s, bool gated, bool sm90, bool with_t = false, bool out16 = true) {
  std::string why;
  if (sm90 && !deltabench::cuda::sm90::available(&why)) {
    state.SkipWithError(why.c_str());
    return;
  }
  if (s.V > 128 || s.K > 128) {
    state.SkipWithError("the UT backward kernels take K and V up to 128");
    return;
  }
  at::manual_seed(0);
  const auto f32 = kCuda.dtype(at::kFloat);
  const int64_t tokens = s.B * s.T, NT = (s.T + 63) / 64, BH = s.B * s.H, C = 64;
  const auto stream = at::cuda::getCurrentCUDAStream().stream();
  if (sm90) {
    auto k = at::randn({tokens, s.H, s.K}, f32);
    k = (k / k.norm(2, -1, true)).to(at::kBFloat16);
    const auto v = at::randn({tokens, s.H, s.V}, f32).to(at::kBFloat16), beta = at::randn({tokens, s.H}, f32).sigmoid();
    const auto g = at::log_sigmoid(at::randn({tokens, s.H}, f32)) / 16.0;
    // The outputs as sm90::chunk_train asks for them, dk and dv in the inputs' dtype times a device factor, or
    // (out16 false) dk added to in fp32 and dv fp32.
    const auto dw = at::randn({tokens, s.H, s.K}, f32).to(at::kHalf), du = at::randn({tokens, s.H, s.V}, f32).to(at::kHalf);
    auto dk = at::zeros({tokens, s.H, s.K}, f32), dk_out = at::empty_like(k);
    auto dv = out16 ? at::empty_like(v) : at::empty({tokens, s.H, s.V}, f32);
    auto dbeta = at::empty({tokens, s.H}, f32), dg = at::zeros({tokens, s.H}, f32);
    const auto grad_scale = at::ones({1}, f32);
    deltabench::cuda::sm90::UtBwdParams p;
    p.k = k.data_ptr(), p.v = v.data_ptr(), p.beta = beta.data_ptr<float>(), p.g = gated ? g.data_ptr<float>() : nullptr;
    p.dw = dw.data_ptr(), p.du = du.data_ptr(), p.dk = dk.data_ptr<float>();
    if (out16) {
      p.dk_out = dk_out.data_ptr(), p.dv_out = dv.data_ptr(), p.grad_scale = grad_scale.data_ptr<float>();
    } else {
      p.dv = dv.data_ptr<float>();
    }
    p.dbeta = dbeta.data_ptr<float>(), p.dg = gated ? dg.data_ptr<float>() : nullptr;
    p.N = s.B, p.T = s.T, p.H = s.H, p.K = s.K, p.V = s.V;
    at::Tensor t;
    if (with_t) {
      t = at::empty({s.B * NT, s.H, C, C}, kCuda.dtype(at::kHalf));
      auto w = at::empty({tokens, s.H, s.K}, kCuda.dtype(at::kHalf)), u = at::empty({tokens, s.H, s.V}, w.options());
      deltabench::cuda::sm90::UtFwdParams f;
      f.k = p.k, f.v = p.v, f.beta = p.beta, f.g = p.g, f.w = w.data_ptr(), f.u = u.data_ptr(), f.t = t.data_ptr();
      f.N = s.B, f.T = s.T, f.H = s.H, f.K = s.K, f.V = s.V;
      try {
        deltabench::cuda::sm90::chunk_ut_forward(f, stream);
      } catch (const std::exception& e) {
        state.SkipWithError(e.what());
        return;
      }
      p.t = t.data_ptr();
    }
    report(state, ut_bwd_bytes(s, gated, true, out16) + (with_t ? 2.0 * s.B * NT * s.H * C * C : 0.0),
           [&] { deltabench::cuda::sm90::chunk_ut_backward(p, stream); });
    return;
  }
  if (!deltabench::cuda::chunk_ut_backward_supports(s.K, s.V)) {
    state.SkipWithError("chunk_ut_backward does not take this K, V");
    return;
  }
  const auto k = at::randn({BH, NT, C, s.K}, f32), v = at::randn({BH, NT, C, s.V}, f32);
  const auto beta = at::randn({BH, NT, C}, f32).sigmoid(), G = (at::log_sigmoid(at::randn({BH, NT, C}, f32)) / 16.0).cumsum(-1);
  const auto a = at::randn({BH, NT, C, C}, f32).tril(-1) * 0.1, tinv = at::randn({BH, NT, C, C}, f32).tril() * 0.1;
  const auto dw = at::randn({BH, NT, C, s.K}, f32), du = at::randn({BH, NT, C, s.V}, f32);
  auto dk = at::zeros_like(k), dv = at::empty_like(v), dbeta = at::empty_like(beta), dg = at::zeros_like(beta);
  deltabench::cuda::ChunkUtBackwardParams p;
  p.BH = BH, p.NT = NT, p.K = s.K, p.V = s.V;
  p.k = k.data_ptr<float>(), p.v = v.data_ptr<float>(), p.beta = beta.data_ptr<float>();
  p.g = gated ? G.data_ptr<float>() : nullptr, p.a = a.data_ptr<float>(), p.tinv = tinv.data_ptr<float>();
  p.dw = dw.data_ptr<float>(), p.du = du.data_ptr<float>(), p.dk = dk.data_ptr<float>(), p.dv = dv.data_ptr<float>();
  p.dbeta = dbeta.data_ptr<float>(), p.dg = gated ? dg.data_ptr<float>() : nullptr;
  report(state, ut_bwd_bytes(s, gated, false), [&] { deltabench::cuda::chunk_ut_backward(p, stream); });
}

// The whole forward: q, k, v [B, T, H, K] bf16 (k unit-norm), beta = sigmoid, g = logsigmoid / 16, as
// kernels_bench draws a case's inputs.
// backward: the forward and the gradients of q, k, v, beta (and g) for a fixed random dO (torch::autograd::grad),
// sm90::chunk_train against the op under backend kernel (the chunked training pair); keep_ut, keep_state: chunk_train's.
// op_backend: the forward without sm90 runs the op under it (kernel: the fused forward; reference: the ATen ops).
void run_forward(benchmark::State& state, const Shape& s, bool gated, bool sm90, bool backward = false,
                 bool fuse_output = true, int64_t segment_length = 0, bool keep_ut = false, bool keep_state = false,
                 deltabench::BackendChoice op_backend = deltabench::BackendChoice::kKernel,
                 at::ScalarType io = at::kBFloat16) {
  std::string why;
  if (sm90 && !deltabench::cuda::sm90::available(&why)) {
    state.SkipWithError(why.c_str());
    return;
  }
  std::optional<c10::NoGradGuard> no_grad;
  if (!backward) no_grad.emplace();
  // The op's forward + backward row is the chunked training pair's: the sm_90a op set off, whatever the default.
  std::optional<deltabench::detail::ScopedKernelSwitch> pair;
  if (backward && !sm90) pair.emplace(deltabench::detail::set_sm90_train, deltabench::detail::sm90_train, false);
  at::manual_seed(0);
  const auto f32 = kCuda.dtype(at::kFloat);
  deltabench::SequenceInputs in;
  in.q = at::randn({s.B, s.T, s.H, s.K}, f32).to(io);
  const auto k = at::randn({s.B, s.T, s.H, s.K}, f32);
  in.k = (k / k.norm(2, -1, true)).to(io);
  in.v = at::randn({s.B, s.T, s.H, s.V}, f32).to(io);
  in.beta = at::randn({s.B, s.T, s.H}, f32).sigmoid();
  if (gated) in.g = at::log_sigmoid(at::randn({s.B, s.T, s.H}, f32)) / 16.0;
  const auto family = gated ? deltabench::Family::kGatedDeltaRule : deltabench::Family::kDeltaRule;
  const double scale = 1.0 / std::sqrt(static_cast<double>(s.K));
  std::function<void()> fn;
  at::Tensor dout;
  if (backward) {
    for (auto* t : {&in.q, &in.k, &in.v, &in.beta, &in.g}) {
      if (t->defined()) *t = t->detach().requires_grad_(true);
    }
    dout = at::randn(in.v.sizes(), f32).to(io);
    std::vector<at::Tensor> leaves{in.q, in.k, in.v, in.beta};
    if (gated) leaves.push_back(in.g);
    fn = [&, leaves, family, scale, sm90, segment_length, keep_ut, keep_state] {
      deltabench::SequenceOptions options;
      options.backend = deltabench::BackendChoice::kKernel;
      const auto o = sm90 ? deltabench::sm90::chunk_train(family, in.q, in.k, in.v, in.beta, in.g, {}, {}, scale, false,
                                                          segment_length, keep_ut, keep_state)
                                .o
                          : deltabench::run_family(family, in, options).o;
      benchmark::DoNotOptimize(torch::autograd::grad({o}, leaves, {dout}));
    };
  } else if (sm90) {
    fn = [&, fuse_output, segment_length] {
      benchmark::DoNotOptimize(deltabench::sm90::chunk_forward(family, in.q, in.k, in.v, in.beta, in.g, {}, {}, scale, false,
                                                               fuse_output, segment_length)
                                   .o);
    };
  } else {
    deltabench::SequenceOptions options;
    options.backend = op_backend;
    fn = [&, options] { benchmark::DoNotOptimize(deltabench::run_family(family, in, options).o); };
  }
  try {
    fn();
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  report(state, forward_bytes(s, gated), fn);
}

}  // namespace

int main(int argc, char** argv) {
  if (!at::hasCUDA()) {
    std::fprintf(stderr, "stage_bench: no CUDA device\n");
    return 1;
  }
  g_rates = deltabench::bench::start_run("stage_bench");
  const auto add = [](const std::string& row, std::function<void(benchmark::State&)> fn) {
    benchmark::RegisterBenchmark(row.c_str(), [fn](benchmark::State& st) { fn(st); })
        ->UseManualTime()
        ->Iterations(1)
        ->Repetitions(15)
        ->ReportAggregatesOnly(true)
        ->Unit(benchmark::kMillisecond);
  };
  for (const auto& s : kShapes) {
    for (const bool gated : {false, true}) {
      if (s.K > 128) {  // head dim 256: the sm_90a forward's stages and the whole forward (the output kernel after the pass)
        add(name("state_fwd", "sm90", gated, s), [s, gated](benchmark::State& st) { run_sm90(st, s, gated, false); });
        add(name("ut_fwd", "sm90", gated, s), [s, gated](benchmark::State& st) { run_ut_fwd(st, s, gated); });
        add(name("fwd", "sm90", gated, s), [s, gated](benchmark::State& st) { run_forward(st, s, gated, true); });
        // The ATen reference ops beside it: what `auto` runs at K 256 until this row says which is quicker.
        add(name("fwd", "reference", gated, s), [s, gated](benchmark::State& st) {
          run_forward(st, s, gated, false, false, true, 0, false, false, deltabench::BackendChoice::kReference);
        });
        continue;
      }
      add(name("state_fwd", "sm90", gated, s), [s, gated](benchmark::State& st) { run_sm90(st, s, gated, false); });
      add(name("state_fwd", "walk", gated, s), [s, gated](benchmark::State& st) { run_walk(st, s, gated, false); });
      add(name("state_bwd", "sm90", gated, s), [s, gated](benchmark::State& st) { run_sm90(st, s, gated, true); });
      for (const int buffers : {1, 2, 3}) {  // every pipeline, beside the one state_backward_buffers chooses
        add(name("state_bwd", buffers == 1 ? "sm90_1buf" : buffers == 2 ? "sm90_2buf" : "sm90_split", gated, s),
            [s, gated, buffers](benchmark::State& st) { run_sm90(st, s, gated, true, false, buffers); });
      }
      add(name("state_bwd", "walk", gated, s), [s, gated](benchmark::State& st) { run_walk(st, s, gated, true); });
      if (s.B == 1) {  // the passes in the segments the ops would run them in, beside the whole passes above
        add(name("state_fwd", "sm90_segments", gated, s),
            [s, gated](benchmark::State& st) { run_sm90(st, s, gated, false, true); });
        add(name("state_bwd", "sm90_segments", gated, s),
            [s, gated](benchmark::State& st) { run_sm90(st, s, gated, true, true); });
      }
      add(name("ut_fwd", "sm90", gated, s), [s, gated](benchmark::State& st) { run_ut_fwd(st, s, gated); });
      add(name("ut_fwd", "sm90_columns", gated, s), [s, gated](benchmark::State& st) { run_ut_fwd(st, s, gated, true); });
      add(name("ut_bwd", "sm90", gated, s), [s, gated](benchmark::State& st) { run_ut_bwd(st, s, gated, true); });
      add(name("ut_bwd", "sm90_t", gated, s), [s, gated](benchmark::State& st) { run_ut_bwd(st, s, gated, true, true); });
      add(name("ut_bwd", "sm90_t32", gated, s),
          [s, gated](benchmark::State& st) { run_ut_bwd(st, s, gated, true, true, /*out16=*/false); });
      add(name("ut_bwd", "tf32", gated, s), [s, gated](benchmark::State& st) { run_ut_bwd(st, s, gated, false); });
      for (const bool dqkw : {false, true}) {
        for (const bool sm90 : {true, false}) {
          add(name(dqkw ? "dqkw" : "dv_local", sm90 ? "sm90" : "tf32", gated, s),
              [s, gated, dqkw, sm90](benchmark::State& st) { run_chunk_stage(st, s, gated, dqkw, sm90); });
        }
      }
      add(name("fwd", "sm90", gated, s), [s, gated](benchmark::State& st) { run_forward(st, s, gated, true); });
      add(name("fwd", "sm90_apart", gated, s),
          [s, gated](benchmark::State& st) { run_forward(st, s, gated, true, false, false); });
      add(name("fwd", "fused", gated, s), [s, gated](benchmark::State& st) { run_forward(st, s, gated, false); });
      // fp16 inputs (the kernels' intermediates are fp16 either way; bf16 ones are converted in shared memory inside
      // the passes' chunk loops): each stage's cost of that conversion, against the bf16 rows above. At the shapes of
      // issue 13's table only.
      if (s.K == 128) {
        constexpr auto fp16 = at::kHalf;
        add(name("state_fwd", "sm90_fp16", gated, s),
            [s, gated](benchmark::State& st) {
              run_sm90(st, s, gated, false, false, deltabench::cuda::sm90::StateBwdParams{}.buffers, fp16);
            });
        add(name("state_bwd", "sm90_fp16", gated, s), [s, gated](benchmark::State& st) {
          run_sm90(st, s, gated, true, false, deltabench::cuda::sm90::StateBwdParams{}.buffers, fp16);
        });
        add(name("ut_fwd", "sm90_fp16", gated, s), [s, gated](benchmark::State& st) { run_ut_fwd(st, s, gated, false, fp16); });
        add(name("fwd", "sm90_fp16", gated, s), [s, gated](benchmark::State& st) {
          run_forward(st, s, gated, true, false, true, 0, false, false, deltabench::BackendChoice::kKernel, fp16);
        });
        add(name("fwd", "sm90_apart_fp16", gated, s), [s, gated](benchmark::State& st) {
          run_forward(st, s, gated, true, false, false, 0, false, false, deltabench::BackendChoice::kKernel, fp16);
        });
        add(name("fwd_bwd", "sm90_keep_state_fp16", gated, s), [s, gated](benchmark::State& st) {
          run_forward(st, s, gated, true, true, true, 0, true, true, deltabench::BackendChoice::kKernel, fp16);
        });
      }
      const bool segmented = deltabench::cuda::sm90::available() && model_segments(s).has_value();
      if (segmented) {  // where the segment-parallel pass is chosen: the whole pass beside it
        add(name("fwd", "sm90_whole", gated, s),
            [s, gated](benchmark::State& st) { run_forward(st, s, gated, true, false, true, -1); });
      }
      // Where the forward alone plans its segments apart from the training op (model_segment_length): the forward
      // in the training op's segments beside it.
      if (const auto lengths = plan_lengths(s); lengths && lengths->first != lengths->second) {
        const int64_t train = lengths->second > 0 ? lengths->second : -1;
        add(name("fwd", "sm90_train_plan", gated, s),
            [s, gated, train](benchmark::State& st) { run_forward(st, s, gated, true, false, true, train); });
      }
      if (s.V <= 128) {
        add(name("fwd_bwd", "sm90", gated, s), [s, gated](benchmark::State& st) { run_forward(st, s, gated, true, true); });
        add(name("fwd_bwd", "sm90_keep", gated, s),
            [s, gated](benchmark::State& st) { run_forward(st, s, gated, true, true, true, 0, true); });
        add(name("fwd_bwd", "sm90_keep_state", gated, s),
            [s, gated](benchmark::State& st) { run_forward(st, s, gated, true, true, true, 0, true, true); });
        add(name("fwd_bwd", "chunked", gated, s),
            [s, gated](benchmark::State& st) { run_forward(st, s, gated, false, true); });
        if (segmented) {
          add(name("fwd_bwd", "sm90_whole", gated, s),
              [s, gated](benchmark::State& st) { run_forward(st, s, gated, true, true, true, -1); });
        }
        if (s.B == 1 || s.T >= 8192) {
          // The op (keep_state) at set segment lengths, beside the cost model's choice (sm90_keep_state; its model
          // counts two blocks an SM since dc31939): at B 1, and at 4 x 8K, which the model keeps whole.
          for (const int64_t length : {2048, 4096, 8192}) {
            if (length >= s.T) continue;
            add(name("fwd_bwd", "sm90_seg" + std::to_string(length), gated, s), [s, gated, length](benchmark::State& st) {
              run_forward(st, s, gated, true, true, true, length, true, true);
            });
          }
        }
      }
    }
  }
  // Single short sequences (B 1, T 512 and 2048, H 16, K = V = 128), where the kernel sweeps found our forward at 2.6
  // and 1.9 times FLA's, forward + backward 3.0 and 1.8 times (H100, d255be4). The cost model splits every single
  // sequence from 512 tokens: the forward's 512 in two (7.8 chunk steps against 8 whole), training's in four (6.4),
  // the join's fixed cost (its ATen launches, the offsets' copies, step 1's second stream) not counted. The model's
  // plan beside whole sequences, forward alone and forward + backward.
  for (const int64_t T : {512, 2048}) {
    const Shape s{1, T, 16, 128, 128};
    for (const bool gated : {false, true}) {
      add(name("fwd", "sm90", gated, s), [s, gated](benchmark::State& st) { run_forward(st, s, gated, true); });
      add(name("fwd", "sm90_whole", gated, s),
          [s, gated](benchmark::State& st) { run_forward(st, s, gated, true, false, true, -1); });
      add(name("fwd_bwd", "sm90_keep_state", gated, s),
          [s, gated](benchmark::State& st) { run_forward(st, s, gated, true, true, true, 0, true, true); });
      add(name("fwd_bwd", "sm90_keep_state_whole", gated, s),
          [s, gated](benchmark::State& st) { run_forward(st, s, gated, true, true, true, -1, true, true); });
    }
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
