#include "apps/deltabench/smoke.h"

#include "kernels/family.h"

#include <ATen/ATen.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/core/GradMode.h>
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <vector>

namespace deltabench::app {
namespace {

double rel_rms(const at::Tensor& got, const at::Tensor& ref) {
  const auto r = ref.to(at::kDouble);
  return (got.to(at::kDouble) - r).norm().item<double>() / r.norm().item<double>();
}

void synchronize(const at::Device& device) {
  if (device.is_cuda()) at::detail::getCUDAHooks().deviceSynchronize(device.index() < 0 ? 0 : device.index());
}

// Median wall time of `repeats` calls, in milliseconds.
template <typename F>
double median_ms(int repeats, const at::Device& device, F&& call) {
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    synchronize(device);
    const auto start = std::chrono::steady_clock::now();
    call();
    synchronize(device);
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

bool run_smoke(const SmokeOptions& opt) {
  const at::Device device(opt.device);
  const SampleShape shape{opt.batch, opt.seq_len, opt.heads, opt.head_dim, opt.head_dim};
  const double tokens = static_cast<double>(opt.batch * opt.seq_len);
  fmt::print("deltabench smoke: reference ops on {}, B={} T={} H={} K=V={}, chunk {}, median of {}\n\n",
             device.str(), opt.batch, opt.seq_len, opt.heads, opt.head_dim, opt.chunk_size,
             opt.repeats);
  fmt::print("| {:<18} | {:<9} | {:<7} | {:>9} | {:>12} | {:>10} | {:>10} |\n", "op", "mode", "dtype",
             "ms", "tokens/s", "o err", "state err");
  fmt::print("|{:-<20}|{:-<11}|{:-<9}|{:->11}|{:->14}|{:->12}|{:->12}|\n", "", "", "", "", "", "", "");

  bool ok = true;
  for (const Family family : kFamilies) {
    const auto in64 = sample_inputs(family, shape, at::TensorOptions().dtype(at::kDouble).device(device),
                                    opt.seed, /*decay=*/true);
    SequenceOptions truth_options;
    truth_options.mode = Mode::kRecurrent;
    truth_options.output_final_state = true;
    const auto truth = run_family(family, in64, truth_options);

    for (const Mode mode : {Mode::kChunk, Mode::kRecurrent}) {
      const auto in = sample_inputs(family, shape, at::TensorOptions().dtype(at::kFloat).device(device),
                                    opt.seed, /*decay=*/true);
      SequenceOptions options;
      options.mode = mode;
      options.chunk_size = opt.chunk_size;
      options.output_final_state = true;
      c10::NoGradGuard no_grad;
      SequenceOutput out;
      const double ms = median_ms(opt.repeats, device, [&] { out = run_family(family, in, options); });
      const double o_err = rel_rms(out.o, truth.o);
      const double s_err = rel_rms(out.final_state, truth.final_state);
      ok = ok && o_err < 1e-4 && s_err < 1e-4;
      fmt::print("| {:<18} | {:<9} | {:<7} | {:>9.2f} | {:>12.0f} | {:>10.2e} | {:>10.2e} |\n",
                 family_name(family), mode == Mode::kChunk ? "chunk" : "recurrent", "fp32", ms,
                 tokens / (ms / 1e3), o_err, s_err);
    }
  }
  fmt::print("\nerrors: relative RMS against the fp64 recurrent definition (linear attention with decay)\n");
  return ok;
}

}  // namespace deltabench::app
