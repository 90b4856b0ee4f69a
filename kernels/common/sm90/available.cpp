// Whether the sm_90a kernels can run here (sm90_kernels.h). Compiled in every CUDA build; where CMake
// found no CuTe the kernels' entry points are defined here too, each throwing the sentence that says so.

#include "kernels/common/sm90/checks.h"
#include "kernels/common/sm90/sm90_kernels.h"

#include <cuda_runtime.h>

#include <cstdint>
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

namespace detail {

int64_t check_call(const char* who, const CallShape& c, Pointers required, Pointers optional) {
  const std::string name(who);
  std::string why;
  if (!available(&why)) throw std::runtime_error(name + ": " + why);
  auto fail = [&](const std::string& what) { throw std::invalid_argument(name + ": " + what); };
  if (c.dtype != Dtype::kBF16 && c.dtype != Dtype::kFP16) fail("dtype must be bf16 or fp16 (got fp32)");
  const bool v_ok = c.V > 0 && c.V % 64 == 0 && (c.max_V == 0 || c.V <= c.max_V);
  const bool k_ok = c.K == 64 || c.K == 128 || (c.K == 256 && c.max_K >= 256);
  if (!(k_ok && v_ok)) {
    fail(std::string(c.max_K >= 256 ? "K must be 64, 128 or 256" : "K must be 64 or 128") +
         " and V a positive multiple of 64" +
         (c.max_V ? " up to " + std::to_string(c.max_V) : std::string()) + " (got K " + std::to_string(c.K) + ", V " +
         std::to_string(c.V) + ")");
  }
  if (c.N <= 0 || c.H <= 0 || c.H > 65535) {
    fail("N must be positive and H in 1..65535 (got N " + std::to_string(c.N) + ", H " + std::to_string(c.H) + ")");
  }
  if ((c.seq_starts == nullptr) != (c.chunk_starts == nullptr)) fail("seq_starts and chunk_starts go together (one of them is null)");
  if (c.seq_starts == nullptr && c.T <= 0) fail("T must be positive without seq_starts (got " + std::to_string(c.T) + ")");
  if (c.chunk_grid && c.seq_starts && c.chunks <= 0) {
    fail("with seq_starts, chunks must be chunk_starts[N] (got " + std::to_string(c.chunks) + ")");
  }
  for (const auto& [ptr_name, ptr] : required) {
    if (ptr == nullptr) fail(std::string(ptr_name) + " is required (got null)");
  }
  for (const auto& list : {required, optional}) {
    for (const auto& [ptr_name, ptr] : list) {
      if (reinterpret_cast<uintptr_t>(ptr) % 16 != 0) fail(std::string(ptr_name) + " must start on a 16-byte boundary");
    }
  }
  return c.seq_starts ? c.chunks : c.N * ((c.T + kStateChunk - 1) / kStateChunk);
}

}  // namespace detail
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

void chunk_state_backward(const StateBwdParams&, void*) {
  throw std::runtime_error(std::string("sm90::chunk_state_backward: ") + kNotBuilt);
}

void chunk_output_forward(const OutputFwdParams&, void*) {
  throw std::runtime_error(std::string("sm90::chunk_output_forward: ") + kNotBuilt);
}

void chunk_dv_local(const DvLocalParams&, void*) {
  throw std::runtime_error(std::string("sm90::chunk_dv_local: ") + kNotBuilt);
}

void chunk_dqkw(const DqkwParams&, void*) {
  throw std::runtime_error(std::string("sm90::chunk_dqkw: ") + kNotBuilt);
}

void chunk_ut_backward(const UtBwdParams&, void*) {
  throw std::runtime_error(std::string("sm90::chunk_ut_backward: ") + kNotBuilt);
}

void chunk_ut_forward(const UtFwdParams&, void*) {
  throw std::runtime_error(std::string("sm90::chunk_ut_forward: ") + kNotBuilt);
}
#endif

}  // namespace deltabench::cuda::sm90
