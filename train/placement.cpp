#include "train/placement.h"

#include "train/config.h"

#include <ATen/Context.h>
#ifdef DELTABENCH_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>
#endif

#include <charconv>
#include <fstream>
#include <limits>
#include <optional>

namespace deltabench::train {
namespace {

// cuda:N's N, or -1 for plain "cuda"; nullopt when `device` is not a CUDA spelling.
std::optional<int64_t> cuda_index(const std::string& device) {
  if (device == "cuda") return -1;
  if (device.rfind("cuda:", 0) != 0 || device.size() == 5) return std::nullopt;
  int64_t i = -1;
  const char* first = device.data() + 5;
  const char* last = device.data() + device.size();
  const auto r = std::from_chars(first, last, i);
  if (r.ec != std::errc{} || r.ptr != last || i < 0) return std::nullopt;
  return i;
}

}  // namespace

double available_bytes(const at::Device& device) {
#ifdef DELTABENCH_HAVE_CUDA
  if (device.is_cuda()) {
    c10::cuda::CUDAGuard guard(device);
    size_t free = 0, total = 0;
    if (cudaMemGetInfo(&free, &total) == cudaSuccess) return static_cast<double>(free);
    cudaGetLastError();
    return std::numeric_limits<double>::infinity();
  }
#endif
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  double kb = 0;
  std::string unit;
  while (meminfo >> key >> kb >> unit) {
    if (key == "MemAvailable:") return kb * 1024.0;
  }
  return std::numeric_limits<double>::infinity();
}

int64_t visible_gpus() { return at::hasCUDA() ? static_cast<int64_t>(at::getNumGPUs()) : 0; }

void check_device_spelling(const std::string& device, const std::string& origin) {
  if (device == "auto" || device == "cpu" || cuda_index(device)) return;
  throw ConfigError(origin + ": expected \"auto\", \"cpu\", \"cuda\" or \"cuda:N\", got \"" + device + "\"");
}

BackendChoice parse_backend(const std::string& backend, const std::string& origin) {
  if (const auto choice = backend_choice_from_name(backend)) return *choice;
  throw ConfigError(origin + ": expected \"auto\", \"reference\" or \"kernel\", got \"" + backend + "\"");
}

Recompute parse_recompute(const std::string& recompute, const std::string& origin) {
  if (const auto choice = recompute_from_name(recompute)) return *choice;
  throw ConfigError(origin + ": expected \"none\", \"state\" or \"all\" (what the training kernels' backward computes "
                    "again rather than keep from the forward), got \"" + recompute + "\"");
}

std::string backend_text(BackendChoice backend, Recompute recompute) {
  std::string text(backend_choice_name(backend));
  if (recompute != Recompute::kNone) text += ", recompute " + std::string(recompute_name(recompute));
  return text;
}

BackendChoice resolve_backend(const Placement& placement, const ResolvedDevice& device) {
  const auto choice = parse_backend(placement.backend, placement.backend_origin);
  if (choice == BackendChoice::kKernel && !device.device.is_cuda()) {
    throw ConfigError(placement.backend_origin + ": backend \"kernel\" runs deltabench's CUDA kernels, and this run " +
                      "trains on " + device.name + " (give a CUDA device, or backend \"auto\" or \"reference\")");
  }
  return choice;
}

ResolvedDevice resolve_device(const std::string& device, const std::string& origin) {
  check_device_spelling(device, origin);
  const int64_t gpus = visible_gpus();
  ResolvedDevice r;
  if (device == "cpu" || (device == "auto" && gpus == 0)) {
    r.name = "cpu";
    return r;
  }
  int64_t index = device == "auto" ? 0 : *cuda_index(device);
  if (index < 0) index = 0;
  if (gpus == 0) {
#ifdef DELTABENCH_HAVE_CUDA
    const std::string why = "this machine has no visible CUDA device (LibTorch sees 0 GPUs)";
#else
    const std::string why = "this build of deltabench has no CUDA support (no nvcc at configure time)";
#endif
    throw ConfigError(origin + ": \"" + device + "\" requested, but " + why + "; use \"cpu\" or \"auto\"");
  }
  if (index >= gpus) {
    throw ConfigError(origin + ": \"" + device + "\" requested, but only " + std::to_string(gpus) +
                      " CUDA device(s) are visible (cuda:0 to cuda:" + std::to_string(gpus - 1) + ")");
  }
  r.device = at::Device(at::kCUDA, static_cast<at::DeviceIndex>(index));
#ifdef DELTABENCH_HAVE_CUDA
  r.gpu_name = at::cuda::getDeviceProperties(static_cast<at::DeviceIndex>(index))->name;
#endif
  r.name = "cuda:" + std::to_string(index) + " (" + r.gpu_name + ")";
  return r;
}

}  // namespace deltabench::train
