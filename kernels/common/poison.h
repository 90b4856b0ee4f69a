#pragma once
// Poisoning: fill a tensor with NaN before a kernel writes it, so that an element the kernel never
// writes fails every comparison (STYLE.md, Tests). On CUDA this is deltabench's own fill kernel,
// which also keeps the CUDA path of the build exercised where no other kernel exists yet.

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace deltabench {

// Fills `t` (float32, float64, float16 or bfloat16, contiguous) with a quiet NaN, in place.
void poison_(at::Tensor& t);

#ifdef DELTABENCH_HAVE_CUDA
namespace cuda {
// Writes `count` elements of `element_bytes` (2, 4 or 8) holding `pattern` at `data`, on `stream`.
void fill_pattern(void* data, int64_t count, int element_bytes, uint64_t pattern, void* stream);
}  // namespace cuda
#endif

}  // namespace deltabench
