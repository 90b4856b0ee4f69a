#pragma once
// linear_attention: causal linear attention with an optional scalar decay (RetNet / Mamba2 form).
//   q, k [B, T, H, K], v [B, T, H, V], g [B, T, H] per-step log decay (<= 0) or undefined.
// See kernels/linear_attn/README.md for the math and common/sequence_op.h for the options.

#include "kernels/common/sequence_op.h"

namespace deltabench {

SequenceOutput linear_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                const at::Tensor& g = {}, const SequenceOptions& options = {});

}  // namespace deltabench
