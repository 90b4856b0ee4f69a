#include "kernels/linear_attn/op.h"

#include "kernels/common/cuda_dispatch.h"
#include "kernels/common/validate.h"
#include "kernels/linear_attn/reference.h"

namespace deltabench {

SequenceOutput linear_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                const at::Tensor& g, const SequenceOptions& options) {
  const auto shape = detail::validate_sequence_inputs("linear_attention", q, k, v, {}, g, options);
  return detail::dispatch(Family::kLinearAttention, shape, q, k, v, {}, g, options,
                          reference::linear_attention_recurrent, reference::linear_attention_chunk);
}

}  // namespace deltabench
