#pragma once
// delta_rule: DeltaNet's sequence op.
//   q, k [B, T, H, K], v [B, T, H, V], beta [B, T, H] (the writing strength, usually in (0, 1), or
//   (0, 2) with negative eigenvalues). See kernels/delta_rule/README.md.

#include "kernels/common/sequence_op.h"

namespace deltabench {

SequenceOutput delta_rule(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          const at::Tensor& beta, const SequenceOptions& options = {});

}  // namespace deltabench
