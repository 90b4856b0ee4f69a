// The fill kernel behind deltabench::poison_ (kernels/common/poison.h). Kept free of ATen headers
// so that nvcc compiles it in seconds.

#include "kernels/common/poison.h"

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace deltabench::cuda {
namespace {

template <typename Word>
__global__ void fill_pattern_kernel(Word* __restrict__ data, int64_t count, Word pattern) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < count; i += stride) {
    data[i] = pattern;
  }
}

template <typename Word>
void launch(void* data, int64_t count, uint64_t pattern, cudaStream_t stream) {
  constexpr int kThreads = 256;
  const int64_t blocks = (count + kThreads - 1) / kThreads;
  const int grid = static_cast<int>(blocks < 65535 ? blocks : 65535);
  fill_pattern_kernel<Word><<<grid, kThreads, 0, stream>>>(static_cast<Word*>(data), count,
                                                           static_cast<Word>(pattern));
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("fill_pattern: launch failed: ") + cudaGetErrorString(err));
  }
}

}  // namespace

void fill_pattern(void* data, int64_t count, int element_bytes, uint64_t pattern, void* stream) {
  if (count == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  switch (element_bytes) {
    case 2: launch<uint16_t>(data, count, pattern, s); break;
    case 4: launch<uint32_t>(data, count, pattern, s); break;
    case 8: launch<uint64_t>(data, count, pattern, s); break;
    default:
      throw std::invalid_argument("fill_pattern: element_bytes must be 2, 4 or 8, got " +
                                  std::to_string(element_bytes));
  }
}

}  // namespace deltabench::cuda
