#include "kernels/linear_attn/op.h"

#include "kernels/common/backend.h"
#include "kernels/common/cuda_dispatch.h"
#include "kernels/common/validate.h"
#include "kernels/linear_attn/reference.h"

namespace deltabench {

SequenceOutput linear_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                const at::Tensor& g, const SequenceOptions& options) {
  const auto shape = detail::validate_sequence_inputs("linear_attention", q, k, v, {}, g, options);
  if (auto out = detail::cuda_chunk_forward(detail::KernelRule::kLinear, shape, q, k, v, {}, g, options)) {
    detail::count_backend_call(Backend::kKernel, false);
    return std::move(*out);
  }
  detail::count_backend_call(Backend::kReference, detail::needs_grad({&q, &k, &v, &g}));
  return detail::run_reference(shape, q, k, v, {}, g, options, reference::linear_attention_recurrent,
                               reference::linear_attention_chunk);
}

}  // namespace deltabench
