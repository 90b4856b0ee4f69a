#pragma once
// The layers' output norm (FLA's RMSNorm and FusedRMSNormGated) as CUDA kernels, per row of D:
//   r = (mean x^2 + eps)^(-1/2),  n = x r w,  z = n silu(g) with a gate, else z = n,
// and the backward, exact with eps inside the root: with dn = dz silu(g) (or dz) and a = dn w,
//   dx = r (a - x r mean(a x r)),  dw = sum over rows of dn x r,  dg = dz n silu'(g).
// One warp a row, fp32 statistics (as FLA computes them); the forward saves r; dw's per-block parts are
// summed by the caller in a fixed order. D at most kRmsNormMaxD. No allocation, no host synchronisation:
// capturable in a CUDA graph. models/fused_cuda.h wraps them as an autograd function.

#include "kernels/common/cuda_kernels.h"

#include <cstdint>

namespace deltabench::cuda {

inline constexpr int64_t kRmsNormMaxD = 256;

struct RmsNormParams {
  Dtype dtype = Dtype::kBF16;    // of x, gate, z, dz, dx and dgate
  const void* x = nullptr;       // [rows, D] contiguous
  const float* w = nullptr;      // [D] fp32
  const void* gate = nullptr;    // [rows, D], or null: no gate
  void* z = nullptr;             // forward: [rows, D]
  float* rstd = nullptr;         // forward: [rows], written; backward: read
  const void* dz = nullptr;      // backward: [rows, D]
  void* dx = nullptr;            // backward: [rows, D]
  void* dgate = nullptr;         // backward, with a gate: [rows, D]
  float* dw_parts = nullptr;     // backward: [rms_norm_blocks(rows), D] fp32; their sum is dw
  int64_t rows = 0, D = 0;
  float eps = 1e-5f;
};

bool rms_norm_supports(int64_t D);         // 1 <= D <= kRmsNormMaxD
int64_t rms_norm_blocks(int64_t rows);     // the blocks the kernels launch (and dw's parts)
// Throw std::runtime_error naming themselves for sizes they do not take or a failed launch.
void rms_norm_forward(const RmsNormParams& p, void* stream);
void rms_norm_backward(const RmsNormParams& p, void* stream);

}  // namespace deltabench::cuda
