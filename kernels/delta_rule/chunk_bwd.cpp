// The delta rules' part of the chunked training pair (kernels/common/chunk_stages.h): the UT
// transform that turns a chunk's keys and values into W and U, and the gradients through it. The gated
// rule shares it; its decay enters through the shared stages' masks and exp(G).
//
//   A = strict_lower(diag(beta) K K^T * decay),  Tinv = (I + A)^-1,
//   W = Tinv (beta exp(G) k),  U = Tinv (beta v).
// Backward, with dW and dU given: dTinv = dW kt^T + dU vt^T; dkt = Tinv^T dW; dvt = Tinv^T dU;
// dA = -(Tinv^T dTinv Tinv^T) on A's strictly lower support; then the chain rule through A, kt and vt.
// The transform and its backward run in one kernel a chunk each (kernels/delta_rule/chunk_ut_fwd.cu,
// chunk_ut_bwd.cu) where deltabench's TF32 kernels may serve and they take the head dims; these ATen
// stages otherwise (fp32 inputs, K 256, the CPU).

#include "kernels/common/chunk.h"
#include "kernels/common/chunk_stages.h"

#ifdef DELTABENCH_HAVE_CUDA
#include "kernels/common/cuda_kernels.h"

#include <ATen/cuda/CUDAContext.h>
#endif

#include <ATen/ATen.h>

namespace deltabench::detail::chunked {
namespace {

// The transform's scaled operands and the strict decay mask, which the ATen stages read: kbeta = beta k,
// kt = beta exp(G) k, vt = beta v. The kernels read neither (they scale as they stage).
void operands(const Inputs& in, Prepared& p) {
  const auto beta = in.beta.unsqueeze(-1);
  p.decay_strict = chunk_decay_mask(in.G, kC, /*strict=*/true, in.q);
  p.kbeta = in.k * beta;
  p.kt = p.eG.defined() ? p.kbeta * p.eG : p.kbeta;
  p.vt = in.v * beta;
}

#ifdef DELTABENCH_HAVE_CUDA
const float* fp32_data(const at::Tensor& t) {
  TORCH_CHECK(t.scalar_type() == at::kFloat && t.is_contiguous(), "the delta rules' stages: an fp32 contiguous buffer expected");
  return t.data_ptr<float>();
}

float* fp32_data(at::Tensor& t) {
  TORCH_CHECK(t.scalar_type() == at::kFloat && t.is_contiguous(), "the delta rules' stages: an fp32 contiguous buffer expected");
  return t.data_ptr<float>();
}

// A chunk's inputs as both kernels read them, contiguous fp32.
struct KernelInputs {
  at::Tensor k, v, beta, G;

  explicit KernelInputs(const Inputs& in)
      : k(in.k.contiguous()),
        v(in.v.contiguous()),
        beta(in.beta.contiguous()),
        G(in.G.defined() ? in.G.contiguous() : at::Tensor()) {}

  // The sizes and the inputs of either kernel's parameters.
  template <typename Params>
  void into(Params& s) const {
    s.BH = k.size(0) * k.size(1);
    s.NT = k.size(2);
    s.K = k.size(-1);
    s.V = v.size(-1);
    s.k = fp32_data(k);
    s.v = fp32_data(v);
    s.beta = fp32_data(beta);
    s.g = G.defined() ? fp32_data(G) : nullptr;
  }
};

// By deltabench's kernel (kernels/delta_rule/chunk_ut_fwd.cu): A, Tinv, W and U.
void prepare_kernel(const Inputs& in, Prepared& p) {
  const KernelInputs x(in);
  auto cc = x.k.sizes().vec();
  cc.back() = kC;
  p.A = at::empty(cc, x.k.options());
  p.Tinv = at::empty(cc, x.k.options());
  p.W = at::empty_like(x.k);
  p.U = at::empty_like(x.v);
  cuda::ChunkUtForwardParams s;
  x.into(s);
  s.a = fp32_data(p.A);
  s.tinv = fp32_data(p.Tinv);
  s.w = fp32_data(p.W);
  s.u = fp32_data(p.U);
  cuda::chunk_ut_forward(s, at::cuda::getCurrentCUDAStream().stream());
}
#endif

void prepare(const Inputs& in, Prepared& p, bool kernels, bool tf32) {
#ifdef DELTABENCH_HAVE_CUDA
  if (kernels && tf32 && in.k.is_cuda() && cuda::chunk_ut_forward_supports(in.k.size(-1), in.v.size(-1))) {
    prepare_kernel(in, p);
    return;
  }
#endif
  (void)tf32;
  operands(in, p);
  p.A = at::matmul(p.kbeta, transposed(in.k)) * p.decay_strict;
  p.Tinv = unit_lower_inverse(p.A, kernels);
  p.W = at::matmul(p.Tinv, p.kt);
  p.U = at::matmul(p.Tinv, p.vt);
}

#ifdef DELTABENCH_HAVE_CUDA
// The same by deltabench's kernel (kernels/delta_rule/chunk_ut_bwd.cu): g.dk and g.dG updated in place.
void backward_kernel(const Inputs& in, const Prepared& p, const at::Tensor& dW, const at::Tensor& dU, Grads& g) {
  const KernelInputs x(in);
  const auto A = p.A.contiguous(), Tinv = p.Tinv.contiguous(), dw = dW.contiguous(), du = dU.contiguous();
  if (!g.dk.is_contiguous()) g.dk = g.dk.contiguous();
  if (g.dG.defined() && !g.dG.is_contiguous()) g.dG = g.dG.contiguous();
  g.dv = at::empty_like(x.v);
  g.dbeta = at::empty_like(x.beta);
  cuda::ChunkUtBackwardParams s;
  x.into(s);
  s.a = fp32_data(A);
  s.tinv = fp32_data(Tinv);
  s.dw = fp32_data(dw);
  s.du = fp32_data(du);
  s.dk = fp32_data(g.dk);
  s.dv = fp32_data(g.dv);
  s.dbeta = fp32_data(g.dbeta);
  s.dg = x.G.defined() ? fp32_data(g.dG) : nullptr;
  cuda::chunk_ut_backward(s, at::cuda::getCurrentCUDAStream().stream());
}
#endif

void backward(const Inputs& in, const Prepared& p, const at::Tensor& dW, const at::Tensor& dU, Grads& g,
              bool kernels) {
#ifdef DELTABENCH_HAVE_CUDA
  if (kernels && in.k.is_cuda() && cuda::chunk_ut_backward_supports(in.k.size(-1), in.v.size(-1))) {
    backward_kernel(in, p, dW, dU, g);
    return;
  }
#endif
  (void)kernels;
  if (!p.kbeta.defined()) {  // prepared by the kernel, which keeps no scaled operands
    Prepared with = p;
    operands(in, with);
    backward(in, with, dW, dU, g, false);
    return;
  }
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
