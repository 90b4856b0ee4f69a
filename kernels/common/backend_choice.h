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

// What the sm_90a training op's backward computes again rather than keeping from the forward (SequenceOptions'
// kernel_recompute_ut and kernel_recompute_state): the memory a run's activations take against its speed; the
// outputs and gradients are the same bits either way, and the other paths keep nothing. none: keep W, U and T
// (the delta rules' UT transform) and h and v_new (the state pass), (K + V + 64) x 2 + K V x 2 / 64 + V x 2 bytes
// a token and head (1,408 at K = V = 128: about twice q, k, v and beta), the fastest; state: keep W, U and T,
// compute h and v_new again (a forward state pass in the backward); all: keep none of them, as FLA does.
enum class Recompute { kNone, kState, kAll };
std::string_view recompute_name(Recompute recompute);  // "none", "state", "all"
std::optional<Recompute> recompute_from_name(std::string_view name);

}  // namespace deltabench
