#pragma once
// Input validation shared by the public ops, in the fixed order of STYLE.md: device, dtype, rank,
// named sizes, then shapes. Every failure is a c10::Error naming the tensor, the expected value and
// the actual one.

#include "kernels/common/sequence_op.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string_view>
#include <vector>

namespace deltabench::detail {

// The sizes every op of the family shares, read off q, k and v.
struct SequenceShape {
  int64_t B = 0;  // batch (1 when cu_seqlens is given)
  int64_t T = 0;  // tokens per batch row (the packed total with cu_seqlens)
  int64_t H = 0;  // heads
  int64_t K = 0;  // key / query head dim
  int64_t V = 0;  // value head dim
  int64_t N = 0;  // sequences: B, or cu_seqlens.size(0) - 1
  std::vector<int64_t> seq_starts;  // host copy of cu_seqlens ([N + 1]); {0, T} per row otherwise
};

// `beta` and `g` may be undefined where the op does not use them; `beta_name`/`g_name` name them in
// messages. Returns the validated shape.
SequenceShape validate_sequence_inputs(std::string_view op, const at::Tensor& q, const at::Tensor& k,
                                       const at::Tensor& v, const at::Tensor& beta,
                                       const at::Tensor& g, const SequenceOptions& options);

// fp64 inputs compute in fp64; every other floating dtype computes (and keeps its state) in fp32.
at::ScalarType compute_dtype(at::ScalarType input);

}  // namespace deltabench::detail
