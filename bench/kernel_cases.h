#pragma once
// The kernel benchmark cases, read from the one registry, bench/kernel_cases.toml, which
// bench/kernels_bench.cpp, bench/fla_compare.py and the kernel report (report/kernels.cpp) all read;
// and the floor of a case on a machine, from that machine's measured copy and matrix rates.

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace deltabench::bench {

struct KernelCaseError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct KernelCase {
  // delta_rule, gated_delta_rule, linear_attention, sdpa: the forward; decode_<family>: a decode step;
  // fwd_bwd_<family or sdpa>: the forward and the backward of o (every input's gradient).
  std::string op;
  int64_t B = 0, T = 0, H = 0, K = 0, V = 0;
  std::string dtype = "bf16";       // q, k, v (and do) in bf16 or fp16 (kDtypes)
  double target_ms = 0;             // 0: none
  bool fixed = false;               // one of [fixed] cases (else only a sweep's)
  std::vector<std::string> sweeps;  // the sweeps it belongs to, in the file's order
};

// The input dtypes a case may take: "bf16" (every case unless told) and "fp16".
inline constexpr const char* kDtypes[] = {"bf16", "fp16"};

struct Sweep {
  std::string name, title;
  std::string dtype = "bf16";  // its cases' dtype
  std::vector<std::string> ops;
  std::vector<int64_t> T;
  std::vector<int64_t> B;  // a sweep over the batch at its one T (decode): B = [..]; else empty
  bool over_batch() const { return !B.empty(); }
  // The figure's axis: B for a sweep over the batch, else T.
  const std::vector<int64_t>& axis() const { return over_batch() ? B : T; }
};

struct KernelCases {
  std::vector<KernelCase> cases;  // the fixed cases in order, then each sweep's new ones
  std::vector<Sweep> sweeps;
};

// Parses the registry's text; errors name `source`, the line and the key, expected and actual.
KernelCases parse_kernel_cases(const std::string& text, const std::string& source);

// The registry the tools read: $DELTABENCH_KERNEL_CASES, else bench/kernel_cases.toml of the source tree.
std::string kernel_cases_path();
// Loaded once from kernel_cases_path().
const KernelCases& kernel_cases();

inline bool is_fwd_bwd(const KernelCase& c) { return c.op.starts_with("fwd_bwd_"); }
inline bool is_decode(const KernelCase& c) { return c.op.starts_with("decode"); }

// "op/B16/T2048/H16/K128" ("op/B16/T2048/H16/K128/fp16" for an fp16 case): Google Benchmark's case name,
// which fla_compare.py matches.
std::string case_name(const KernelCase& c);

// Bytes a forward must move: q, k, v read and o written (bf16 or fp16: two bytes either way); decode: the fp32 state read and
// written, plus its token's q, k, v, o; forward + backward: the forward's, then q, k, v and do read
// and dq, dk, dv written (6 K + 5 V per token and head; beta and g are a rounding error beside them).
double case_bytes(const KernelCase& c);

// FLOPs of the chunked algorithm with chunk C = 64, per chunk and head: Q K^T and K K^T (4 C^2 K),
// the triangular solves for w and u (C^2 (K + V)), W S, Q S and the state update (6 C K V), and
// P v_new (2 C^2 V). Linear attention skips the K K^T product, the solves and W S. SDPA (causal):
// 2 T^2 (K + V) per head, halved by the mask. Decode: 6 K V per token (recall, update, read out).
// Forward + backward: three times the forward's (the backward's products are about twice the forward's).
double case_flops(const KernelCase& c);

// What a machine moves and multiplies: measured by kernels_bench in the run (a device-to-device copy,
// counting bytes read and written, and a large bf16 matrix product), or the nominal H100 rates that
// the reports before the measurement used.
struct Rates {
  double bytes_per_s = 3.0e12;
  double flops_per_s = 800e12;
  bool measured = false;
};

// The larger of the case's memory time and its arithmetic time at `rates`, in ms.
double floor_ms(const KernelCase& c, const Rates& rates);

}  // namespace deltabench::bench
