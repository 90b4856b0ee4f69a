#pragma once
// The delta rule, and the gated delta rule when g is given (decay first, then the delta update), per head:
//   S_t = exp(g_t) S_{t-1}
//   S_t = S_t + beta_t k_t (v_t - S_t^T k_t)^T,   o_t = S_t^T (scale q_t).
// With g undefined this is DeltaNet's rule; with g it is Gated DeltaNet's. One implementation
// serves both families so that there is one truth for the WY algorithm.

#include "kernels/common/reference_run.h"

namespace deltabench::reference {

Result delta_rule_recurrent(const PackedInputs& in);
Result delta_rule_chunk(const PackedInputs& in);

}  // namespace deltabench::reference
