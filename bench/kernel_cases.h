#pragma once
// The one registry of kernel benchmark cases: ops x shapes. bench/kernels_bench.cpp times them,
// bench/fla_compare.py times FLA on the same list (it parses the rows below) and writes both into a
// CSV, and the report writer (report/kernels.cpp) turns that into tables and throughput curves with
// the floors below. Keep one case per line.

#include <array>
#include <cstdint>
#include <string_view>

namespace deltabench::bench {

struct KernelCase {
  // delta_rule, gated_delta_rule, linear_attention, sdpa: the forward; decode_<family>: a decode step;
  // fwd_bwd_<family or sdpa>: the forward and the backward of o (every input's gradient).
  std::string_view op;
  int64_t B, T, H, K, V;
  double target_ms = 0;  // the target (forward: issue 6's on the H100; below), 0 where there is none
};

// The standard shape (H=16, K=V=128, B*T = 32768), FLA's benchmark shape at K=64, and decode steps.
inline constexpr std::array kKernelCases = {
    KernelCase{"delta_rule", 16, 2048, 16, 128, 128, 0.60},          // case
    KernelCase{"delta_rule", 4, 8192, 16, 128, 128},                 // case
    KernelCase{"delta_rule", 1, 32768, 16, 128, 128},                // case
    KernelCase{"gated_delta_rule", 16, 2048, 16, 128, 128, 0.55},    // case
    KernelCase{"gated_delta_rule", 4, 8192, 16, 128, 128},           // case
    KernelCase{"gated_delta_rule", 1, 32768, 16, 128, 128, 0.80},    // case
    KernelCase{"gated_delta_rule", 8, 4096, 8, 64, 64},              // case
    KernelCase{"linear_attention", 16, 2048, 16, 128, 128},          // case
    KernelCase{"sdpa", 16, 2048, 16, 128, 128},                      // case
    KernelCase{"sdpa", 4, 8192, 16, 128, 128},                       // case
    KernelCase{"sdpa", 1, 32768, 16, 128, 128},                      // case
    KernelCase{"decode_gated_delta_rule", 1, 1, 16, 128, 128, 0.010},    // case
    KernelCase{"decode_gated_delta_rule", 8, 1, 16, 128, 128},           // case
    KernelCase{"decode_gated_delta_rule", 64, 1, 16, 128, 128, 0.060},   // case
    KernelCase{"fwd_bwd_delta_rule", 16, 2048, 16, 128, 128, 2.78},         // case
    KernelCase{"fwd_bwd_delta_rule", 4, 8192, 16, 128, 128, 2.81},          // case
    KernelCase{"fwd_bwd_delta_rule", 1, 32768, 16, 128, 128, 4.47},         // case
    KernelCase{"fwd_bwd_gated_delta_rule", 16, 2048, 16, 128, 128, 3.28},   // case
    KernelCase{"fwd_bwd_gated_delta_rule", 4, 8192, 16, 128, 128, 3.29},    // case
    KernelCase{"fwd_bwd_gated_delta_rule", 1, 32768, 16, 128, 128, 5.77},   // case
    KernelCase{"fwd_bwd_delta_rule", 256, 256, 2, 64, 64},                  // case
    KernelCase{"fwd_bwd_gated_delta_rule", 256, 256, 2, 64, 128},           // case
    KernelCase{"fwd_bwd_delta_rule", 128, 512, 2, 64, 64},                  // case
    KernelCase{"fwd_bwd_sdpa", 16, 2048, 16, 128, 128},                     // case
};

// The forward + backward targets above are FLA's forward + backward on the H200 (the backward-kernel
// issue: FLA with its Hopper guard lifted); the (256, 256, 2, 64) and (128, 512, 2, 64) cases are one
// DeltaNet / Gated DeltaNet layer of Zoology's MQAR models at L 256 and 512 (d_model 128, 2 heads).
inline bool is_fwd_bwd(const KernelCase& c) { return c.op.starts_with("fwd_bwd_"); }

// The H100's floor for a case: the larger of its memory time (bytes at 3.0 TB/s, what a copy
// reaches) and its arithmetic time (FLOPs at 800 TFLOP/s dense bf16), in ms.
inline constexpr double kHbmBytesPerS = 3.0e12;
inline constexpr double kTensorFlopsPerS = 800e12;

// Bytes a forward must move: q, k, v read and o written (bf16); decode: the fp32 state read and
// written, plus its token's q, k, v, o; forward + backward: the forward's, then q, k, v and do read
// and dq, dk, dv written (6 K + 5 V per token and head; beta and g are a rounding error beside them).
inline double case_bytes(const KernelCase& c) {
  const double tokens = static_cast<double>(c.B * c.T * c.H);
  if (c.op.starts_with("decode")) return static_cast<double>(c.B * c.H) * (8.0 * c.K * c.V) + tokens * 2.0 * (2 * c.K + 2 * c.V);
  if (is_fwd_bwd(c)) return tokens * 2.0 * (6 * c.K + 5 * c.V);
  return tokens * 2.0 * (2 * c.K + 2 * c.V);
}

// FLOPs of the chunked algorithm with chunk C = 64, per chunk and head: Q K^T and K K^T (4 C^2 K),
// the triangular solves for w and u (C^2 (K + V)), W S, Q S and the state update (6 C K V), and
// P v_new (2 C^2 V). Linear attention skips the K K^T product, the solves and W S. SDPA (causal):
// 2 T^2 (K + V) per head, halved by the mask. Decode: 6 K V per token (recall, update, read out).
// Forward + backward: three times the forward's (the backward's products are about twice the forward's).
inline double case_flops(const KernelCase& c) {
  if (is_fwd_bwd(c)) {
    KernelCase forward = c;
    forward.op = c.op.substr(8);
    return 3 * case_flops(forward);
  }
  const double C = 64, K = static_cast<double>(c.K), V = static_cast<double>(c.V);
  const double heads = static_cast<double>(c.B * c.H), T = static_cast<double>(c.T);
  if (c.op == "sdpa") return heads * T * T * (K + V);
  if (c.op.starts_with("decode")) return heads * T * 6 * K * V;
  const double chunks = heads * T / C;
  if (c.op == "linear_attention") return chunks * (2 * C * C * K + 4 * C * K * V + 2 * C * C * V);
  return chunks * (4 * C * C * K + C * C * (K + V) + 6 * C * K * V + 2 * C * C * V);
}

inline double floor_ms(const KernelCase& c) {
  const double memory = case_bytes(c) / kHbmBytesPerS, math = case_flops(c) / kTensorFlopsPerS;
  return 1e3 * (memory > math ? memory : math);
}

}  // namespace deltabench::bench
