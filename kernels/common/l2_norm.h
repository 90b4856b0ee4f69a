#pragma once
// The L2 normalisation of q and k over the head dimension (FLA's l2norm, the delta-rule layers' qk_norm
// "l2") as CUDA kernels: y = x r with r = (sum x^2 + eps)^(-1/2) per row of D, and its backward
//   dx = r (dy - y (dy . y)),
// exact with eps inside the root. One warp a row, fp32 sums; the forward saves r (fp32, one a row) and the
// backward recomputes y from x. No allocation, no host synchronisation: capturable in a CUDA graph.
// models/fused_cuda.h wraps them as an autograd function.

#include "kernels/common/cuda_kernels.h"

#include <cstdint>

namespace deltabench::cuda {

struct L2NormParams {
  Dtype dtype = Dtype::kBF16;  // of x, y, dy and dx
  const void* x = nullptr;     // [rows, D] contiguous
  void* y = nullptr;           // forward: [rows, D]
  float* rstd = nullptr;       // forward: [rows], written; backward: read
  const void* dy = nullptr;    // backward: [rows, D]
  void* dx = nullptr;          // backward: [rows, D]
  int64_t rows = 0, D = 0;
  float eps = 1e-6f;
};

// Throw std::runtime_error naming themselves for sizes they do not take or a failed launch.
void l2_norm_forward(const L2NormParams& p, void* stream);
void l2_norm_backward(const L2NormParams& p, void* stream);

}  // namespace deltabench::cuda
