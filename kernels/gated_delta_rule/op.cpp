#include "kernels/gated_delta_rule/op.h"

#include "kernels/common/cuda_dispatch.h"
#include "kernels/common/validate.h"
#include "kernels/delta_rule/reference.h"

#include <c10/util/Exception.h>

namespace deltabench {

SequenceOutput gated_delta_rule(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                const at::Tensor& beta, const at::Tensor& g,
                                const SequenceOptions& options) {
  TORCH_CHECK(beta.defined(), "gated_delta_rule: beta [B, T, H] is required");
  TORCH_CHECK(g.defined(), "gated_delta_rule: g [B, T, H] is required (use delta_rule without decay)");
  const auto shape = detail::validate_sequence_inputs("gated_delta_rule", q, k, v, beta, g, options);
  // The delta-rule reference takes the decay when g is given: one implementation of the WY algorithm.
  return detail::dispatch(Family::kGatedDeltaRule, shape, q, k, v, beta, g, options,
                          reference::delta_rule_recurrent, reference::delta_rule_chunk);
}

}  // namespace deltabench
