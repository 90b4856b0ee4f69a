#pragma once
// Which implementation serves a sequence op (no ATen here: the models' and the trainer's configs
// hold a choice). kernels/common/cuda_dispatch.h says which calls the kernels serve.

#include <optional>
#include <string_view>

namespace deltabench {

// auto: deltabench's CUDA kernel where it serves the call and is measured faster, else the reference
// ops; reference: the reference ops (ATen, any device, differentiable); kernel: the CUDA kernel, or an
// error that says why it cannot serve this call. Never a silent fallback when the kernel was asked for.
enum class BackendChoice { kAuto, kReference, kKernel };
// Which one did: every op's output records it.
enum class Backend { kReference, kKernel };

std::string_view backend_name(Backend backend);            // "reference", "kernel"
std::string_view backend_choice_name(BackendChoice choice);  // "auto", "reference", "kernel"
// The choice backend_choice_name spells; nullopt for any other text.
std::optional<BackendChoice> backend_choice_from_name(std::string_view name);

}  // namespace deltabench
