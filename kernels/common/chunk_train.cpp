#include "kernels/common/chunk_train.h"

#include "kernels/common/backend.h"
#include "kernels/common/chunk.h"
#include "kernels/common/chunk_stages.h"
#include "kernels/common/cuda_dispatch.h"
#include "kernels/common/packing.h"

#ifdef DELTABENCH_HAVE_CUDA
#include "kernels/common/cuda_kernels.h"
#include "kernels/common/kernel_dtype.h"
#include "kernels/common/sm90/forward.h"
#include "kernels/common/sm90/sm90_kernels.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#endif

#include <ATen/ATen.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <c10/util/Exception.h>
#include <c10/util/StringUtil.h>
#include <torch/autograd.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

namespace deltabench::detail {

namespace chunked {

// (I + A)^-1 for strictly lower triangular A [.., C, C]: deltabench's kernel on CUDA in fp32 (one
// block a chunk, forward substitution in registers), else the triangular solver.
at::Tensor unit_lower_inverse(const at::Tensor& A, bool kernels) {
#ifdef DELTABENCH_HAVE_CUDA
  if (kernels && A.is_cuda() && A.scalar_type() == at::kFloat) {
    const auto a = A.contiguous();
    auto out = at::empty_like(a);
    cuda::unit_lower_inverse(a.data_ptr<float>(), out.data_ptr<float>(), a.numel() / (kC * kC),
                             at::cuda::getCurrentCUDAStream().stream());
    return out;
  }
#endif
  (void)kernels;
  const auto eye = at::eye(kC, A.options()).expand_as(A);
  // unitriangular: the solver takes the unit diagonal of I + A as given and reads only A's strict part.
  return at::linalg_solve_triangular(A, eye, /*upper=*/false, /*left=*/true, /*unitriangular=*/true);
}

namespace {

at::Tensor batch_flat(const at::Tensor& t) { return t.flatten(0, t.dim() - 3); }

// The product's shape: a's leading dims, a's rows and b's columns.
std::vector<int64_t> product_shape(const at::Tensor& a, const at::Tensor& b) {
  auto shape = a.sizes().vec();
  shape.back() = b.size(-1);
  return shape;
}

}  // namespace

at::Tensor mm(const at::Tensor& a, const at::Tensor& b, double alpha) {
  auto out = at::empty(product_shape(a, b), a.options());
  // beta = 0: the uninitialised out is not read.
  batch_flat(out).baddbmm_(batch_flat(a), batch_flat(b), /*beta=*/0.0, alpha);
  return out;
}

at::Tensor mm_add(const at::Tensor& c, const at::Tensor& a, const at::Tensor& b) {
  return at::baddbmm(batch_flat(c), batch_flat(a), batch_flat(b)).view(product_shape(a, b));
}

Prepared prepare_shared(const Inputs& in, bool decay) {
  Prepared p;
  if (decay) p.decay = chunk_decay_mask(in.G, kC, /*strict=*/false, in.q);
  p.k_end = in.k;
  if (in.G.defined()) {
    const auto G_last = in.G.narrow(-1, kC - 1, 1);  // [N, H, NT, 1]
    p.eG = in.G.exp().unsqueeze(-1);
    p.tail = (G_last - in.G).exp().unsqueeze(-1);
    p.gamma = G_last.squeeze(-1).exp().contiguous();
    p.k_end = in.k * p.tail;
  }
  return p;
}

at::Tensor decay_mask(const Inputs& in, const Prepared& p) {
  return p.decay.defined() ? p.decay : chunk_decay_mask(in.G, kC, /*strict=*/false, in.q);
}

namespace {

#ifdef DELTABENCH_HAVE_CUDA
// The kernel's version of walk_grads: every operand fp32 and contiguous already (the walks' outputs and
// the chunked inputs are fresh allocations).
WalkGrads walk_grads_kernel(const Inputs& in, const Prepared& p, const at::Tensor& h, const at::Tensor& v_new,
                            const at::Tensor& dout, const at::Tensor& dh, const at::Tensor& dv_new) {
  const auto f32 = [](const at::Tensor& t) {
    TORCH_CHECK(t.scalar_type() == at::kFloat && t.is_contiguous(), "walk_grads: an fp32 contiguous buffer expected");
    return t.data_ptr<float>();
  };
  const auto q = in.q.contiguous(), k = in.k.contiguous(), G = in.G.defined() ? in.G.contiguous() : at::Tensor();
  const auto dout_c = dout.contiguous();
  WalkGrads g;
  g.dq = at::empty_like(q);
  g.dk = at::empty_like(q);
  if (p.W.defined()) g.dW = at::empty_like(q);
  if (G.defined()) g.dG = at::empty_like(G);
  cuda::ChunkGradsParams s;
  s.BH = q.size(0) * q.size(1);
  s.NT = q.size(2);
  s.K = q.size(-1);
  s.V = v_new.size(-1);
  s.q = f32(q);
  s.k = f32(k);
  s.g = G.defined() ? f32(G) : nullptr;
  s.h = f32(h);
  s.dh = f32(dh);
  s.v_new = f32(v_new);
  s.dv_new = f32(dv_new);
  s.dout = f32(dout_c);
  s.dq = f32(g.dq);
  s.dk = f32(g.dk);
  s.dw = g.dW.defined() ? f32(g.dW) : nullptr;
  s.dg = g.dG.defined() ? f32(g.dG) : nullptr;
  cuda::chunk_grads(s, at::cuda::getCurrentCUDAStream().stream());
  g.kernel = true;
  return g;
}
#endif

}  // namespace

DoutTerms dout_terms(const Inputs& in, const Prepared& p, const at::Tensor& dout, bool kernels, bool tf32) {
  DoutTerms d;
#ifdef DELTABENCH_HAVE_CUDA
  if (kernels && tf32 && in.q.is_cuda() && cuda::chunk_dout_supports(in.q.size(-1), dout.size(-1))) {
    const auto q = in.q.contiguous(), k = in.k.contiguous(), G = in.G.defined() ? in.G.contiguous() : at::Tensor();
    const auto dout_c = dout.contiguous();
    TORCH_CHECK(q.scalar_type() == at::kFloat && dout_c.scalar_type() == at::kFloat &&
                    (!G.defined() || G.scalar_type() == at::kFloat),
                "dout_terms: fp32 operands expected");
    const int64_t N = q.size(0), H = q.size(1), NT = q.size(2), K = q.size(-1), V = dout.size(-1);
    d.dv_local = at::empty_like(dout_c);
    d.qdo = at::empty({N, H, NT, K, V}, dout_c.options());
    cuda::ChunkDoutParams s;
    s.BH = N * H;
    s.NT = NT;
    s.K = K;
    s.V = V;
    s.q = q.data_ptr<float>();
    s.k = k.data_ptr<float>();
    s.g = G.defined() ? G.data_ptr<float>() : nullptr;
    s.dout = dout_c.data_ptr<float>();
    s.dv_local = d.dv_local.data_ptr<float>();
    s.qdo = d.qdo.data_ptr<float>();
    cuda::chunk_dout(s, at::cuda::getCurrentCUDAStream().stream());
    d.kernel = true;
    return d;
  }
#endif
  (void)kernels;
  (void)tf32;
  // O = (q e^G) h + attn v_new, attn = (q K^T) * decay.
  const auto attn = at::matmul(in.q, transposed(in.k)) * decay_mask(in, p);
  d.dv_local = at::matmul(transposed(attn), dout);
  const auto qg = p.eG.defined() ? in.q * p.eG : in.q;
  // (at::matmul may hand back a transposed result: the walks read a contiguous one.)
  d.qdo = at::matmul(transposed(qg), dout).contiguous();
  return d;
}

WalkGrads walk_grads(const Inputs& in, const Prepared& p, const at::Tensor& h, const at::Tensor& v_new,
                     const at::Tensor& dout, const at::Tensor& dh, const at::Tensor& dv_new, bool kernels, bool tf32) {
#ifdef DELTABENCH_HAVE_CUDA
  if (kernels && tf32 && in.q.is_cuda() && cuda::chunk_grads_supports(in.q.size(-1), v_new.size(-1))) {
    return walk_grads_kernel(in, p, h, v_new, dout, dh, dv_new);
  }
#endif
  (void)kernels;
  (void)tf32;
  // Gradients of q (scaled) and k through O and the state update; of the log decay G.
  WalkGrads g;
  const auto d_attn = at::matmul(dout, transposed(v_new)) * decay_mask(in, p);
  auto dq_inter = at::matmul(dout, transposed(h));
  if (p.eG.defined()) dq_inter = dq_inter * p.eG;
  g.dq = mm_add(dq_inter, d_attn, in.k);
  const auto dk_attn = at::matmul(transposed(d_attn), in.q);
  at::Tensor dk_end;  // through the state update, before the tail decay (the gated rule's dG needs it)
  if (p.tail.defined()) {
    dk_end = at::matmul(v_new, transposed(dh));
    g.dk = at::addcmul(dk_attn, dk_end, p.tail);
  } else {
    g.dk = mm_add(dk_attn, v_new, transposed(dh));
  }
  if (in.G.defined()) {
    TORCH_CHECK(dk_end.defined(), "chunk_train: a decay without its tail");
    const auto end_terms = (dk_end * p.k_end).sum(-1);  // [N, H, NT, C]
    g.dG = (g.dq * in.q).sum(-1) - (dk_attn * in.k).sum(-1) - end_terms;
    const auto last = end_terms.sum(-1) + p.gamma * (h * dh).sum({-1, -2});  // the chunk's G_C
    g.dG.select(-1, kC - 1).add_(last);
  }
  // Through v_new = U - W S_c to the family's W.
  if (p.W.defined()) g.dW = mm(dv_new, transposed(h), -1.0);
  return g;
}

}  // namespace chunked

namespace {

using chunked::kC;
using chunked::Prepared;
using chunked::transposed;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// What the Function needs besides the tensors.
struct Config {
  Family family = Family::kDeltaRule;
  SequenceShape shape;
  at::Tensor cu_seqlens;  // as the op was given it (undefined for batch rows)
  double scale = 1.0;
  bool final_state = false;
  bool fused_forward = true;  // the forward by the fused chunk kernel, else by the ATen stages
  bool state_kernels = true;  // the sequential passes by chunk_state.cu, else by ATen loops
  bool stage_kernels = true;  // the chunk-parallel stages by the TF32 kernels where they serve (16-bit inputs)
  int64_t segment_length = 0; // the fused forward's segment-parallel pass (SequenceOptions::kernel_segment_length)
};

std::atomic<bool> g_stage_kernels{true};

using Chunked = chunked::Inputs;

// x in `dtype` and contiguous, in one copy. (x.to(dtype, ..., MemoryFormat::Contiguous) hands back x itself,
// strided, where the dtype already matches and x's strides suggest the contiguous format, as a transposed
// view's do: the fp32 training step of a model whose q came through the short convolution met that.)
at::Tensor contiguous_in(const at::Tensor& x, at::ScalarType dtype) {
  if (x.scalar_type() == dtype && x.is_contiguous()) return x;
  auto out = at::empty(x.sizes(), x.options().dtype(dtype));
  out.copy_(x);
  return out;
}

// [N, A, B, D] -> [N, B, A, D] contiguous in `dtype`, times `scale`: one pass by deltabench's kernel on
// CUDA (kernels/common/chunk_layout.cu) where the dtypes and strides suit it, else by ATen.
at::Tensor swapped_rows(const at::Tensor& x, at::ScalarType dtype, double scale) {
#ifdef DELTABENCH_HAVE_CUDA
  const auto src_dtype = kernel_dtype(x.scalar_type()), dst_dtype = kernel_dtype(dtype);
  if (x.is_cuda() && x.dim() == 4 && x.stride(3) == 1 && src_dtype && dst_dtype) {
    cuda::SwapRows s;
    s.src = x.data_ptr();
    s.src_dtype = *src_dtype;
    s.stride_n = x.stride(0);
    s.stride_a = x.stride(1);
    s.stride_b = x.stride(2);
    s.dst_dtype = *dst_dtype;
    s.N = x.size(0);
    s.A = x.size(1);
    s.B = x.size(2);
    s.D = x.size(3);
    s.scale = static_cast<float>(scale);
    if (cuda::swap_rows_supports(s)) {  // the output, a fresh allocation, is aligned: checked on the input alone
      auto out = at::empty({x.size(0), x.size(2), x.size(1), x.size(3)}, x.options().dtype(dtype));
      s.dst = out.data_ptr();
      const c10::cuda::CUDAGuard guard(x.device());
      cuda::swap_rows(s, at::cuda::getCurrentCUDAStream().stream());
      return out;
    }
  }
#endif
  auto out = contiguous_in(x.transpose(1, 2), dtype);
  return scale == 1.0 ? out : out * scale;
}

// The dtype conversion and the chunk layout in one copy (two passes over the inputs otherwise), times
// `scale` for [B, T, H, D] inputs.
at::Tensor in_chunks(const at::Tensor& x, const SequenceShape& shape, at::ScalarType dtype, double scale = 1.0) {
  const auto rows = pack_sequences(x, shape, padded_length(shape, kC));  // [N, Tp, H, *]
  const int64_t N = rows.size(0), NT = rows.size(1) / kC, H = rows.size(2);
  if (rows.dim() == 4) return swapped_rows(rows, dtype, scale).view({N, H, NT, kC, rows.size(3)});
  TORCH_CHECK(scale == 1.0, "in_chunks: a scale applies to [B, T, H, D] inputs only");
  return contiguous_in(rows.view({N, NT, kC, H}).permute({0, 3, 1, 2}), dtype);
}

// Inverse of in_chunks: [N, H, NT, C, *] (or [N, H, NT, C]) back to [B, T, H, *] in `dtype`, one copy,
// times `scale` for [N, H, NT, C, D].
at::Tensor out_of_chunks(const at::Tensor& x, const SequenceShape& shape, at::ScalarType dtype, double scale = 1.0) {
  if (x.dim() == 5) {
    const auto rows = swapped_rows(x.flatten(2, 3), dtype, scale);  // [N, Tp, H, D]
    return unpack_sequences(rows, shape).contiguous();
  }
  TORCH_CHECK(scale == 1.0, "out_of_chunks: a scale applies to [N, H, NT, C, D] only");
  const auto rows = from_chunks(x.unsqueeze(-1)).squeeze(-1);
  return contiguous_in(unpack_sequences(rows, shape), dtype);
}

Chunked chunk_inputs(const Config& cfg, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const at::Tensor& beta, const at::Tensor& g) {
  const auto dtype = compute_dtype(q.scalar_type());
  Chunked c;
  c.q = in_chunks(q, cfg.shape, dtype, cfg.scale);
  c.k = in_chunks(k, cfg.shape, dtype);
  c.v = in_chunks(v, cfg.shape, dtype);
  if (beta.defined()) c.beta = in_chunks(beta, cfg.shape, dtype);
  if (g.defined()) c.G = in_chunks(g, cfg.shape, dtype).cumsum(-1);
  return c;
}

// The family's part of the chunk algorithm (kernels/<family>/chunk_bwd.cpp); the gated delta rule's is the
// delta rule's.
chunked::Stages stages_of(Family family) {
  return family == Family::kLinearAttention ? chunked::linear_attention_stages() : chunked::delta_rule_stages();
}

// Whether the stage kernels serve these inputs (`kernels` and `tf32` allow them; chunk_dout, chunk_grads
// and the UT kernels take the same head dims: K 32, 64 or 128, V a multiple of 16).
bool stage_kernels_serve(const Chunked& c, bool kernels, bool tf32) {
#ifdef DELTABENCH_HAVE_CUDA
  return kernels && tf32 && c.q.is_cuda() && cuda::chunk_grads_supports(c.q.size(-1), c.v.size(-1));
#else
  (void)c, (void)kernels, (void)tf32;
  return false;
#endif
}

// What the forward computes before the state walk (the backward recomputes all of it: FLA saves the
// inverse, this version recomputes it too, one small kernel): the shared part, then the family's.
// `tf32`: the stage kernels may serve. Where they do they form the decay mask on chip, so it is not formed
// here; where they do not (K 256, fp32, the CPU) it is formed once here for every ATen stage (until
// 2026-12-05 each ATen stage at K 256 formed its own when the kernels were allowed).
Prepared prepare(Family family, const Chunked& c, bool kernels, bool tf32) {
  Prepared p = chunked::prepare_shared(c, /*decay=*/!stage_kernels_serve(c, kernels, tf32));
  stages_of(family).prepare(c, p, kernels, tf32);
  return p;
}

// [N, H, NT, C, D] as the [BH, NT, C, D] fp32 buffer the CUDA passes read (contiguous already).
#ifdef DELTABENCH_HAVE_CUDA
// t itself where its data starts on a 32-byte boundary (WMMA's tiles in global memory need it), else a copy.
at::Tensor aligned32(const at::Tensor& t) {
  return reinterpret_cast<std::uintptr_t>(t.data_ptr()) % 32 == 0 ? t : t.clone();
}

const float* fp32_ptr(const at::Tensor& t) {
  if (!t.defined()) return nullptr;
  TORCH_CHECK(t.scalar_type() == at::kFloat && t.is_contiguous(), "chunk_train: an fp32 contiguous buffer expected");
  return t.data_ptr<float>();
}

// What both walks read the same way: sizes, W, the keys decayed to their chunk's end, the decay.
cuda::ChunkStateParams walk_params(const Prepared& p, bool tf32) {
  cuda::ChunkStateParams s;
  s.BH = p.U.size(0) * p.U.size(1);
  s.NT = p.U.size(2);
  s.K = p.k_end.size(-1);
  s.V = p.U.size(-1);
  s.w = fp32_ptr(p.W);
  s.k = fp32_ptr(p.k_end);
  s.gamma = fp32_ptr(p.gamma);
  s.tf32 = tf32;
  return s;
}
#endif

// The forward pass over the chunks: the state at every chunk's start h [N, H, NT, K, V], v_new
// [N, H, NT, C, V] and the final state (h0 undefined: zeros).
std::tuple<at::Tensor, at::Tensor, at::Tensor> state_forward(const Prepared& p, const at::Tensor& h0,
                                                             bool kernels, bool tf32) {
  const int64_t N = p.U.size(0), H = p.U.size(1), NT = p.U.size(2), K = p.k_end.size(-1), V = p.U.size(-1);
  if (kernels) {
#ifdef DELTABENCH_HAVE_CUDA
    const auto f32 = p.U.options();
    auto h = at::empty({N, H, NT, K, V}, f32), v_new = at::empty({N, H, NT, kC, V}, f32);
    auto ht = at::empty({N, H, K, V}, f32);
    const auto h0c = h0.defined() ? aligned32(h0.to(at::kFloat).contiguous()) : at::Tensor();
    auto s = walk_params(p, tf32);
    s.u = fp32_ptr(p.U);
    s.h0 = fp32_ptr(h0c);
    s.h = h.data_ptr<float>();
    s.v_new = v_new.data_ptr<float>();
    s.ht = ht.data_ptr<float>();
    cuda::chunk_state_forward(s, at::cuda::getCurrentCUDAStream().stream());
    return {h, v_new, ht};
#else
    TORCH_CHECK(false, "chunk_train: this build has no CUDA kernels");
#endif
  }
  at::Tensor S = h0.defined() ? h0.to(p.U.scalar_type()) : at::zeros({N, H, K, V}, p.U.options());
  std::vector<at::Tensor> states, new_values;
  for (int64_t c = 0; c < NT; ++c) {
    states.push_back(S);
    auto vn = p.U.select(2, c);
    if (p.W.defined()) vn = vn - at::matmul(p.W.select(2, c), S);
    new_values.push_back(vn);
    if (p.gamma.defined()) S = S * p.gamma.select(2, c).unsqueeze(-1).unsqueeze(-1);
    S = S + at::matmul(p.k_end.select(2, c).transpose(-1, -2), vn);
  }
  return {at::stack(states, 2), at::stack(new_values, 2), S};
}

// The backward pass over the chunks, c from last to first: the gradient of the state at every chunk's
// end dh [N, H, NT, K, V], of v_new [N, H, NT, C, V] and of the initial state. The walk's term
// (q exp(G))^T dout needs no state: it comes whole as qdo [N, H, NT, K, V], with dv_local (dout_terms).
std::tuple<at::Tensor, at::Tensor, at::Tensor> state_backward(const Prepared& p, const at::Tensor& qdo,
                                                              const at::Tensor& dv_local, const at::Tensor& dht,
                                                              bool kernels, bool tf32) {
  const int64_t N = p.U.size(0), H = p.U.size(1), NT = p.U.size(2), K = p.k_end.size(-1), V = p.U.size(-1);
  if (kernels) {
#ifdef DELTABENCH_HAVE_CUDA
    const auto f32 = p.U.options();
    auto dh = at::empty({N, H, NT, K, V}, f32), dv_new = at::empty({N, H, NT, kC, V}, f32);
    auto dh0 = at::empty({N, H, K, V}, f32);
    const auto dhtc = dht.defined() ? aligned32(dht.to(at::kFloat).contiguous()) : at::Tensor();
    const auto dvl = dv_local.contiguous();
    auto s = walk_params(p, tf32);
    const auto qdoc = aligned32(qdo);
    s.qdo = fp32_ptr(qdoc);
    s.dv_local = fp32_ptr(dvl);
    s.dht = fp32_ptr(dhtc);
    s.dh = dh.data_ptr<float>();
    s.dv_new = dv_new.data_ptr<float>();
    s.dh0 = dh0.data_ptr<float>();
    cuda::chunk_state_backward(s, at::cuda::getCurrentCUDAStream().stream());
    return {dh, dv_new, dh0};
#else
    TORCH_CHECK(false, "chunk_train: this build has no CUDA kernels");
#endif
  }
  at::Tensor dS = dht.defined() ? dht.to(p.U.scalar_type()) : at::zeros({N, H, K, V}, p.U.options());
  std::vector<at::Tensor> grads(NT), dvs(NT);
  for (int64_t c = NT - 1; c >= 0; --c) {
    grads[c] = dS;
    const auto dvn = dv_local.select(2, c) + at::matmul(p.k_end.select(2, c), dS);
    dvs[c] = dvn;
    if (p.gamma.defined()) dS = dS * p.gamma.select(2, c).unsqueeze(-1).unsqueeze(-1);
    dS = dS + qdo.select(2, c);
    if (p.W.defined()) dS = dS - at::matmul(p.W.select(2, c).transpose(-1, -2), dvn);
  }
  return {at::stack(grads, 2), at::stack(dvs, 2), dS};
}

// The batched products of 16-bit inputs on CUDA run in TF32 (10 significant bits, finer than the bf16
// operands of FLA's kernels); fp32 and fp64 inputs keep full precision. Restores the setting on exit.
bool tf32_products(const at::Tensor& input) {
  return input.is_cuda() && (input.scalar_type() == at::kBFloat16 || input.scalar_type() == at::kHalf);
}

class Tf32Products {
 public:
  explicit Tf32Products(const at::Tensor& input) : on_(tf32_products(input)) {
    if (!on_) return;
    was_ = at::globalContext().allowTF32CuBLAS();
    at::globalContext().setAllowTF32CuBLAS(true);
  }
  ~Tf32Products() {
    if (on_) at::globalContext().setAllowTF32CuBLAS(was_);
  }
  Tf32Products(const Tf32Products&) = delete;
  Tf32Products& operator=(const Tf32Products&) = delete;

 private:
  bool on_ = false, was_ = false;
};

const at::Tensor& or_undefined(const std::optional<at::Tensor>& t) {
  static const at::Tensor undefined;
  return t.has_value() ? *t : undefined;
}

class ChunkTrain : public torch::autograd::Function<ChunkTrain> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const std::optional<at::Tensor>& beta_in, const std::optional<at::Tensor>& g_in,
                               const std::optional<at::Tensor>& h0_in, const Config& cfg) {
    const auto &beta = or_undefined(beta_in), &g = or_undefined(g_in), &h0 = or_undefined(h0_in);
    at::Tensor o, ht;
    if (cfg.fused_forward) {
      SequenceOptions options;
      options.scale = cfg.scale;
      options.initial_state = h0;
      options.output_final_state = cfg.final_state;
      options.cu_seqlens = cfg.cu_seqlens;
      options.kernel_segment_length = cfg.segment_length;
      auto out = cuda_chunk_forward(cfg.family, cfg.shape, q, k, v, beta, g, options);
      o = out.o;
      ht = out.final_state;
    } else {
      // The stages compute in fp32 whatever autocast says: under it at::matmul would hand the walks bf16.
      const c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
      const Tf32Products tf32(q);
      const auto c = chunk_inputs(cfg, q, k, v, beta, g);
      const auto p = prepare(cfg.family, c, cfg.state_kernels, cfg.stage_kernels && tf32_products(q));
      const auto [h, v_new, S] = state_forward(p, h0, cfg.state_kernels, tf32_products(q));
      const auto qg = p.eG.defined() ? c.q * p.eG : c.q;
      const auto attn = at::matmul(c.q, transposed(c.k)) * chunked::decay_mask(c, p);
      o = out_of_chunks(at::matmul(qg, h) + at::matmul(attn, v_new), cfg.shape, v.scalar_type());
      if (cfg.final_state) ht = S;
    }
    ctx->save_for_backward({q, k, v, beta, g, h0});
    ctx->saved_data["family"] = static_cast<int64_t>(cfg.family);
    ctx->saved_data["B"] = cfg.shape.B;
    ctx->saved_data["T"] = cfg.shape.T;
    ctx->saved_data["N"] = cfg.shape.N;
    ctx->saved_data["H"] = cfg.shape.H;
    ctx->saved_data["K"] = cfg.shape.K;
    ctx->saved_data["V"] = cfg.shape.V;
    ctx->saved_data["starts"] = cfg.shape.seq_starts;
    ctx->saved_data["scale"] = cfg.scale;
    ctx->saved_data["state_kernels"] = cfg.state_kernels;
    ctx->saved_data["stage_kernels"] = cfg.stage_kernels;
    if (!cfg.final_state) return {o};
    return {o, ht};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &beta = saved[3], &g = saved[4], &h0 = saved[5];
    Config cfg;
    cfg.family = static_cast<Family>(ctx->saved_data["family"].toInt());
    cfg.shape.B = ctx->saved_data["B"].toInt();
    cfg.shape.T = ctx->saved_data["T"].toInt();
    cfg.shape.N = ctx->saved_data["N"].toInt();
    cfg.shape.H = ctx->saved_data["H"].toInt();
    cfg.shape.K = ctx->saved_data["K"].toInt();
    cfg.shape.V = ctx->saved_data["V"].toInt();
    cfg.shape.seq_starts = ctx->saved_data["starts"].toIntVector();
    cfg.scale = ctx->saved_data["scale"].toDouble();
    const bool kernels = ctx->saved_data["state_kernels"].toBool();
    // The TF32 stage kernels: 16-bit inputs, the CUDA passes, and not set off when the op was called.
    const bool stage_kernels = kernels && ctx->saved_data["stage_kernels"].toBool() && tf32_products(q);
    const auto& shape = cfg.shape;
    const auto dtype = compute_dtype(q.scalar_type());
    const c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);  // fp32 stages, as above
    const Tf32Products tf32(q);

    const auto c = chunk_inputs(cfg, q, k, v, beta, g);
    const auto p = prepare(cfg.family, c, kernels, stage_kernels);
    const auto [h, v_new, S_end] = state_forward(p, h0, kernels, tf32_products(q));
    const auto dout = grads[0].defined() ? in_chunks(grads[0], shape, dtype) : at::zeros_like(v_new);
    const auto dht = grads.size() > 1 && grads[1].defined() ? grads[1].to(dtype) : at::Tensor();

    const auto terms = chunked::dout_terms(c, p, dout, stage_kernels, stage_kernels);
    const auto [dh, dv_new, dh0] = state_backward(p, terms.qdo, terms.dv_local, dht, kernels, tf32_products(q));

    // Through O and the state walk to q, k, G and the family's W; then through W and U.
    const auto w = chunked::walk_grads(c, p, h, v_new, dout, dh, dv_new, stage_kernels, stage_kernels);
    const auto& dq = w.dq;
    chunked::Grads d;
    d.dk = w.dk;
    d.dG = w.dG;
    stages_of(cfg.family).backward(c, p, w.dW, dv_new, d, stage_kernels);

    const auto& dG = d.dG;
    const auto dg = dG.defined() ? dG.flip(-1).cumsum(-1).flip(-1) : at::Tensor();
    return {out_of_chunks(dq, shape, q.scalar_type(), cfg.scale),
            out_of_chunks(d.dk, shape, k.scalar_type()),
            out_of_chunks(d.dv, shape, v.scalar_type()),
            beta.defined() ? out_of_chunks(d.dbeta, shape, beta.scalar_type()) : at::Tensor(),
            g.defined() ? out_of_chunks(dg, shape, g.scalar_type()) : at::Tensor(),
            h0.defined() ? dh0.to(h0.scalar_type()) : at::Tensor(),
            at::Tensor()};
  }
};

double scale_of(const SequenceShape& shape, const SequenceOptions& options) {
  return options.scale.value_or(1.0 / std::sqrt(static_cast<double>(shape.K)));
}

SequenceOutput apply(const Config& cfg, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const at::Tensor& beta, const at::Tensor& g, const SequenceOptions& options) {
  const auto optional = [](const at::Tensor& t) { return t.defined() ? std::optional<at::Tensor>(t) : std::nullopt; };
  auto outs = ChunkTrain::apply(q, k, v, optional(beta), optional(g), optional(options.initial_state), cfg);
  SequenceOutput out;
  out.o = outs[0];
  if (cfg.final_state) out.final_state = outs.at(1);
  out.backend = Backend::kKernel;
  return out;
}

Config config_of(Family family, const SequenceShape& shape, const SequenceOptions& options) {
  Config cfg;
  cfg.stage_kernels = g_stage_kernels.load();
  cfg.family = family;
  cfg.shape = shape;
  cfg.scale = scale_of(shape, options);
  cfg.final_state = options.output_final_state;
  cfg.cu_seqlens = options.cu_seqlens;
  cfg.segment_length = options.kernel_segment_length;
  return cfg;
}

#ifdef DELTABENCH_HAVE_CUDA
// The call on the sm_90a training op: beta, g and the initial state in fp32, the gradients through the
// conversions to the caller's tensors by autograd.
SequenceOutput sm90_apply(Family family, const SequenceShape& shape, const at::Tensor& q, const at::Tensor& k,
                          const at::Tensor& v, const at::Tensor& beta, const at::Tensor& g, const SequenceOptions& options) {
  using sm90::contiguous_aligned;
  const auto cu = options.cu_seqlens.defined() ? options.cu_seqlens.to(q.options().dtype(at::kLong)) : at::Tensor();
  auto r = sm90::chunk_train(family, contiguous_aligned(q), contiguous_aligned(k), contiguous_aligned(v),
                             contiguous_aligned(beta, at::kFloat), contiguous_aligned(g, at::kFloat),
                             contiguous_aligned(options.initial_state, at::kFloat), cu, scale_of(shape, options),
                             options.output_final_state, options.kernel_segment_length,
                             /*keep_ut=*/!options.kernel_recompute_ut,
                             /*keep_state=*/!options.kernel_recompute_ut && !options.kernel_recompute_state);
  count_sm90_train_call();
  SequenceOutput out;
  out.o = std::move(r.o);
  out.final_state = std::move(r.final_state);
  out.backend = Backend::kKernel;
  return out;
}
#endif

}  // namespace

std::string chunk_train_unavailable(const SequenceShape& shape, const at::Tensor& q) {
#ifdef DELTABENCH_HAVE_CUDA
  if (!q.is_cuda()) return c10::str("the tensors are on ", q.device().str(), ", and the kernel runs on CUDA");
  if (!kernel_dtype(q.scalar_type())) {
    return c10::str("the inputs are ", c10::toString(q.scalar_type()), ", and the kernel takes bf16, fp16 or fp32");
  }
  if (!cuda::chunk_state_supports(shape.K, shape.V)) {
    return c10::str("K = ", shape.K, " and V = ", shape.V,
                    ", and the chunked training kernels take K of 32, 64, 128 or 256 and V a multiple of 16");
  }
  return {};
#else
  (void)shape;
  (void)q;
  return "this build of deltabench has no CUDA kernels (nvcc was not found when it was configured)";
#endif
}

void set_chunk_stage_kernels(bool on) { g_stage_kernels.store(on); }

bool chunk_stage_kernels() { return g_stage_kernels.load(); }

bool chunk_train_fuses_forward(const SequenceShape& shape) {
#ifdef DELTABENCH_HAVE_CUDA
  return cuda::chunk_forward_supports(shape.K, shape.V);
#else
  (void)shape;
  return false;
#endif
}

SequenceOutput chunk_train(Family family, const SequenceShape& shape, const at::Tensor& q, const at::Tensor& k,
                           const at::Tensor& v, const at::Tensor& beta, const at::Tensor& g,
                           const SequenceOptions& options) {
  const auto why = chunk_train_unavailable(shape, q);
  TORCH_CHECK(why.empty(), "chunk_train: ", why);
#ifdef DELTABENCH_HAVE_CUDA
  const c10::cuda::CUDAGuard guard(q.device());
  if (sm90_train() && sm90::serves(family, shape.K, shape.V, shape.N * shape.H, q.scalar_type(), true)) {
    return sm90_apply(family, shape, q, k, v, beta, g, options);
  }
#endif
  auto cfg = config_of(family, shape, options);
  // The fused forward where it takes the head dims (K and V of 64 or 128), else the stages (fp32, the
  // walk on the GPU). Linear attention's fused forward rounds its operands to the input's dtype (its state
  // grows with T and may leave fp16's range), and q S0 alone at T = 1 came to a relative RMS error of
  // 0.0030 in bf16 on the H200 (4a8a21d), at FLA's bound of 0.003: with an initial state its training
  // forward takes the stages in fp32. Without one (every model's training step) the rounded S0 is not
  // there, and the fused forward is the one the forward tests hold to the bounds at every T.
  cfg.fused_forward = chunk_train_fuses_forward(shape) &&
                      (family != Family::kLinearAttention || !options.initial_state.defined());
  return apply(cfg, q, k, v, beta, g, options);
}

SequenceOutput chunk_train_stages(Family family, const SequenceShape& shape, const at::Tensor& q,
                                  const at::Tensor& k, const at::Tensor& v, const at::Tensor& beta,
                                  const at::Tensor& g, const SequenceOptions& options, bool state_kernels) {
  TORCH_CHECK(!state_kernels || q.is_cuda(), "chunk_train_stages: the CUDA state passes need CUDA tensors, got ",
              q.device().str());
  auto cfg = config_of(family, shape, options);
  cfg.fused_forward = false;
  cfg.state_kernels = state_kernels;
  auto out = apply(cfg, q, k, v, beta, g, options);
  out.backend = state_kernels ? Backend::kKernel : Backend::kReference;
  return out;
}

}  // namespace deltabench::detail
