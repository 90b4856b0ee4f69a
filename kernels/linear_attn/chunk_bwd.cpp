// Linear attention's part of the chunked training pair (kernels/common/chunk_stages.h): the values
// enter the state as they are (U = v, no W), so the gradient of U is the gradient of v. Its optional
// decay enters through the shared stages.

#include "kernels/common/chunk_stages.h"

#include <ATen/ATen.h>

namespace deltabench::detail::chunked {
namespace {

void prepare(const Inputs& in, Prepared& p, bool /*kernels*/, bool /*tf32*/) { p.U = in.v; }

void backward(const Inputs& /*in*/, const Prepared& /*p*/, const at::Tensor& /*dW*/, const at::Tensor& dU,
              Grads& g, bool /*kernels*/) {
  g.dv = dU;
}

}  // namespace

Stages linear_attention_stages() { return {prepare, backward}; }

}  // namespace deltabench::detail::chunked
