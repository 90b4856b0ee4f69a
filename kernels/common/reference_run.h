#pragma once
// Running a reference op: cast to the compute dtype, pack the sequences into zero-padded rows, fill
// in the defaults (scale, zero initial state), call the family's reference, unpack, cast back.

#include "kernels/common/sequence_op.h"
#include "kernels/common/validate.h"

#include <ATen/core/Tensor.h>

#include <utility>

namespace deltabench::reference {

// Inputs of a reference op, already packed and in the compute dtype.
struct PackedInputs {
  at::Tensor q, k;   // [N, Tp, H, K]
  at::Tensor v;      // [N, Tp, H, V]
  at::Tensor beta;   // [N, Tp, H], undefined for linear attention
  at::Tensor g;      // [N, Tp, H] per-step log decay (<= 0), undefined: no decay
  at::Tensor h0;     // [N, H, K, V]
  bool zero_h0 = false;     // h0 is zeros (no initial state): the chunk path skips the first chunk's products with it
  bool final_state = true;  // false: the chunk path may skip the last chunk's state update (the state is undefined)
  double scale = 1;  // multiplies q
  int64_t chunk_size = 64;  // Tp is a multiple of it on the chunk path
};

// o [N, Tp, H, V] and the final state [N, H, K, V] (undefined where final_state is false).
using Result = std::pair<at::Tensor, at::Tensor>;
using Fn = Result (*)(const PackedInputs&);

}  // namespace deltabench::reference

namespace deltabench::detail {

SequenceOutput run_reference(const SequenceShape& shape, const at::Tensor& q, const at::Tensor& k,
                             const at::Tensor& v, const at::Tensor& beta, const at::Tensor& g,
                             const SequenceOptions& options, reference::Fn recurrent,
                             reference::Fn chunk);

}  // namespace deltabench::detail
