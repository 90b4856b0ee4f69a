// Whether the sm_90a kernels can run here (sm90_kernels.h). Compiled in every CUDA build; where CMake
// found no CuTe the kernels' entry points are defined here too, each throwing the sentence that says so.

#include "kernels/common/sm90/sm90_kernels.h"

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace deltabench::cuda::sm90 {

#if DELTABENCH_HAVE_CUTE
bool available(std::string* why) {
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    cudaGetLastError();
    if (why) *why = "no CUDA device is visible";
    return false;
  }
  int major = 0, minor = 0;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
  if (major != 9 || minor != 0) {
    if (why) {
      *why = "the sm_90a kernels run on compute capability 9.0 (H100, H200); this device is " +
             std::to_string(major) + "." + std::to_string(minor);
    }
    return false;
  }
  return true;
}
#else
namespace {
constexpr const char* kNotBuilt =
    "this build has no sm_90a kernels: CMake found no CUTLASS headers (scripts/setup.sh installs pip's "
    "nvidia-cutlass; or configure with -DDELTABENCH_CUTLASS_INCLUDE=<cutlass>/include)";
}

bool available(std::string* why) {
  if (why) *why = kNotBuilt;
  return false;
}

bool chunk_state_forward_supports(int64_t, int64_t) { return false; }

void chunk_state_forward(const StateFwdParams&, void*) {
  throw std::runtime_error(std::string("sm90::chunk_state_forward: ") + kNotBuilt);
}
#endif

}  // namespace deltabench::cuda::sm90
