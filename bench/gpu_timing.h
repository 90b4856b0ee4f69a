#pragma once
// How the GPU benchmarks time a call (bench/kernels_bench.cpp, bench/stage_bench.cpp; bench/fla_compare.py
// times FLA the same way): L2 flushed (a 256 MB write) before each timing, CUDA events around the calls,
// and for the GPU's time a spin kernel that holds the GPU while the host queues them, so that host launch
// costs are hidden. The floor's two rates are measured on the machine that runs the benchmark.

#include "bench/kernel_cases.h"

#include <functional>

namespace deltabench::bench {

// The spin before a hidden-launch timing: 10M cycles, about 5 ms at the H100's 1.98 GHz, longer than the
// host needs to queue any case here (100 graph replays, FLA's Python; bench/fla_compare.py spins as long).
inline constexpr int64_t kSpinCycles = 10'000'000;

// Milliseconds per call of `calls` calls of `fn` on the current stream, L2 flushed first; with
// hide_launch, a spin kernel first holds the GPU while the host queues the calls.
double time_once(const std::function<void()>& fn, int calls, bool hide_launch);

// The median of 5 timings (after a warm-up) of fn, in ms, hidden launches.
double median_ms(const std::function<void()>& fn);

// This machine's copy and matrix rates, the floor's two terms: a 1 GiB device-to-device copy (bytes read
// and written) and a bf16 8192^3 matrix product, the medians of 5 after a warm-up.
Rates measure_rates();

// The run's context in Google Benchmark's JSON (device, commit from DELTABENCH_COMMIT, torch, CUDA
// runtime) and this machine's rates, measured (copy_GB_per_s, matmul_TFLOP_per_s) and said on stderr
// under `program`'s name; returns the rates.
Rates start_run(const char* program);

}  // namespace deltabench::bench
