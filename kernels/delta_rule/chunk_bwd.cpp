// The delta rules' part of the chunked training pair (kernels/common/chunk_stages.h): the UT
// transform that turns a chunk's keys and values into W and U, and the gradients through it. The gated
// rule shares it; its decay enters through the shared stages' masks and exp(G).
//
//   A = strict_lower(diag(beta) K K^T * decay),  Tinv = (I + A)^-1,
//   W = Tinv (beta exp(G) k),  U = Tinv (beta v).
// Backward, with dW and dU given: dTinv = dW kt^T + dU vt^T; dkt = Tinv^T dW; dvt = Tinv^T dU;
// dA = -(Tinv^T dTinv Tinv^T) on A's strictly lower support; then the chain rule through A, kt and vt.

#include "kernels/common/chunk.h"
#include "kernels/common/chunk_stages.h"

#include <ATen/ATen.h>

namespace deltabench::detail::chunked {
namespace {

void prepare(const Inputs& in, Prepared& p, bool kernels) {
  const auto beta = in.beta.unsqueeze(-1);
  p.decay_strict = chunk_decay_mask(in.G, kC, /*strict=*/true, in.q);
  p.kbeta = in.k * beta;
  p.A = at::matmul(p.kbeta, transposed(in.k)) * p.decay_strict;
  p.Tinv = unit_lower_inverse(p.A, kernels);
  p.kt = p.eG.defined() ? p.kbeta * p.eG : p.kbeta;
  p.vt = in.v * beta;
  p.W = at::matmul(p.Tinv, p.kt);
  p.U = at::matmul(p.Tinv, p.vt);
}

void backward(const Inputs& in, const Prepared& p, const at::Tensor& dW, const at::Tensor& dU, Grads& g) {
  const auto dTinv = mm_add(at::matmul(dW, transposed(p.kt)), dU, transposed(p.vt));
  const auto TinvT = transposed(p.Tinv);
  const auto dkt = at::matmul(TinvT, dW);
  const auto dvt = at::matmul(TinvT, dU);
  // dA = -(Tinv^T dTinv Tinv^T), of which only A's strictly lower support counts: the products with
  // decay_strict and A below mask it.
  const auto dA = mm(at::matmul(TinvT, dTinv), TinvT, -1.0);
  const auto dA_decayed = dA * p.decay_strict;
  const auto dkbeta = mm_add(p.eG.defined() ? dkt * p.eG : dkt, dA_decayed, in.k);
  g.dk = mm_add(g.dk, transposed(dA_decayed), p.kbeta);
  if (g.dG.defined()) {
    const auto M = dA * p.A;
    g.dG = g.dG + (dkt * p.kt).sum(-1) + M.sum(-1) - M.sum(-2);
  }
  const auto beta = in.beta.unsqueeze(-1);
  g.dk = at::addcmul(g.dk, dkbeta, beta);
  g.dv = dvt * beta;
  g.dbeta = (dkbeta * in.k).sum(-1) + (dvt * in.v).sum(-1);
}

}  // namespace

Stages delta_rule_stages() { return {prepare, backward}; }

}  // namespace deltabench::detail::chunked
