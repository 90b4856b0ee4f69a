// The CUDA kernels against torch SDPA (FlashAttention, causal) on the cases of the registry,
// bench/kernel_cases.toml (bench/kernel_cases.h reads it; DELTABENCH_KERNEL_CASES names another file).
// Forward + backward cases (fwd_bwd_*) time the op and the gradients of every input for a fixed
// random do (torch::autograd::grad, nothing accumulated), on deltabench's kernels and, named
// "reference:<case>", on the reference ops beside them, and, named "aten-stages:<case>", on the kernels
// with the chunked backward's chunk-parallel stages as batched ATen products (their version before the
// stage kernels; deltabench::detail::set_chunk_stage_kernels), so that one run measures the one against
// the other; on a Hopper GPU, named "first:<case>", forward cases as the ops run them with the sm_90a forward off
// (set_sm90_forward): the first chunked kernel, or at head dims it does not take (K 256, V above 128) the recurrent
// training kernels' forward, beside the sm_90a forward that the plain rows run there as the ops do; and, named
// "chunked:<case>", forward + backward cases on the chunked training pair where the sm_90a training op
// (set_sm90_train) is set to take the plain rows.
// bench/fla_compare.py passes over those rows; the summary and the JSON keep them.
// Each repetition times one call with CUDA events twice, L2 flushed (a 256 MB write) before each:
//   - the GPU's time (the reported time and counter ms): a spin kernel holds the GPU while the host
//     queues the call, so host launch costs are hidden;
//   - call_ms: the call from an idle GPU, host costs included, as one standalone call sees it.
// Google Benchmark reports the median of 15 repetitions. Counters: tokens/s, GB/s and TFLOP/s achieved
// and the percent of this machine's floor, all from ms. The floor's rates are measured first, in the same
// run: a 1 GiB device-to-device copy (bytes read and written) and a bf16 8192^3 matrix product, the
// medians of 5 after a warm-up; the JSON context carries them (copy_GB_per_s, matmul_TFLOP_per_s) beside
// the device, commit and versions. Decode steps are captured in a CUDA graph and timed per replay.
// bench/fla_compare.py times FLA the same two ways.
//
//   build/bench/kernels_bench --benchmark_out=kernels.json --benchmark_out_format=json
//   DELTABENCH_KERNEL_SWEEPS=1 build/bench/kernels_bench --benchmark_filter='^(fwd_bwd_)?(gated_)?delta_rule/'  (sweeps too)

#include "bench/gpu_timing.h"
#include "bench/kernel_cases.h"
#include "kernels/common/chunk_train.h"
#include "kernels/common/cuda_dispatch.h"
#include "kernels/common/decode.h"
#include "kernels/common/scoped_switch.h"
#include "kernels/common/sm90/sm90_kernels.h"
#include "kernels/family.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <benchmark/benchmark.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <vector>
#include <string>

namespace {

using deltabench::Family;
using deltabench::bench::case_name;
using deltabench::bench::KernelCase;
using deltabench::bench::time_once;

deltabench::bench::Rates g_rates;  // measured in main, before any case

const at::TensorOptions kCuda = at::TensorOptions().device(at::kCUDA);

void set_counters(benchmark::State& state, const KernelCase& c, double ms, double call_ms) {
  const double s = ms / 1e3;
  state.counters["ms"] = ms;
  state.counters["call_ms"] = call_ms;
  state.counters["tokens_per_s"] = static_cast<double>(c.B * c.T) / s;
  state.counters["GB_per_s"] = deltabench::bench::case_bytes(c) / s / 1e9;
  state.counters["TFLOP_per_s"] = deltabench::bench::case_flops(c) / s / 1e12;
  state.counters["pct_of_floor"] = 100.0 * deltabench::bench::floor_ms(c, g_rates) / ms;
}

// Progress on stderr, so that a case that stalls is named in the log even when it never finishes.
void progress(const std::string& name, const char* what, std::chrono::steady_clock::time_point since) {
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
  std::fprintf(stderr, "kernels_bench: %s: %s after %.2f s\n", name.c_str(), what, s);
}

// The case's input dtype (the registry's "bf16" or "fp16").
at::ScalarType dtype_of(const KernelCase& c) { return c.dtype == "fp16" ? at::kHalf : at::kBFloat16; }

// The case's inputs, drawn on the GPU as sample_inputs draws them on the CPU (unit-norm k, beta =
// sigmoid, g = logsigmoid / 16; linear attention with decay), in the case's dtype. Google Benchmark calls
// a case once per repetition: the last case's inputs are kept, since drawing 32K x 16 x 128 doubles on the
// CPU took about 6 s a repetition (H100 run at 7ed96ba).
const deltabench::SequenceInputs& inputs_for(const KernelCase& c, Family family) {
  static std::string cached_name;
  static deltabench::SequenceInputs cached;
  if (cached_name != case_name(c)) {
    cached = {};
    at::manual_seed(0);
    const auto f32 = kCuda.dtype(at::kFloat);
    cached.q = at::randn({c.B, c.T, c.H, c.K}, f32).to(dtype_of(c));
    const auto k = at::randn({c.B, c.T, c.H, c.K}, f32);
    cached.k = (k / k.norm(2, -1, /*keepdim=*/true)).to(dtype_of(c));
    cached.v = at::randn({c.B, c.T, c.H, c.V}, f32).to(dtype_of(c));
    if (family != Family::kLinearAttention) cached.beta = at::randn({c.B, c.T, c.H}, f32).sigmoid();
    if (family != Family::kDeltaRule) cached.g = at::log_sigmoid(at::randn({c.B, c.T, c.H}, f32)) / 16.0;
    cached_name = case_name(c);
  }
  return cached;
}

// The forward and the gradients of its inputs for the output gradient `dout`.
void forward_backward(const std::vector<at::Tensor>& inputs, const at::Tensor& o, const at::Tensor& dout) {
  std::vector<at::Tensor> leaves;
  for (const auto& t : inputs) {
    if (t.defined()) leaves.push_back(t);
  }
  benchmark::DoNotOptimize(torch::autograd::grad({o}, leaves, {dout}));
}

void run_case(benchmark::State& state, const KernelCase& c, deltabench::BackendChoice backend, bool stage_kernels,
              bool sm90_forward, bool sm90_train) {
  namespace detail = deltabench::detail;
  const detail::ScopedKernelSwitch stages(detail::set_chunk_stage_kernels, detail::chunk_stage_kernels, stage_kernels);
  const detail::ScopedKernelSwitch sm90(detail::set_sm90_forward, detail::sm90_forward, sm90_forward);
  const detail::ScopedKernelSwitch sm90_trains(detail::set_sm90_train, detail::sm90_train, sm90_train);
  const auto since = std::chrono::steady_clock::now();
  const bool fwd_bwd = deltabench::bench::is_fwd_bwd(c);
  std::optional<c10::NoGradGuard> no_grad;
  if (!fwd_bwd) no_grad.emplace();
  std::function<void()> fn;
  int calls = 1;
  at::cuda::CUDAGraph graph;
  deltabench::SequenceInputs in;
  at::Tensor q4, k4, v4, state_tensor, out, dout;
  const auto op = c.op.starts_with("decode_") ? c.op.substr(7) : fwd_bwd ? c.op.substr(8) : c.op;
  if (op == "sdpa") {
    // [B, H, T, D] views of [B, T, H, D] tensors in the case's dtype, as a model calls it.
    q4 = at::randn({c.B, c.T, c.H, c.K}, kCuda.dtype(dtype_of(c))).transpose(1, 2).requires_grad_(fwd_bwd);
    k4 = at::randn({c.B, c.T, c.H, c.K}, kCuda.dtype(dtype_of(c))).transpose(1, 2).requires_grad_(fwd_bwd);
    v4 = at::randn({c.B, c.T, c.H, c.V}, kCuda.dtype(dtype_of(c))).transpose(1, 2).requires_grad_(fwd_bwd);
    if (fwd_bwd) {
      dout = at::randn({c.B, c.H, c.T, c.V}, kCuda.dtype(dtype_of(c)));
      fn = [&] {
        forward_backward({q4, k4, v4}, at::scaled_dot_product_attention(q4, k4, v4, {}, 0.0, /*is_causal=*/true), dout);
      };
    } else {
      fn = [&] { benchmark::DoNotOptimize(at::scaled_dot_product_attention(q4, k4, v4, {}, 0.0, /*is_causal=*/true)); };
    }
  } else {
    const auto known = deltabench::family_from_name(op);
    TORCH_CHECK(known, "kernels_bench: case ", case_name(c), ": unknown op '", c.op, "'");
    const Family family = *known;
    in = inputs_for(c, family);
    if (c.op.starts_with("decode")) {
      state_tensor = at::zeros({c.B, c.H, c.K, c.V}, kCuda.dtype(at::kFloat));
      out = at::empty_like(in.v);
      auto side = at::cuda::getStreamFromPool();
      {
        c10::cuda::CUDAStreamGuard guard(side);
        deltabench::recurrent_decode(family, in, state_tensor, std::nullopt, out);  // warm-up outside capture
        graph.capture_begin();
        deltabench::recurrent_decode(family, in, state_tensor, std::nullopt, out);
        graph.capture_end();
      }
      side.synchronize();
      fn = [&] { graph.replay(); };
      calls = 100;
    } else if (fwd_bwd) {
      for (auto* t : {&in.q, &in.k, &in.v, &in.beta, &in.g}) {
        if (t->defined()) *t = t->detach().requires_grad_(true);
      }
      dout = at::randn(in.v.sizes(), kCuda.dtype(dtype_of(c)));
      deltabench::SequenceOptions options;
      options.backend = backend;
      fn = [&, family, options] {
        forward_backward({in.q, in.k, in.v, in.beta, in.g}, deltabench::run_family(family, in, options).o, dout);
      };
    } else {
      deltabench::SequenceOptions options;
      options.backend = backend;
      fn = [&, family, options] { benchmark::DoNotOptimize(deltabench::run_family(family, in, options).o); };
    }
  }
  at::cuda::getCurrentCUDAStream().synchronize();
  progress(case_name(c), "inputs ready", since);
  try {
    fn();  // warm-up: lazy initialisation, kernel loading
  } catch (const c10::Error& e) {  // backend kernel where no kernel serves the case: said, not timed
    state.SkipWithError(e.what_without_backtrace());
    return;
  }
  at::cuda::getCurrentCUDAStream().synchronize();
  progress(case_name(c), "first call done", since);
  for (auto _ : state) {  // one iteration per repetition; the median aggregate takes each counter's median
    const double ms = time_once(fn, calls, /*hide_launch=*/true);
    const double call_ms = time_once(fn, calls, /*hide_launch=*/false);
    state.SetIterationTime(ms / 1e3);
    set_counters(state, c, ms, call_ms);
  }
  progress(case_name(c), "timed", since);
}

}  // namespace

int main(int argc, char** argv) {
  if (!at::hasCUDA()) {
    fprintf(stderr, "kernels_bench: no CUDA device\n");
    return 1;
  }
  g_rates = deltabench::bench::start_run("kernels_bench");
  const auto add = [](const std::string& name, const KernelCase& c, deltabench::BackendChoice backend,
                      bool stage_kernels = true, bool sm90_forward = deltabench::detail::sm90_forward(),
                      bool sm90_train = deltabench::detail::sm90_train()) {
    benchmark::RegisterBenchmark(name.c_str(),
                                 [c, backend, stage_kernels, sm90_forward, sm90_train](benchmark::State& s) {
                                   run_case(s, c, backend, stage_kernels, sm90_forward, sm90_train);
                                 })
        ->UseManualTime()
        ->Iterations(1)
        ->Repetitions(15)  // Google Benchmark's aggregates include the median
        ->ReportAggregatesOnly(true)
        ->Unit(benchmark::kMillisecond);
  };
  // The registry's fixed cases; its sweeps' other cases only when DELTABENCH_KERNEL_SWEEPS is set (not
  // "0"): 129 cases with FLA beside do not fit one call of the GPU machine.
  const bool sm90 = deltabench::cuda::sm90::available();
  const char* sweeps_env = std::getenv("DELTABENCH_KERNEL_SWEEPS");
  const bool sweeps = sweeps_env && *sweeps_env && std::string(sweeps_env) != "0";
  for (const auto& c : deltabench::bench::kernel_cases().cases) {
    if (!c.fixed && !sweeps) continue;
    // Under backend = kernel: the rows named deltabench are deltabench's kernels, never the reference ops
    // that auto takes where its rule prefers them (the recurrent forward at head dim 256); a case no
    // kernel serves is skipped with the sentence that says why.
    const bool fwd_bwd = deltabench::bench::is_fwd_bwd(c);
    add(case_name(c), c, deltabench::BackendChoice::kKernel);
    // The reference ops beside the fixed cases only: at 64K tokens one of their passes takes a second.
    if (fwd_bwd && c.fixed && c.op != "fwd_bwd_sdpa") {
      add("reference:" + case_name(c), c, deltabench::BackendChoice::kReference);
      add("aten-stages:" + case_name(c), c, deltabench::BackendChoice::kKernel, /*stage_kernels=*/false,
          /*sm90_forward=*/false, /*sm90_train=*/false);
      if (sm90 && deltabench::detail::sm90_train()) {
        add("chunked:" + case_name(c), c, deltabench::BackendChoice::kKernel, true, false, false);
      }
    }
    // On a Hopper GPU the plain forward rows run the ops' default there, the sm_90a forward (unless
    // DELTABENCH_SM90_FORWARD=0), and the first chunked kernel beside it ("first:" rows; fla_compare.py passes
    // over them, the summary lists them).
    const bool family_forward = !fwd_bwd && !c.op.starts_with("decode") && c.op != "sdpa";
    if (family_forward && sm90 && deltabench::detail::sm90_forward()) {
      add("first:" + case_name(c), c, deltabench::BackendChoice::kKernel, true, /*sm90_forward=*/false);
    }
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
