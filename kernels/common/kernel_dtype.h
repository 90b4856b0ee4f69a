#pragma once
// The CUDA kernels' element type for an ATen dtype: bf16, fp16 and fp32 have one; other dtypes
// (fp64 among them) are served by the reference ops only. Host code; no CUDA headers needed.

#include "kernels/common/cuda_kernels.h"

#include <c10/core/ScalarType.h>

#include <optional>

namespace deltabench::detail {

inline std::optional<cuda::Dtype> kernel_dtype(at::ScalarType t) {
  switch (t) {
    case at::kBFloat16: return cuda::Dtype::kBF16;
    case at::kHalf: return cuda::Dtype::kFP16;
    case at::kFloat: return cuda::Dtype::kFP32;
    default: return std::nullopt;
  }
}

}  // namespace deltabench::detail
