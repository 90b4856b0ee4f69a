#include "kernels/delta_rule/op.h"

#include "kernels/common/cuda_dispatch.h"
#include "kernels/common/validate.h"
#include "kernels/delta_rule/reference.h"

#include <c10/util/Exception.h>

namespace deltabench {

SequenceOutput delta_rule(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          const at::Tensor& beta, const SequenceOptions& options) {
  TORCH_CHECK(beta.defined(), "delta_rule: beta [B, T, H] is required");
  const auto shape = detail::validate_sequence_inputs("delta_rule", q, k, v, beta, {}, options);
  return detail::dispatch(Family::kDeltaRule, shape, q, k, v, beta, {}, options,
                          reference::delta_rule_recurrent, reference::delta_rule_chunk);
}

}  // namespace deltabench
