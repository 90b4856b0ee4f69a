#include "kernels/common/recurrent_train.h"

#ifdef DELTABENCH_HAVE_CUDA
#include "kernels/common/cuda_kernels.h"
#include "kernels/common/kernel_dtype.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/autograd.h>
#endif

#include <c10/util/Exception.h>
#include <c10/util/StringUtil.h>

#include <algorithm>
#include <cmath>
#include <utility>

namespace deltabench::detail {

#ifdef DELTABENCH_HAVE_CUDA
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

float* data_or_null(const at::Tensor& t) { return t.defined() ? t.data_ptr<float>() : nullptr; }

// What both passes share: sizes, pointers to the inputs, the sequences' starts.
struct Setup {
  cuda::RecurrentTrainParams p;
  at::Tensor q, k, v, beta, g, starts;
};

Setup setup(int64_t family, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& beta,
            const at::Tensor& g, const at::Tensor& starts, int64_t N, int64_t max_len, double scale) {
  Setup s;
  s.q = q.contiguous();
  s.k = k.contiguous();
  s.v = v.contiguous();
  s.beta = beta.defined() ? beta.to(at::kFloat).contiguous() : at::Tensor();
  s.g = g.defined() ? g.to(at::kFloat).contiguous() : at::Tensor();
  s.starts = starts;
  auto& p = s.p;
  p.family = static_cast<Family>(family);
  const auto dtype = kernel_dtype(q.scalar_type());
  TORCH_CHECK(dtype, "recurrent_train: the inputs are ", q.scalar_type(), ", and the kernel takes bf16, fp16 or fp32");
  p.dtype = *dtype;
  p.q = s.q.data_ptr();
  p.k = s.k.data_ptr();
  p.v = s.v.data_ptr();
  p.beta = data_or_null(s.beta);
  p.g = data_or_null(s.g);
  p.seq_starts = starts.data_ptr<int64_t>();
  p.N = N;
  p.H = q.size(2);
  p.K = q.size(3);
  p.V = v.size(3);
  p.tokens = q.size(0) * q.size(1);
  p.max_segments = (max_len + cuda::kRecurrentSegment - 1) / cuda::kRecurrentSegment;
  p.scale = static_cast<float>(scale);
  return s;
}

// Inputs: q, k, v [B, T, H, *], beta, g [B, T, H] (either may be undefined), h0 [N, H, K, V] fp32 or
// undefined; starts [N + 1] int64 on the device. Outputs: o, and the final state (undefined unless
// asked for).
class RecurrentTrain : public torch::autograd::Function<RecurrentTrain> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const at::Tensor& beta_in, const at::Tensor& g_in, const at::Tensor& h0_in,
                               const at::Tensor& starts, int64_t family, int64_t N, int64_t max_len, double scale,
                               bool final_state) {
    // An absent beta, g or h0 comes as an empty placeholder: autograd's Function takes defined tensors only.
    const auto present = [](const at::Tensor& t) { return t.numel() > 0 ? t : at::Tensor(); };
    const auto beta = present(beta_in), g = present(g_in), h0 = present(h0_in);
    const c10::cuda::CUDAGuard guard(q.device());
    auto s = setup(family, q, k, v, beta, g, starts, N, max_len, scale);
    const auto f32 = q.options().dtype(at::kFloat);
    const auto h0c = h0.defined() ? h0.to(at::kFloat).contiguous() : at::Tensor();
    auto checkpoints = at::empty({N, s.p.H, std::max<int64_t>(1, s.p.max_segments), s.p.K, s.p.V}, f32);
    auto o = at::empty_like(s.v);
    auto ht = final_state ? at::empty({N, s.p.H, s.p.K, s.p.V}, f32) : at::Tensor();
    s.p.h0 = data_or_null(h0c);
    s.p.checkpoints = checkpoints.data_ptr<float>();
    s.p.o = o.data_ptr();
    s.p.ht = data_or_null(ht);
    cuda::recurrent_train_forward(s.p, at::cuda::getCurrentCUDAStream().stream());
    ctx->save_for_backward({s.q, s.k, s.v, s.beta, s.g, starts, checkpoints});
    ctx->saved_data["family"] = family;
    ctx->saved_data["N"] = N;
    ctx->saved_data["max_len"] = max_len;
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["beta_dtype"] = static_cast<int64_t>(beta.defined() ? beta.scalar_type() : at::kFloat);
    ctx->saved_data["g_dtype"] = static_cast<int64_t>(g.defined() ? g.scalar_type() : at::kFloat);
    ctx->saved_data["h0"] = h0.defined();
    ctx->saved_data["h0_dtype"] = static_cast<int64_t>(h0.defined() ? h0.scalar_type() : at::kFloat);
    if (!final_state) return {o};
    return {o, ht};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &beta = saved[3], &g = saved[4], &starts = saved[5];
    auto checkpoints = saved[6];
    const c10::cuda::CUDAGuard guard(q.device());
    const int64_t N = ctx->saved_data["N"].toInt();
    auto s = setup(ctx->saved_data["family"].toInt(), q, k, v, beta, g, starts, N, ctx->saved_data["max_len"].toInt(),
                   ctx->saved_data["scale"].toDouble());
    const auto f32 = q.options().dtype(at::kFloat);
    const auto& p = s.p;
    const int64_t slices = cuda::recurrent_train_slices(p.V);
    const auto dout = grads[0].defined() ? grads[0].to(q.scalar_type()).contiguous() : at::zeros_like(v);
    const auto dht =
        grads.size() > 1 && grads[1].defined() ? grads[1].to(at::kFloat).contiguous() : at::Tensor();
    auto dq = at::empty({slices, q.size(0), q.size(1), p.H, p.K}, f32);
    auto dk = at::empty({slices, q.size(0), q.size(1), p.H, p.K}, f32);
    auto dv = at::empty({v.size(0), v.size(1), p.H, p.V}, f32);
    auto dbeta = beta.defined() ? at::empty({slices, q.size(0), q.size(1), p.H}, f32) : at::Tensor();
    auto dg = g.defined() ? at::empty({cuda::recurrent_train_dg_rows(p.V), q.size(0), q.size(1), p.H}, f32)
                          : at::Tensor();
    const bool want_dh0 = ctx->saved_data["h0"].toBool();
    auto dh0 = want_dh0 ? at::empty({N, p.H, p.K, p.V}, f32) : at::Tensor();
    s.p.checkpoints = checkpoints.data_ptr<float>();
    s.p.dout = dout.data_ptr();
    s.p.dht = data_or_null(dht);
    s.p.dq_partial = dq.data_ptr<float>();
    s.p.dk_partial = dk.data_ptr<float>();
    s.p.dv = dv.data_ptr<float>();
    s.p.dbeta_partial = data_or_null(dbeta);
    s.p.dg_partial = data_or_null(dg);
    s.p.dh0 = data_or_null(dh0);
    cuda::recurrent_train_backward(s.p, at::cuda::getCurrentCUDAStream().stream());
    const auto as = [&](const at::Tensor& t, const char* key) {
      return t.to(static_cast<at::ScalarType>(ctx->saved_data[key].toInt()));
    };
    return {dq.sum(0).to(q.scalar_type()),
            dk.sum(0).to(k.scalar_type()),
            dv.to(v.scalar_type()),
            dbeta.defined() ? as(dbeta.sum(0), "beta_dtype") : at::Tensor(),
            dg.defined() ? as(dg.sum(0), "g_dtype") : at::Tensor(),
            want_dh0 ? as(dh0, "h0_dtype") : at::Tensor(),
            at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

std::string recurrent_train_unavailable(const SequenceShape& shape, const at::Tensor& q) {
  if (!q.is_cuda()) return c10::str("the tensors are on ", q.device().str(), ", and the kernel runs on CUDA");
  if (!kernel_dtype(q.scalar_type())) {
    return c10::str("the inputs are ", c10::toString(q.scalar_type()), ", and the kernel takes bf16, fp16 or fp32");
  }
  if (!cuda::recurrent_train_supports(shape.K, shape.V)) {
    return c10::str("K = ", shape.K, " and V = ", shape.V,
                    ", and the training kernel takes K of 32, 64, 128 or 256 and V a multiple of 32");
  }
  return {};
}

namespace {

// The sequences' starts on the device without a host copy (a captured step may run this): rows of T
// tokens, or cu_seqlens as given; and the longest sequence.
std::pair<at::Tensor, int64_t> sequence_starts(const SequenceShape& shape, const at::Tensor& q,
                                               const SequenceOptions& options) {
  const auto long_on = q.options().dtype(at::kLong);
  if (!options.cu_seqlens.defined()) return {at::arange(0, (shape.B + 1) * shape.T, shape.T, long_on), shape.T};
  int64_t max_len = 0;
  for (size_t i = 0; i + 1 < shape.seq_starts.size(); ++i) {
    max_len = std::max(max_len, shape.seq_starts[i + 1] - shape.seq_starts[i]);
  }
  return {options.cu_seqlens.to(long_on).contiguous(), max_len};
}

double scale_of(const SequenceShape& shape, const SequenceOptions& options) {
  return options.scale.value_or(1.0 / std::sqrt(static_cast<double>(shape.K)));
}

}  // namespace

SequenceOutput recurrent_train(Family family, const SequenceShape& shape, const at::Tensor& q, const at::Tensor& k,
                               const at::Tensor& v, const at::Tensor& beta, const at::Tensor& g,
                               const SequenceOptions& options) {
  const auto [starts, max_len] = sequence_starts(shape, q, options);
  const auto none = at::empty({0}, q.options().dtype(at::kFloat));
  const auto or_none = [&](const at::Tensor& t) { return t.defined() ? t : none; };
  auto outs = RecurrentTrain::apply(q, k, v, or_none(beta), or_none(g), or_none(options.initial_state), starts,
                                    static_cast<int64_t>(family),
                                    shape.N, max_len, scale_of(shape, options), options.output_final_state);
  SequenceOutput out;
  out.o = outs[0];
  if (options.output_final_state) out.final_state = outs.at(1);
  out.backend = Backend::kKernel;
  return out;
}

SequenceOutput recurrent_forward(Family family, const SequenceShape& shape, const at::Tensor& q, const at::Tensor& k,
                                 const at::Tensor& v, const at::Tensor& beta, const at::Tensor& g,
                                 const SequenceOptions& options) {
  const c10::cuda::CUDAGuard guard(q.device());
  const auto [starts, max_len] = sequence_starts(shape, q, options);
  auto s = setup(static_cast<int64_t>(family), q, k, v, beta, g, starts, shape.N, max_len,
                 scale_of(shape, options));
  const auto f32 = q.options().dtype(at::kFloat);
  const auto h0 = options.initial_state.defined() ? options.initial_state.to(at::kFloat).contiguous() : at::Tensor();
  SequenceOutput out;
  out.backend = Backend::kKernel;
  out.o = at::empty_like(s.v);
  if (options.output_final_state) out.final_state = at::empty({shape.N, shape.H, shape.K, shape.V}, f32);
  s.p.h0 = data_or_null(h0);
  s.p.checkpoints = nullptr;  // no backward
  s.p.o = out.o.data_ptr();
  s.p.ht = data_or_null(out.final_state);
  cuda::recurrent_train_forward(s.p, at::cuda::getCurrentCUDAStream().stream());
  return out;
}
#else
std::string recurrent_train_unavailable(const SequenceShape&, const at::Tensor&) {
  return "this build of deltabench has no CUDA kernels (nvcc was not found when it was configured)";
}

SequenceOutput recurrent_train(Family, const SequenceShape&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                               const at::Tensor&, const at::Tensor&, const SequenceOptions&) {
  TORCH_CHECK(false, "recurrent_train: this build has no CUDA kernels");
}

SequenceOutput recurrent_forward(Family, const SequenceShape&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                 const at::Tensor&, const at::Tensor&, const SequenceOptions&) {
  TORCH_CHECK(false, "recurrent_forward: this build has no CUDA kernels");
}
#endif

}  // namespace deltabench::detail
