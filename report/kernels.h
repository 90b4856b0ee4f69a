#pragma once
// The kernel report: deltabench's CUDA kernels beside FLA and torch SDPA on the cases of
// the registry (bench/kernel_cases.toml), from the CSV that bench/fla_compare.py writes on the GPU machine:
//   # device: NVIDIA H100 80GB HBM3      (provenance lines, "# key: value")
//   op,B,T,H,K,V,dtype,impl,ms,call_ms   (dtype: bf16 or fp16; impl: deltabench, fla, torch-sdpa or
//                                         deltabench-reference; medians of 15 calls)
// ms is the GPU's time for a call: a spin kernel holds the GPU while the host queues the call, so host
// launch costs are hidden. call_ms is the same call from an idle GPU, host costs included (for FLA,
// Python and Triton's launchers), as one standalone call sees it.
// It writes table.md, table.tex and table.csv (with tokens/s, GB/s, TFLOP/s and the percent of the
// floor at the rates kernels_bench measured in the run, "# copy_GB_per_s" and "# matmul_TFLOP_per_s",
// else the H100's nominal ones) and, per sweep of the registry, the throughput curves (tokens/s against
// T, log axes, one panel per op, one line per implementation) as throughput_<sweep>.{dat,gp,png,svg}.

#include "report/format.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace deltabench::report {

struct KernelTiming {
  std::string op;
  int64_t B = 0, T = 0, H = 0, K = 0, V = 0;
  std::string dtype = "bf16";
  std::string impl;
  double ms = 0;       // the GPU's time
  double call_ms = 0;  // from an idle GPU, host launch costs included
};

struct KernelTimings {
  std::vector<std::pair<std::string, std::string>> provenance;  // the "# key: value" lines, in order
  std::vector<KernelTiming> rows;
};

// Reads and checks the CSV (header op,B,T,H,K,V,dtype,impl,ms,call_ms; or, as written before the registry
// had dtypes, op,B,T,H,K,V,impl,ms,call_ms, every row bf16): every row a case of the registry, a known
// implementation, a positive time, no (case, implementation) twice. Errors name the file and line, the
// expected and the actual.
KernelTimings read_kernel_timings(const std::string& path);

std::string render_kernel_markdown(const KernelTimings& timings);

Written write_kernel_report(const KernelTimings& timings, const std::string& out_dir);

}  // namespace deltabench::report
