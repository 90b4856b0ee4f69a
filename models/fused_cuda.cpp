#include "models/fused_cuda.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>

#ifdef DELTABENCH_HAVE_CUDA
#include "kernels/common/causal_conv1d.h"
#include "kernels/common/embedding_backward.h"
#include "kernels/common/kernel_dtype.h"
#include "kernels/common/l2_norm.h"
#include "kernels/common/row_norm.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#endif

#include <limits>
#include <optional>
#include <string>

namespace deltabench::models {

#ifdef DELTABENCH_HAVE_CUDA
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

cuda::CausalConvParams params_of(const at::Tensor& x, const at::Tensor& w32, bool silu) {
  cuda::CausalConvParams p;
  p.dtype = *detail::kernel_dtype(x.scalar_type());  // fp32, bf16 or fp16: cuda_conv1d_serves checked it
  p.x = x.const_data_ptr();
  p.w = w32.const_data_ptr<float>();
  p.B = x.size(0), p.T = x.size(1), p.C = x.size(2), p.K = w32.size(1);
  p.silu = silu;
  return p;
}

struct CausalConvCuda : torch::autograd::Function<CausalConvCuda> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x_in, const at::Tensor& weight, bool silu) {
    const c10::cuda::CUDAGuard guard(x_in.device());
    const auto x = x_in.contiguous();
    const auto w32 = weight.to(at::kFloat).contiguous();
    auto y = at::empty_like(x);
    auto p = params_of(x, w32, silu);
    p.y = y.mutable_data_ptr();
    cuda::causal_conv1d_forward(p, at::cuda::getCurrentCUDAStream().stream());
    ctx->save_for_backward({x, weight});
    ctx->saved_data["silu"] = silu;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& weight = saved[1];
    const c10::cuda::CUDAGuard guard(x.device());
    const auto w32 = weight.to(at::kFloat).contiguous();
    const auto dy = grads[0].to(x.scalar_type()).contiguous();
    auto dx = at::empty_like(x);
    auto p = params_of(x, w32, ctx->saved_data["silu"].toBool());
    auto parts = at::empty({p.B * cuda::causal_conv1d_tiles(p.T), p.C, p.K}, x.options().dtype(at::kFloat));
    p.dy = dy.const_data_ptr();
    p.dx = dx.mutable_data_ptr();
    p.dw_parts = parts.mutable_data_ptr<float>();
    cuda::causal_conv1d_backward(p, at::cuda::getCurrentCUDAStream().stream());
    return {dx, parts.sum(0).to(weight.scalar_type()), at::Tensor()};
  }
};

struct L2NormalizeCuda : torch::autograd::Function<L2NormalizeCuda> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x_in, double eps) {
    const c10::cuda::CUDAGuard guard(x_in.device());
    const auto x = x_in.contiguous();
    auto y = at::empty_like(x);
    auto rstd = at::empty({x.numel() / x.size(-1)}, x.options().dtype(at::kFloat));
    cuda::L2NormParams p;
    p.dtype = *detail::kernel_dtype(x.scalar_type());
    p.x = x.const_data_ptr(), p.y = y.mutable_data_ptr(), p.rstd = rstd.mutable_data_ptr<float>();
    p.rows = rstd.numel(), p.D = x.size(-1), p.eps = static_cast<float>(eps);
    cuda::l2_norm_forward(p, at::cuda::getCurrentCUDAStream().stream());
    ctx->save_for_backward({x, rstd});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& rstd = saved[1];
    const c10::cuda::CUDAGuard guard(x.device());
    const auto dy = grads[0].to(x.scalar_type()).contiguous();
    auto dx = at::empty_like(x);
    cuda::L2NormParams p;
    p.dtype = *detail::kernel_dtype(x.scalar_type());
    p.x = x.const_data_ptr(), p.rstd = rstd.mutable_data_ptr<float>();
    p.dy = dy.const_data_ptr(), p.dx = dx.mutable_data_ptr();
    p.rows = rstd.numel(), p.D = x.size(-1);
    cuda::l2_norm_backward(p, at::cuda::getCurrentCUDAStream().stream());
    return {dx, at::Tensor()};
  }
};

struct RmsNormCuda : torch::autograd::Function<RmsNormCuda> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x_in, const at::Tensor& weight,
                            const std::optional<at::Tensor>& gate_in, double eps) {
    const c10::cuda::CUDAGuard guard(x_in.device());
    const auto x = x_in.contiguous();
    const auto gate = gate_in ? gate_in->contiguous() : at::Tensor();
    const auto w32 = weight.to(at::kFloat).contiguous();
    auto z = at::empty_like(x);
    auto rstd = at::empty({x.numel() / x.size(-1)}, x.options().dtype(at::kFloat));
    cuda::RmsNormParams p;
    p.dtype = *detail::kernel_dtype(x.scalar_type());
    p.x = x.const_data_ptr(), p.w = w32.const_data_ptr<float>(), p.gate = gate.defined() ? gate.const_data_ptr() : nullptr;
    p.z = z.mutable_data_ptr(), p.rstd = rstd.mutable_data_ptr<float>();
    p.rows = rstd.numel(), p.D = x.size(-1), p.eps = static_cast<float>(eps);
    cuda::rms_norm_forward(p, at::cuda::getCurrentCUDAStream().stream());
    ctx->save_for_backward({x, weight, gate, rstd});
    ctx->saved_data["eps"] = eps;
    return z;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& weight = saved[1];
    const auto& gate = saved[2];
    const auto& rstd = saved[3];
    const c10::cuda::CUDAGuard guard(x.device());
    const auto w32 = weight.to(at::kFloat).contiguous();
    const auto dz = grads[0].to(x.scalar_type()).contiguous();
    auto dx = at::empty_like(x);
    auto dgate = gate.defined() ? at::empty_like(gate) : at::Tensor();
    cuda::RmsNormParams p;
    p.dtype = *detail::kernel_dtype(x.scalar_type());
    p.rows = rstd.numel(), p.D = x.size(-1), p.eps = static_cast<float>(ctx->saved_data["eps"].toDouble());
    auto parts = at::empty({cuda::rms_norm_blocks(p.rows), p.D}, x.options().dtype(at::kFloat));
    p.x = x.const_data_ptr(), p.w = w32.const_data_ptr<float>(), p.gate = gate.defined() ? gate.const_data_ptr() : nullptr;
    p.rstd = rstd.mutable_data_ptr<float>(), p.dz = dz.const_data_ptr(), p.dx = dx.mutable_data_ptr();
    p.dgate = dgate.defined() ? dgate.mutable_data_ptr() : nullptr, p.dw_parts = parts.mutable_data_ptr<float>();
    cuda::rms_norm_backward(p, at::cuda::getCurrentCUDAStream().stream());
    return {dx, parts.sum(0).to(weight.scalar_type()), dgate, at::Tensor()};
  }
};

struct LayerNormCuda : torch::autograd::Function<LayerNormCuda> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x_in, const at::Tensor& weight,
                            const at::Tensor& bias, double eps) {
    const c10::cuda::CUDAGuard guard(x_in.device());
    const auto x = x_in.contiguous();
    const auto w32 = weight.to(at::kFloat).contiguous(), b32 = bias.to(at::kFloat).contiguous();
    auto z = at::empty_like(x);
    auto stats = at::empty({2, x.numel() / x.size(-1)}, x.options().dtype(at::kFloat));  // mean, rstd
    cuda::LayerNormParams p;
    p.dtype = *detail::kernel_dtype(x.scalar_type());
    p.x = x.const_data_ptr(), p.w = w32.const_data_ptr<float>(), p.b = b32.const_data_ptr<float>();
    p.z = z.mutable_data_ptr(), p.mean = stats[0].mutable_data_ptr<float>(), p.rstd = stats[1].mutable_data_ptr<float>();
    p.rows = stats.size(1), p.D = x.size(-1), p.eps = static_cast<float>(eps);
    cuda::layer_norm_forward(p, at::cuda::getCurrentCUDAStream().stream());
    ctx->save_for_backward({x, weight, bias, stats});
    return z;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& weight = saved[1];
    const auto& bias = saved[2];
    const auto& stats = saved[3];
    const c10::cuda::CUDAGuard guard(x.device());
    const auto w32 = weight.to(at::kFloat).contiguous();
    const auto dz = grads[0].to(x.scalar_type()).contiguous();
    auto dx = at::empty_like(x);
    cuda::LayerNormParams p;
    p.dtype = *detail::kernel_dtype(x.scalar_type());
    p.rows = stats.size(1), p.D = x.size(-1);
    auto parts = at::empty({2, cuda::layer_norm_blocks(p.rows), p.D}, x.options().dtype(at::kFloat));  // dw's, db's
    p.x = x.const_data_ptr(), p.w = w32.const_data_ptr<float>();
    p.mean = stats[0].mutable_data_ptr<float>(), p.rstd = stats[1].mutable_data_ptr<float>();
    p.dz = dz.const_data_ptr(), p.dx = dx.mutable_data_ptr();
    p.dw_parts = parts[0].mutable_data_ptr<float>(), p.db_parts = parts[1].mutable_data_ptr<float>();
    cuda::layer_norm_backward(p, at::cuda::getCurrentCUDAStream().stream());
    const auto sums = parts.sum(1);
    return {dx, sums[0].to(weight.scalar_type()), sums[1].to(bias.scalar_type()), at::Tensor()};
  }
};

// The lookup is ATen's (a gather); the gradient is ours (kernels/common/embedding_backward.h): the ids
// sorted stably (ATen's radix sort), then the two passes, in fp32.
struct EmbeddingCuda : torch::autograd::Function<EmbeddingCuda> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& weight, const at::Tensor& ids) {
    ctx->save_for_backward({ids});
    ctx->saved_data["V"] = weight.size(0);
    ctx->saved_data["dtype"] = weight.scalar_type();
    return at::embedding(weight, ids);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto ids = ctx->get_saved_variables()[0].reshape({-1});
    const c10::cuda::CUDAGuard guard(ids.device());
    const int64_t V = ctx->saved_data["V"].toInt(), D = grads[0].size(-1), N = ids.numel();
    const auto dy = grads[0].reshape({N, D}).contiguous();
    const auto [sorted, order] = at::sort(ids, /*stable=*/true, /*dim=*/0, /*descending=*/false);
    auto partials = at::empty({N, D}, dy.options().dtype(at::kFloat));
    auto ranges = at::zeros({2, V}, ids.options());  // starts, ends
    auto dw = at::empty({V, D}, dy.options().dtype(at::kFloat));
    cuda::EmbeddingBackwardParams p;
    p.dtype = *detail::kernel_dtype(dy.scalar_type());
    p.sorted = sorted.const_data_ptr<int64_t>(), p.order = order.const_data_ptr<int64_t>();
    p.dy = dy.const_data_ptr(), p.partials = partials.mutable_data_ptr<float>();
    p.starts = ranges[0].mutable_data_ptr<int64_t>(), p.ends = ranges[1].mutable_data_ptr<int64_t>();
    p.dw = dw.mutable_data_ptr<float>();
    p.N = N, p.V = V, p.D = D;
    cuda::embedding_backward(p, at::cuda::getCurrentCUDAStream().stream());
    return {dw.to(ctx->saved_data["dtype"].toScalarType()), at::Tensor()};
  }
};

// What a norm's kernels need of the normalised dimension (`supports`, as kernels/common/row_norm.h says:
// 1 to max_d). Empty, or the reason.
std::string dimension_refusal(const at::Tensor& x, bool (*supports)(int64_t), int64_t max_d) {
  const int64_t D = x.dim() == 0 ? 0 : x.size(-1);
  if (supports(D)) return {};
  return "the normalised dimension is " + std::to_string(D) + "; the kernels take 1 to " + std::to_string(max_d);
}

// What every kernel here needs of x: a CUDA tensor of fp32, bf16 or fp16. Empty, or the reason.
std::string device_and_dtype_refusal(const at::Tensor& x) {
  if (!x.is_cuda()) return "x is on " + x.device().str() + ", not a CUDA device";
  if (!detail::kernel_dtype(x.scalar_type())) {
    return std::string("x is ") + c10::toString(x.scalar_type()) + "; the kernels take fp32, bf16 and fp16";
  }
  return {};
}

}  // namespace
#endif

void refuse_unless_served(std::string_view piece, const std::string& why) {
  TORCH_CHECK(why.empty(), piece, ": backend kernel was asked for, but deltabench's CUDA kernels do not serve this call: ",
              why);
}

std::string cuda_rms_norm_serves(const at::Tensor& x, const at::Tensor& gate) {
#ifdef DELTABENCH_HAVE_CUDA
  if (auto why = device_and_dtype_refusal(x); !why.empty()) return why;
  if (auto why = dimension_refusal(x, cuda::rms_norm_supports, cuda::kRmsNormMaxD); !why.empty()) return why;
  if (gate.defined() && (gate.sizes() != x.sizes() || gate.scalar_type() != x.scalar_type() || gate.device() != x.device())) {
    return "the gate is " + std::string(c10::toString(gate.scalar_type())) + " on " + gate.device().str() +
           " of another shape, dtype or device than x; the kernels take it as x";
  }
  return {};
#else
  (void)x;
  (void)gate;
  return "this build has no CUDA kernels";
#endif
}

at::Tensor rms_norm_cuda(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& gate, double eps) {
  const auto why = cuda_rms_norm_serves(x, gate);
  TORCH_CHECK(why.empty(), "rms_norm_cuda: the CUDA kernels do not serve this call: ", why);
  TORCH_CHECK(weight.dim() == 1 && weight.size(0) == x.size(-1) && weight.device() == x.device(),
              "rms_norm_cuda: expected weight [", x.size(-1), "] on ", x.device(), ", got ", weight.sizes(), " on ",
              weight.device());
#ifdef DELTABENCH_HAVE_CUDA
  if (x.numel() == 0) return at::empty_like(x);
  // No gate goes in as an empty optional: autograd records every tensor argument, and an undefined one has no device.
  return RmsNormCuda::apply(x, weight, gate.defined() ? std::optional<at::Tensor>(gate) : std::nullopt, eps);
#else
  (void)eps;
  return {};  // not reached: cuda_rms_norm_serves refuses every call in a build without CUDA
#endif
}

std::string cuda_l2_norm_serves(const at::Tensor& x) {
#ifdef DELTABENCH_HAVE_CUDA
  if (auto why = device_and_dtype_refusal(x); !why.empty()) return why;
  if (x.dim() == 0 || x.size(-1) == 0) return "x has no last dimension to normalise over";
  return {};
#else
  (void)x;
  return "this build has no CUDA kernels";
#endif
}

at::Tensor l2_normalize_cuda(const at::Tensor& x, double eps) {
  const auto why = cuda_l2_norm_serves(x);
  TORCH_CHECK(why.empty(), "l2_normalize_cuda: the CUDA kernels do not serve this call: ", why);
#ifdef DELTABENCH_HAVE_CUDA
  if (x.numel() == 0) return at::empty_like(x);
  return L2NormalizeCuda::apply(x, eps);
#else
  (void)eps;
  return {};  // not reached: cuda_l2_norm_serves refuses every call in a build without CUDA
#endif
}

std::string cuda_conv1d_serves(const at::Tensor& x, int64_t kernel_size) {
#ifdef DELTABENCH_HAVE_CUDA
  if (auto why = device_and_dtype_refusal(x); !why.empty()) return why;
  if (x.dim() != 3) return "x has " + std::to_string(x.dim()) + " dimensions; the kernels take [B, T, C]";
  if (!cuda::causal_conv1d_supports(kernel_size)) {
    return "the kernel size is " + std::to_string(kernel_size) + "; the kernels take 2 to 4";
  }
  if (x.size(0) > 65535 || cuda::causal_conv1d_tiles(x.size(1)) > 65535) {
    return "x is " + std::to_string(x.size(0)) + " x " + std::to_string(x.size(1)) +
           " (batch, time); the kernels take at most 65535 sequences and 65535 tiles of " +
           std::to_string(cuda::kConvTile) + " steps";
  }
  return {};
#else
  (void)x;
  (void)kernel_size;
  return "this build has no CUDA kernels";
#endif
}

at::Tensor causal_conv1d_cuda(const at::Tensor& x, const at::Tensor& weight, bool silu) {
  TORCH_CHECK(weight.dim() == 2 && x.dim() == 3 && weight.size(0) == x.size(2),
              "causal_conv1d_cuda: expected x [B, T, C] and weight [C, K] with the same C, got x ", x.sizes(),
              " and weight ", weight.sizes());
  const auto why = cuda_conv1d_serves(x, weight.size(1));
  TORCH_CHECK(why.empty(), "causal_conv1d_cuda: the CUDA kernels do not serve this call: ", why);
  TORCH_CHECK(weight.device() == x.device() && at::isFloatingType(weight.scalar_type()),
              "causal_conv1d_cuda: weight must be a floating tensor on x's device ", x.device(), ", got ",
              weight.device(), " ", weight.scalar_type());
#ifdef DELTABENCH_HAVE_CUDA
  if (x.numel() == 0) return at::empty_like(x);
  return CausalConvCuda::apply(x, weight, silu);
#else
  return {};  // not reached: cuda_conv1d_serves refuses every call in a build without CUDA
#endif
}

std::string cuda_layer_norm_serves(const at::Tensor& x) {
#ifdef DELTABENCH_HAVE_CUDA
  if (auto why = device_and_dtype_refusal(x); !why.empty()) return why;
  if (auto why = dimension_refusal(x, cuda::layer_norm_supports, cuda::kLayerNormMaxD); !why.empty()) return why;
  return {};
#else
  (void)x;
  return "this build has no CUDA kernels";
#endif
}

at::Tensor layer_norm_cuda(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps) {
  const auto why = cuda_layer_norm_serves(x);
  TORCH_CHECK(why.empty(), "layer_norm_cuda: the CUDA kernels do not serve this call: ", why);
  const int64_t D = x.size(-1);
  TORCH_CHECK(weight.dim() == 1 && weight.size(0) == D && bias.dim() == 1 && bias.size(0) == D &&
                  weight.device() == x.device() && bias.device() == x.device(),
              "layer_norm_cuda: expected weight and bias [", D, "] on ", x.device(), ", got ", weight.sizes(), " on ",
              weight.device(), " and ", bias.sizes(), " on ", bias.device());
#ifdef DELTABENCH_HAVE_CUDA
  if (x.numel() == 0) return at::empty_like(x);
  return LayerNormCuda::apply(x, weight, bias, eps);
#else
  (void)eps;
  return {};  // not reached: cuda_layer_norm_serves refuses every call in a build without CUDA
#endif
}

std::string cuda_embedding_serves(const at::Tensor& weight, const at::Tensor& ids) {
#ifdef DELTABENCH_HAVE_CUDA
  if (auto why = device_and_dtype_refusal(weight); !why.empty()) return "the table " + why.substr(2);
  if (ids.device() != weight.device() || ids.scalar_type() != at::kLong) {
    return std::string("the ids are ") + c10::toString(ids.scalar_type()) + " on " + ids.device().str() +
           "; the kernels take int64 ids on the table's device, " + weight.device().str();
  }
  if (weight.dim() != 2 || weight.size(0) > std::numeric_limits<int32_t>::max()) {
    return "the table has " + std::to_string(weight.dim()) + " dimensions or more than 2^31 - 1 rows; the kernels "
           "take [V, D] with V below 2^31";
  }
  return {};
#else
  (void)weight;
  (void)ids;
  return "this build has no CUDA kernels";
#endif
}

at::Tensor embedding_cuda(const at::Tensor& weight, const at::Tensor& ids) {
  const auto why = cuda_embedding_serves(weight, ids);
  TORCH_CHECK(why.empty(), "embedding_cuda: the CUDA kernels do not serve this call: ", why);
#ifdef DELTABENCH_HAVE_CUDA
  return EmbeddingCuda::apply(weight, ids);
#else
  return {};  // not reached: cuda_embedding_serves refuses every call in a build without CUDA
#endif
}

}  // namespace deltabench::models
