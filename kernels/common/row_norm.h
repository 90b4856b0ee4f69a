#pragma once
// The layers' norms over the last dimension as CUDA kernels, one warp a row, fp32 statistics:
//  - RMSNorm, the output norm (FLA's RMSNorm and FusedRMSNormGated), per row of D:
//      r = (mean x^2 + eps)^(-1/2),  n = x r w,  z = n silu(g) with a gate, else z = n;
//    backward, exact with eps inside the root: with dn = dz silu(g) (or dz) and a = dn w,
//      dx = r (a - x r mean(a x r)),  dw = sum over rows of dn x r,  dg = dz n silu'(g).
//  - LayerNorm, the blocks' pre-norms and the final norm (torch.nn.LayerNorm with weight and bias):
//      mu = mean x,  r = (mean (x - mu)^2 + eps)^(-1/2),  xh = (x - mu) r,  z = xh w + b;
//    backward, with a = dz w:
//      dx = r (a - mean(a) - xh mean(a xh)),  dw = sum over rows of dz xh,  db = sum over rows of dz.
// The forward saves r (and mu); dw's (and db's) per-block parts are summed by the caller in a fixed order.
// No allocation, no host synchronisation: capturable in a CUDA graph. models/fused_cuda.h wraps them as
// autograd functions.

#include "kernels/common/cuda_kernels.h"

#include <cstdint>

namespace deltabench::cuda {

inline constexpr int64_t kRmsNormMaxD = 512;
inline constexpr int64_t kLayerNormMaxD = 512;

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

struct LayerNormParams {
  Dtype dtype = Dtype::kFP32;    // of x, z, dz and dx
  const void* x = nullptr;       // [rows, D] contiguous
  const float* w = nullptr;      // [D] fp32
  const float* b = nullptr;      // [D] fp32
  void* z = nullptr;             // forward: [rows, D]
  float* mean = nullptr;         // forward: [rows], written; backward: read
  float* rstd = nullptr;         // forward: [rows], written; backward: read
  const void* dz = nullptr;      // backward: [rows, D]
  void* dx = nullptr;            // backward: [rows, D]
  float* dw_parts = nullptr;     // backward: [layer_norm_blocks(rows), D] fp32; their sum is dw
  float* db_parts = nullptr;     // backward: [layer_norm_blocks(rows), D] fp32; their sum is db
  int64_t rows = 0, D = 0;
  float eps = 1e-5f;
};

bool layer_norm_supports(int64_t D);       // 1 <= D <= kLayerNormMaxD
int64_t layer_norm_blocks(int64_t rows);   // the blocks the kernels launch (and dw's and db's parts)
// Throw std::runtime_error naming themselves for sizes they do not take or a failed launch.
void layer_norm_forward(const LayerNormParams& p, void* stream);
void layer_norm_backward(const LayerNormParams& p, void* stream);

}  // namespace deltabench::cuda
