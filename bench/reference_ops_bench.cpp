// Throughput of the reference ops (kernels/*/reference.cpp): the chunk algorithm is the training
// path on the CPU until CUDA kernels exist, so its tokens/s bound how fast CPU suites run.
//
//   build/bench/reference_ops_bench --benchmark_counters_tabular=true
//   build/bench/reference_ops_bench --device=cuda     (reference ops on a GPU)

#include "bench/device_flag.h"
#include "kernels/family.h"

#include <ATen/ATen.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <benchmark/benchmark.h>
#include <c10/core/GradMode.h>

#include <string>

namespace {

using deltabench::Family;
using deltabench::Mode;

at::Device g_device(at::kCPU);

void synchronize() {
  if (g_device.is_cuda()) at::detail::getCUDAHooks().deviceSynchronize(0);
}

// Args: family, mode, B, T, H, D, backward (0: forward only, 1: forward and backward).
void BM_sequence_op(benchmark::State& state) {
  const auto family = static_cast<Family>(state.range(0));
  const auto mode = static_cast<Mode>(state.range(1));
  const deltabench::SampleShape shape{state.range(2), state.range(3), state.range(4), state.range(5),
                                      state.range(5)};
  const bool backward = state.range(6) != 0;
  auto in = deltabench::sample_inputs(family, shape, at::TensorOptions().device(g_device), 0, true);
  if (backward) {
    for (auto* t : {&in.q, &in.k, &in.v, &in.beta, &in.g}) {
      if (t->defined()) t->requires_grad_(true);
    }
  }
  deltabench::SequenceOptions options;
  options.mode = mode;
  // The reference path, also on CUDA (kernels_bench times the kernels).
  options.backend = deltabench::BackendChoice::kReference;
  for (auto _ : state) {
    if (backward) {
      auto out = deltabench::run_family(family, in, options);
      out.o.sum().backward();
    } else {
      c10::NoGradGuard no_grad;
      benchmark::DoNotOptimize(deltabench::run_family(family, in, options).o);
    }
    synchronize();
  }
  state.SetLabel(std::string(deltabench::family_name(family)) + (mode == Mode::kChunk ? "/chunk" : "/recurrent") +
                 (backward ? "/fwd+bwd" : "/fwd"));
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(shape.B * shape.T),
                                                  benchmark::Counter::kIsIterationInvariantRate);
}

void register_all() {
  for (const Family family : deltabench::kFamilies) {
    const auto f = static_cast<int64_t>(family);
    for (const int64_t backward : {0, 1}) {
      // The chunk path at lengths MQAR and MAD train at, and one long sequence.
      for (const int64_t T : {256, 1024, 4096}) {
        benchmark::RegisterBenchmark("chunk", BM_sequence_op)
            ->Args({f, static_cast<int64_t>(Mode::kChunk), 4096 / T * 2, T, 4, 64, backward})
            ->ArgNames({"family", "mode", "B", "T", "H", "D", "bwd"})
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
      }
      // The per-step definition at one length, for scale.
      benchmark::RegisterBenchmark("recurrent", BM_sequence_op)
          ->Args({f, static_cast<int64_t>(Mode::kRecurrent), 8, 1024, 4, 64, backward})
          ->ArgNames({"family", "mode", "B", "T", "H", "D", "bwd"})
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  g_device = deltabench::bench::take_device_flag(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  register_all();
  benchmark::AddCustomContext("device", g_device.str());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
