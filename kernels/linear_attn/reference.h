#pragma once
// Linear attention with an optional scalar decay (RetNet / Mamba2 form), per head:
//   S_t = exp(g_t) S_{t-1} + k_t v_t^T,   o_t = S_t^T (scale q_t).
// Readable references; kernels are tested against them.

#include "kernels/common/reference_run.h"

namespace deltabench::reference {

Result linear_attention_recurrent(const PackedInputs& in);
Result linear_attention_chunk(const PackedInputs& in);

}  // namespace deltabench::reference
