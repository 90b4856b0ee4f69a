#include "kernels/common/poison.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <limits>

#ifdef DELTABENCH_HAVE_CUDA
#include <c10/cuda/CUDAStream.h>
#endif

namespace deltabench {
namespace {

// Quiet-NaN bit patterns of each floating dtype.
uint64_t nan_bits(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat: return 0x7fc00000u;
    case at::kDouble: return 0x7ff8000000000000ull;
    case at::kHalf: return 0x7e00u;
    case at::kBFloat16: return 0x7fc0u;
    default:
      TORCH_CHECK(false, "poison_: t must be float32, float64, float16 or bfloat16, got ", dtype);
  }
}

}  // namespace

void poison_(at::Tensor& t) {
  const uint64_t bits = nan_bits(t.scalar_type());
  TORCH_CHECK(t.is_contiguous(), "poison_: t must be contiguous, got strides ", t.strides());
#ifdef DELTABENCH_HAVE_CUDA
  if (t.is_cuda()) {
    const auto stream = c10::cuda::getCurrentCUDAStream(t.device().index());
    cuda::fill_pattern(t.data_ptr(), t.numel(), static_cast<int>(t.element_size()), bits,
                       stream.stream());
    return;
  }
#endif
  (void)bits;
  t.fill_(std::numeric_limits<double>::quiet_NaN());
}

}  // namespace deltabench
