#pragma once
// The chunked training pair's data between its shared stages (kernels/common/chunk_train.cpp) and a
// family's own (kernels/<family>/chunk_bwd.cpp). Every family here walks the same chunk recurrence,
//   v_new = U - W S_c,   S_{c+1} = gamma S_c + K_end^T v_new,   O = (Q e^G) S_c + attn v_new,
// and differs only in how W and U come from the chunk's inputs: the UT transform for the delta rules
// (kernels/delta_rule/chunk_bwd.cpp; the gated rule's decay lives in the shared stages), U = v and no W
// for linear attention (kernels/linear_attn/chunk_bwd.cpp). A family of the same recurrence is a
// Stages of its own: its prepare and the gradients through it.

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace deltabench::detail::chunked {

inline constexpr int64_t kC = 64;  // the chunk (cuda::kChunkTrainSize)

// The inputs padded to whole chunks and chunked, [N, H, NT, C, *] ([N, H, NT, C] for beta and G), in
// the compute dtype: q times the scale; beta undefined for linear attention; G the within-chunk
// cumulative log decay, undefined without g.
struct Inputs {
  at::Tensor q, k, v, beta, G;
};

// What the forward computes before the state walk and the backward recomputes.
struct Prepared {
  // The shared stages':
  // [.., C, C] exp(G_i - G_j) on and below the diagonal (ones without g), zero above; undefined where
  // prepare_shared was told the stage kernels serve (they form it on chip; decay_mask gives it anyway).
  at::Tensor decay;
  at::Tensor eG;     // [.., C, 1] exp(G), or undefined
  at::Tensor tail;   // [.., C, 1] exp(G_C - G), or undefined
  at::Tensor gamma;  // [N, H, NT] exp(G_C), or undefined
  at::Tensor k_end;  // k exp(G_C - G): keys decayed to their chunk's end
  // The family's: U always, W where the state enters v_new (undefined: no W S term), and whatever its
  // backward needs. The delta rules: A = strict_lower(diag(beta) K K^T * decay), Tinv = (I + A)^-1,
  // kbeta = beta k, kt = beta exp(G) k, vt = beta v, W = Tinv kt, U = Tinv vt.
  at::Tensor W, U;
  at::Tensor decay_strict, A, Tinv, kbeta, kt, vt;
};

// The gradients of the chunked inputs: the shared stages fill dq and dk (through the output and the
// state walk) and dG; a family's backward adds its terms to dk and dG and sets dv and dbeta.
struct Grads {
  at::Tensor dk, dv, dbeta, dG;
};

struct Stages {
  // Sets p.U (and p.W, and what backward reads) from the inputs and the shared part of p. `kernels`:
  // the CUDA passes asked for; `tf32`: 16-bit inputs, whose products may take TF32 kernels.
  void (*prepare)(const Inputs& in, Prepared& p, bool kernels, bool tf32);
  // The gradients through W and U: dW (undefined where W is) and dU, the gradients of W and U. `kernels`:
  // deltabench's TF32 kernels may serve (16-bit inputs on CUDA, the CUDA passes asked for).
  void (*backward)(const Inputs& in, const Prepared& p, const at::Tensor& dW, const at::Tensor& dU, Grads& g,
                   bool kernels);
};

// The shared part of Prepared, from the inputs: decay (unless `decay` is false: the stage kernels serve),
// and with G eG, tail, gamma; k_end (k itself without G). A family's prepare fills the rest
// (kernels/common/chunk_train.cpp).
Prepared prepare_shared(const Inputs& in, bool decay = true);

// p.decay, or the mask formed from the inputs where prepare_shared left it out.
at::Tensor decay_mask(const Inputs& in, const Prepared& p);

// The gradients through the output O = (q e^G) h + (q k^T * decay) v_new and the state walk, given the
// walks' h, v_new, dh (the gradient of each chunk's end state) and dv_new, and the chunked dout: dq (of
// the scaled q), dk (before a family's terms), dG where there is a decay, and dW = -dv_new h^T where the
// family has a W. By deltabench's kernel (kernels/common/chunk_grads.cu, TF32 products) where `kernels`
// and `tf32` (16-bit inputs on CUDA) and it takes the head dims, else by batched ATen products; `kernel`
// says which ran.
struct WalkGrads {
  at::Tensor dq, dk, dG, dW;
  bool kernel = false;
};
WalkGrads walk_grads(const Inputs& in, const Prepared& p, const at::Tensor& h, const at::Tensor& v_new,
                     const at::Tensor& dout, const at::Tensor& dh, const at::Tensor& dv_new, bool kernels, bool tf32);

// What the backward walk reads of the chunked dout besides the state: dv_local = attn^T dout, attn =
// (q k^T) * decay, the gradient of v_new within its chunk, and qdo = (q e^G)^T dout [.., K, V]
// (contiguous). By deltabench's kernel (kernels/common/chunk_dout.cu) under the conditions of
// walk_grads, else batched ATen products; `kernel` says which ran.
struct DoutTerms {
  at::Tensor dv_local, qdo;
  bool kernel = false;
};
DoutTerms dout_terms(const Inputs& in, const Prepared& p, const at::Tensor& dout, bool kernels, bool tf32);

Stages delta_rule_stages();        // kernels/delta_rule/chunk_bwd.cpp: both delta rules
Stages linear_attention_stages();  // kernels/linear_attn/chunk_bwd.cpp

// (I + A)^-1 for strictly lower triangular A [.., C, C]: deltabench's kernel on CUDA in fp32 when
// `kernels`, else the triangular solver (kernels/common/chunk_train.cpp).
at::Tensor unit_lower_inverse(const at::Tensor& A, bool kernels);

inline at::Tensor transposed(const at::Tensor& x) { return x.transpose(-1, -2); }

// Batched products over the leading dims in one cuBLAS call each, so that a sum or a sign costs no pass
// of its own over the [.., C, *] operands (kernels/common/chunk_train.cpp):
at::Tensor mm(const at::Tensor& a, const at::Tensor& b, double alpha);           // alpha a b
at::Tensor mm_add(const at::Tensor& c, const at::Tensor& a, const at::Tensor& b);  // c + a b

}  // namespace deltabench::detail::chunked
