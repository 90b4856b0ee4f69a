#include "models/fused_cpu.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace deltabench::models {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// About this many elements per parallel task: below it, waking the second thread costs more than
// the pass.
constexpr int64_t kGrainElements = 16384;

// ---- Causal depthwise convolution ------------------------------------------------------------

// y[b, t, :] = sum_j wt[j, :] * x[b, t - K + 1 + j, :] for the rows of one sequence's positions
// [t0, t1), into `out` ([t1 - t0, C]); the pre-activation.
template <class T>
void conv_rows(const T* x, const T* wt, T* out, int64_t t0, int64_t t1, int64_t C, int64_t K) {
  for (int64_t t = t0; t < t1; ++t) {
    T* __restrict o = out + (t - t0) * C;
    std::fill(o, o + C, T(0));
    for (int64_t j = std::max<int64_t>(0, K - 1 - t); j < K; ++j) {
      const T* __restrict xs = x + (t - K + 1 + j) * C;
      const T* __restrict w = wt + j * C;
      for (int64_t c = 0; c < C; ++c) o[c] += w[c] * xs[c];
    }
  }
}

struct CausalConv : torch::autograd::Function<CausalConv> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x_in, const at::Tensor& weight, bool silu) {
    const auto x = x_in.contiguous();
    const auto wt = weight.t().contiguous();  // [K, C]: rows of one tap over the channels
    const int64_t B = x.size(0), T = x.size(1), C = x.size(2), K = wt.size(0);
    auto pre = at::empty_like(x);  // before the activation
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "causal_conv1d_cpu", [&] {
      const auto* xp = x.const_data_ptr<scalar_t>();
      const auto* wp = wt.const_data_ptr<scalar_t>();
      auto* pp = pre.mutable_data_ptr<scalar_t>();
      at::parallel_for(0, B * T, std::max<int64_t>(1, kGrainElements / C), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end;) {
          const int64_t b = r / T, t0 = r % T, t1 = std::min(T, t0 + (end - r));
          conv_rows(xp + b * T * C, wp, pp + r * C, t0, t1, C, K);
          r += t1 - t0;
        }
      });
    });
    // SiLU through ATen: its loops are vectorised with SLEEF's exp for this CPU (a scalar std::exp
    // per value cost 5 ms a call at [64, 64, 64]).
    ctx->save_for_backward({x, wt, silu ? pre : at::Tensor()});
    return silu ? at::silu(pre) : pre;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& wt = saved[1];
    const auto& pre = saved[2];
    // The gradient at the pre-activation.
    const auto g_full = (pre.defined() ? at::silu_backward(grads[0], pre) : grads[0]).contiguous();
    const int64_t B = x.size(0), T = x.size(1), C = x.size(2), K = wt.size(0);
    auto dx = at::empty_like(x);
    auto dw_parts = at::empty({B, K, C}, x.options());  // one per sequence, summed below
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "causal_conv1d_cpu_backward", [&] {
      const auto* xp = x.const_data_ptr<scalar_t>();
      const auto* wp = wt.const_data_ptr<scalar_t>();
      const auto* gp = g_full.const_data_ptr<scalar_t>();
      auto* dxp = dx.mutable_data_ptr<scalar_t>();
      auto* dwp = dw_parts.mutable_data_ptr<scalar_t>();
      at::parallel_for(0, B, std::max<int64_t>(1, kGrainElements / (T * C)), [&](int64_t begin, int64_t end) {
        for (int64_t b = begin; b < end; ++b) {
          const scalar_t* xb = xp + b * T * C;
          const scalar_t* g = gp + b * T * C;
          // dx[s] = sum_j wt[j] g[s + K - 1 - j]; dw[j] = sum_t g[t] x[t - K + 1 + j].
          scalar_t* dxb = dxp + b * T * C;
          for (int64_t s = 0; s < T; ++s) {
            scalar_t* __restrict o = dxb + s * C;
            std::fill(o, o + C, scalar_t(0));
            for (int64_t j = 0; j < K; ++j) {
              const int64_t t = s + K - 1 - j;
              if (t >= T) continue;
              const scalar_t* __restrict gt = g + t * C;
              const scalar_t* __restrict w = wp + j * C;
              for (int64_t c = 0; c < C; ++c) o[c] += w[c] * gt[c];
            }
          }
          scalar_t* dwb = dwp + b * K * C;
          for (int64_t j = 0; j < K; ++j) {
            scalar_t* __restrict o = dwb + j * C;
            std::fill(o, o + C, scalar_t(0));
            for (int64_t t = std::max<int64_t>(0, K - 1 - j); t < T; ++t) {
              const scalar_t* __restrict gt = g + t * C;
              const scalar_t* __restrict xs = xb + (t - K + 1 + j) * C;
              for (int64_t c = 0; c < C; ++c) o[c] += gt[c] * xs[c];
            }
          }
        }
      });
    });
    return {dx, dw_parts.sum(0).t(), at::Tensor()};
  }
};

// ---- L2 normalisation over the last dimension -------------------------------------------------

struct L2Normalize : torch::autograd::Function<L2Normalize> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x_in, double eps) {
    const auto x = x_in.contiguous();
    const int64_t D = x.size(-1), rows = x.numel() / std::max<int64_t>(1, D);
    auto y = at::empty_like(x);
    auto rstd = at::empty({rows}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "l2_normalize_cpu", [&] {
      const auto* xp = x.const_data_ptr<scalar_t>();
      auto* yp = y.mutable_data_ptr<scalar_t>();
      auto* rp = rstd.mutable_data_ptr<scalar_t>();
      at::parallel_for(0, rows, std::max<int64_t>(1, kGrainElements / D), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
          const scalar_t* __restrict xr = xp + r * D;
          scalar_t* __restrict yr = yp + r * D;
          scalar_t s = 0;
          for (int64_t d = 0; d < D; ++d) s += xr[d] * xr[d];
          const scalar_t inv = scalar_t(1) / std::sqrt(s + static_cast<scalar_t>(eps));
          for (int64_t d = 0; d < D; ++d) yr[d] = xr[d] * inv;
          rp[r] = inv;
        }
      });
    });
    ctx->save_for_backward({y, rstd});
    return y;
  }

  // y = x r with r = (|x|^2 + eps)^(-1/2): dx = r (dy - y <dy, y>).
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& y = saved[0];
    const auto& rstd = saved[1];
    const auto dy = grads[0].contiguous();
    const int64_t D = y.size(-1), rows = rstd.numel();
    auto dx = at::empty_like(y);
    AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "l2_normalize_cpu_backward", [&] {
      const auto* yp = y.const_data_ptr<scalar_t>();
      const auto* rp = rstd.const_data_ptr<scalar_t>();
      const auto* gp = dy.const_data_ptr<scalar_t>();
      auto* dxp = dx.mutable_data_ptr<scalar_t>();
      at::parallel_for(0, rows, std::max<int64_t>(1, kGrainElements / D), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
          const scalar_t* __restrict yr = yp + r * D;
          const scalar_t* __restrict gr = gp + r * D;
          scalar_t* __restrict o = dxp + r * D;
          scalar_t dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += gr[d] * yr[d];
          for (int64_t d = 0; d < D; ++d) o[d] = rp[r] * (gr[d] - yr[d] * dot);
        }
      });
    });
    return {dx, at::Tensor()};
  }
};

}  // namespace

bool fused_cpu_applies(const at::Tensor& x) {
  return x.is_cpu() && (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble);
}

at::Tensor causal_conv1d_cpu(const at::Tensor& x, const at::Tensor& weight, bool silu) {
  TORCH_CHECK(fused_cpu_applies(x), "causal_conv1d_cpu: x must be a CPU tensor of fp32 or fp64, got ", x.device(),
              " ", x.scalar_type());
  TORCH_CHECK(x.dim() == 3 && weight.dim() == 2 && weight.size(0) == x.size(2),
              "causal_conv1d_cpu: expected x [B, T, C] and weight [C, K] with the same C, got x ", x.sizes(),
              " and weight ", weight.sizes());
  TORCH_CHECK(weight.scalar_type() == x.scalar_type() && weight.is_cpu(),
              "causal_conv1d_cpu: weight must be a CPU tensor of x's dtype ", x.scalar_type(), ", got ",
              weight.device(), " ", weight.scalar_type());
  return CausalConv::apply(x, weight, silu);
}

at::Tensor l2_normalize_cpu(const at::Tensor& x, double eps) {
  TORCH_CHECK(fused_cpu_applies(x), "l2_normalize_cpu: x must be a CPU tensor of fp32 or fp64, got ", x.device(),
              " ", x.scalar_type());
  TORCH_CHECK(x.dim() >= 1 && x.size(-1) > 0, "l2_normalize_cpu: x needs a non-empty last dimension, got ", x.sizes());
  return L2Normalize::apply(x, eps);
}

}  // namespace deltabench::models
