#include "bench/gpu_timing.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/Sleep.h>
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>
#include <torch/version.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <algorithm>
#include <vector>

namespace deltabench::bench {
namespace {

const at::TensorOptions kCuda = at::TensorOptions().device(at::kCUDA);

at::Tensor& l2_flush_buffer() {
  static at::Tensor buffer = at::empty({256 << 20}, kCuda.dtype(at::kByte));
  return buffer;
}

}  // namespace

double time_once(const std::function<void()>& fn, int calls, bool hide_launch) {
  l2_flush_buffer().zero_();
  if (hide_launch) at::cuda::sleep(kSpinCycles);
  auto stream = at::cuda::getCurrentCUDAStream();
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  cudaEventRecord(start, stream.stream());
  for (int i = 0; i < calls; ++i) fn();
  cudaEventRecord(stop, stream.stream());
  cudaEventSynchronize(stop);
  float ms = 0;
  cudaEventElapsedTime(&ms, start, stop);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms / calls;
}

double median_ms(const std::function<void()>& fn) {
  fn();
  std::vector<double> ms;
  for (int i = 0; i < 5; ++i) ms.push_back(time_once(fn, 1, /*hide_launch=*/true));
  std::sort(ms.begin(), ms.end());
  return ms[2];
}

Rates measure_rates() {
  Rates r;
  const int64_t bytes = int64_t{1} << 30;
  auto src = at::empty({bytes}, kCuda.dtype(at::kByte)).fill_(1), dst = at::empty_like(src);
  r.bytes_per_s = 2.0 * static_cast<double>(bytes) / (median_ms([&] { dst.copy_(src); }) / 1e3);
  const int64_t n = 8192;
  auto a = at::randn({n, n}, kCuda.dtype(at::kBFloat16)), b = at::randn({n, n}, kCuda.dtype(at::kBFloat16));
  auto c = at::empty({n, n}, kCuda.dtype(at::kBFloat16));
  r.flops_per_s = 2.0 * static_cast<double>(n * n * n) / (median_ms([&] { at::mm_out(c, a, b); }) / 1e3);
  r.measured = true;
  return r;
}

Rates start_run(const char* program) {
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  benchmark::AddCustomContext("device", prop.name);
  benchmark::AddCustomContext("commit", std::getenv("DELTABENCH_COMMIT") ? std::getenv("DELTABENCH_COMMIT") : "unknown");
  benchmark::AddCustomContext("torch", TORCH_VERSION);
  benchmark::AddCustomContext("cuda_runtime", std::to_string(CUDART_VERSION));
  const Rates rates = measure_rates();
  benchmark::AddCustomContext("copy_GB_per_s", std::to_string(rates.bytes_per_s / 1e9));
  benchmark::AddCustomContext("matmul_TFLOP_per_s", std::to_string(rates.flops_per_s / 1e12));
  std::fprintf(stderr, "%s: this machine copies %.0f GB/s and multiplies %.0f TFLOP/s (bf16)\n", program,
               rates.bytes_per_s / 1e9, rates.flops_per_s / 1e12);
  return rates;
}

}  // namespace deltabench::bench
