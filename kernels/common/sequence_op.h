#pragma once
// Options and outputs shared by the sequence ops of every family (linear attention, delta rule,
// gated delta rule). Layout and semantics follow flash-linear-attention: tokens first.

#include "kernels/common/backend_choice.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string_view>

namespace deltabench {

// chunk: the chunkwise-parallel (WY / UT-transform) algorithm, the training path.
// recurrent: one step per token, the readable definition and the inference path.
enum class Mode { kChunk, kRecurrent };

struct SequenceOptions {
  std::optional<double> scale;  // multiplies q; default K^-1/2
  at::Tensor initial_state;     // [N, H, K, V] fp32 (fp64 allowed with fp64 inputs); undefined: zeros
  bool output_final_state = false;
  at::Tensor cu_seqlens;        // [N + 1] int32/int64, FlashAttention convention; requires B == 1
  int64_t chunk_size = 64;      // 16, 32 or 64
  Mode mode = Mode::kChunk;
  BackendChoice backend = BackendChoice::kAuto;
  // The CUDA kernel's segment-parallel pass for long sequences (kernels/common/segments.h), bf16 and
  // fp16 inputs: 0 lets a cost model choose the segment length, -1 keeps the sequences whole, a positive
  // multiple of 64 splits them into segments of that many tokens. fp32 inputs (the kernel's version 1)
  // and the reference path keep sequences whole.
  int64_t kernel_segment_length = 0;
  // The sm_90a training op (kernels/common/sm90, Hopper; where cuda_dispatch.h's set_sm90_train is on) keeps
  // the delta rules' W, U and T from the forward for the backward, (K + V + 64) x 2 bytes a token and head (at
  // K = V = 128, 640: about as much again as q, k, v and beta), rather than computing them again there: 8-11% off
  // its forward + backward at 16 x 2K on an H100 (kernels/delta_rule/NOTES.md, version 3h). true: recompute
  // them, as FLA does, for the memory. The same outputs and gradients bit for bit either way; the other
  // kernels keep nothing.
  bool kernel_recompute_ut = false;
  // The same op keeps h (the state at each chunk's start) and v_new from the forward too, K V x 2 / 64 + V x 2
  // bytes more a token and head (768 at K = V = 128), so that its backward runs no forward pass: the forward's
  // state pass was 0.31-0.34 ms of the op's 3.2-3.8 at 16 x 2K on an H100, and more where it runs in segments
  // (kernels/delta_rule/NOTES.md, version 3p). true: recompute them, as FLA does; so does kernel_recompute_ut.
  // The same gradients bit for bit either way.
  bool kernel_recompute_state = false;
};

// The two switches above as a run's [train] recompute names them (backend_choice.h).
inline void set_recompute(SequenceOptions& options, Recompute recompute) {
  options.kernel_recompute_ut = recompute == Recompute::kAll;
  options.kernel_recompute_state = recompute != Recompute::kNone;
}

struct SequenceOutput {
  at::Tensor o;            // [B, T, H, V], dtype of v
  at::Tensor final_state;  // [N, H, K, V] in the compute dtype; undefined unless output_final_state
  Backend backend = Backend::kReference;  // what computed o and final_state
};

}  // namespace deltabench
