#pragma once
// gated_delta_rule: Gated DeltaNet's sequence op, the delta rule with a per-step scalar decay.
//   q, k [B, T, H, K], v [B, T, H, V], beta [B, T, H], g [B, T, H] per-step log decay (<= 0).
// See kernels/gated_delta_rule/README.md.

#include "kernels/common/sequence_op.h"

namespace deltabench {

SequenceOutput gated_delta_rule(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                const at::Tensor& beta, const at::Tensor& g,
                                const SequenceOptions& options = {});

}  // namespace deltabench
