#include "models/gates.h"

#include "models/fused_cpu.h"
#include "models/fused_cuda.h"
#include "models/pieces.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cmath>

namespace deltabench::models {

HeadDims head_dims(int64_t d_model, const MixerConfig& c) {
  TORCH_CHECK(c.head_dim > 0 || d_model % c.num_heads == 0, to_string(c.kind), ": d_model (", d_model,
              ") must be divisible by num_heads (", c.num_heads, ")");
  HeadDims dims;
  dims.key = c.head_dim > 0 ? c.head_dim : d_model / c.num_heads;
  dims.value = static_cast<int64_t>(std::llround(static_cast<double>(dims.key) * c.expand_v));
  return dims;
}

at::Tensor apply_feature_map(const at::Tensor& x, FeatureMap map) {
  switch (map) {
    case FeatureMap::kSilu: return at::silu(x);
    case FeatureMap::kRelu: return at::relu(x);
    case FeatureMap::kEluPlusOne: return at::elu(x) + 1;
    case FeatureMap::kIdentity: return x;
  }
  return x;
}

at::Tensor apply_qk_norm(const at::Tensor& x, QkNorm norm, double eps, BackendChoice backend) {
  switch (norm) {
    case QkNorm::kL2:
      // One fused pass each way on the CPU (models/fused_cpu.h), and on CUDA under `auto` and `kernel`
      // (models/fused_cuda.h); the same formula elsewhere.
      if (fused_cpu_applies(x)) {
        count_piece_call(Piece::kQkL2Norm, PieceForm::kCpuFused);
        return l2_normalize_cpu(x, 1e-6);
      }
      if (takes_cuda_kernels(backend, x, "qk_norm l2", [&] { return cuda_l2_norm_serves(x); })) {
        count_piece_call(Piece::kQkL2Norm, PieceForm::kKernel);
        return l2_normalize_cuda(x, 1e-6);
      }
      count_piece_call(Piece::kQkL2Norm, PieceForm::kAten);
      return x * at::rsqrt(x.pow(2).sum(-1, /*keepdim=*/true) + 1e-6);
    case QkNorm::kSum: return x / x.sum(-1, /*keepdim=*/true);
    case QkNorm::kRms: return x * at::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + eps);
    case QkNorm::kNone: return x;
  }
  return x;
}

at::Tensor init_a_log(int64_t heads) { return at::empty({heads}).uniform_(0, 16).log(); }

at::Tensor init_dt_bias(int64_t heads) {
  const double lo = std::log(1e-3), hi = std::log(1e-1);
  const auto dt = (at::rand({heads}) * (hi - lo) + lo).exp().clamp_min(1e-4);
  return dt + at::log(-at::expm1(-dt));
}

at::Tensor decay_gate(const at::Tensor& a, const at::Tensor& a_log, const at::Tensor& dt_bias) {
  // fp32 at least (bf16 would put the decay's rounding into every step); fp64 models keep fp64.
  const auto dtype = a.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  return -a_log.to(dtype).exp() * at::softplus(a.to(dtype) + dt_bias.to(dtype));
}

}  // namespace deltabench::models
