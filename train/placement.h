#pragma once
// Where an experiment trains, as opposed to what it trains. The identity of a run (task, model,
// protocol, seed: what a suite hashes and the store keeps) is an ExperimentConfig; its placement
// (device, the sequence ops' backend, CPU threads, checkpoint directory) is this, and never enters
// the hash. A config file's [train] device, backend and checkpoint keys, a suite's [base.train] ones
// and the command's flags all land here, each with its origin so that an error can name the file and
// key or the flag.

#include "kernels/common/backend_choice.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace deltabench::train {

struct Placement {
  std::string device = "auto";             // "auto", "cpu", "cuda" or "cuda:N"
  std::string device_origin = "the default device";  // "--device", "configs/x.toml:12: [train] device", ...
  // Which implementation runs the linear family's sequence ops: "auto", "reference" or "kernel"
  // (kernels/common/backend_choice.h). The kernels compute the same function as the reference ops up
  // to rounding, so like the device it is where a run trains, not what it trains.
  std::string backend = "auto";
  std::string backend_origin = "the default backend";
  // What the sm_90a training op's backward computes again rather than keep from the forward: "none", "state" or
  // "all" (kernels/common/backend_choice.h's Recompute): memory against speed, the same bits either way.
  std::string recompute = "none";
  std::string recompute_origin = "the default recompute";
  std::string checkpoint;                  // a directory for model.pt and optimizer.pt; empty: none
  std::string checkpoint_origin;
  int64_t threads = 0;                     // LibTorch intra-op threads; 0: leave LibTorch's setting
};

// The device a placement names, checked against this machine.
struct ResolvedDevice {
  at::Device device{at::kCPU};
  std::string name;      // "cpu" or "cuda:0 (NVIDIA H200)": what runs print and the store records
  std::string gpu_name;  // "NVIDIA H200"; empty on the CPU
};

// Throws ConfigError naming `origin` when `device` is not one of the accepted spellings.
void check_device_spelling(const std::string& device, const std::string& origin);

// "auto" becomes cuda:0 where a GPU is visible, else cpu. "cuda" or "cuda:N" on a machine (or a
// build) without that GPU is a ConfigError naming `origin`, the request and what is visible.
ResolvedDevice resolve_device(const std::string& device, const std::string& origin);

// Throws ConfigError naming `origin` when `backend` is not "auto", "reference" or "kernel".
BackendChoice parse_backend(const std::string& backend, const std::string& origin);

// Throws ConfigError naming `origin` when `recompute` is not "none", "state" or "all".
Recompute parse_recompute(const std::string& recompute, const std::string& origin);

// How progress lines name where the sequence ops run: "kernel", or "kernel, recompute all" where it is not none.
std::string backend_text(BackendChoice backend, Recompute recompute);

// The placement's backend for a run on `device`: "kernel" on a CPU is a ConfigError naming the
// backend's origin and the device (the kernels are CUDA kernels).
BackendChoice resolve_backend(const Placement& placement, const ResolvedDevice& device);

// GPUs this process can use (0 without a CUDA build or driver).
int64_t visible_gpus();

// Bytes of memory this process could still take: MemAvailable on the host, free memory on a GPU
// (infinity where neither can be read).
double available_bytes(const at::Device& device);

}  // namespace deltabench::train
