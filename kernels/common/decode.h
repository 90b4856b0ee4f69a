#pragma once
// Recurrent decode for generation: T steps (usually 1) of a family for B sequences from a state
// that is updated in place. On CUDA (K of 64 or 128, V a multiple of 32, bf16/fp16/fp32) one kernel
// does it with no allocation but `o` and no host synchronisation, so it can be captured in a CUDA
// graph; elsewhere the recurrent reference runs and the state is copied back.

#include "kernels/family.h"

#include <ATen/core/Tensor.h>

#include <optional>

namespace deltabench {

// inputs: q, k [B, T, H, K], v [B, T, H, V], beta/g [B, T, H] as the family takes them.
// state: [B, H, K, V] fp32, contiguous, on the inputs' device; updated in place.
// Returns o [B, T, H, V] in v's dtype (written into `out` when it is given).
at::Tensor recurrent_decode(Family family, const SequenceInputs& inputs, const at::Tensor& state,
                            std::optional<double> scale = std::nullopt, at::Tensor out = {});

}  // namespace deltabench
