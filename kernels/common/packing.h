#pragma once
// Sequences as zero-padded rows. Batch rows and cu_seqlens segments both become [N, Tp, H, D] with
// zeros after each sequence's end. Zero padding is exact for this family: a step with k = 0, v = 0,
// beta = 0 and g = 0 leaves the state unchanged, so padded tokens never reach a real output or the
// final state, and the chunk algorithm can treat every sequence as whole chunks.

#include "kernels/common/validate.h"

#include <ATen/core/Tensor.h>

namespace deltabench::detail {

// Length of the longest sequence, rounded up to a multiple of `multiple`.
int64_t padded_length(const SequenceShape& shape, int64_t multiple);

// x: [B, T, H, ...] (packed [1, T, H, ...] with cu_seqlens) -> [N, padded_len, H, ...].
at::Tensor pack_sequences(const at::Tensor& x, const SequenceShape& shape, int64_t padded_len);

// Inverse of pack_sequences: [N, Tp, H, ...] -> [B, T, H, ...].
at::Tensor unpack_sequences(const at::Tensor& x, const SequenceShape& shape);

}  // namespace deltabench::detail
