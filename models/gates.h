#pragma once
// Pieces the linear-family mixers share: feature maps, q/k normalisations, and the Mamba2 / Gated
// DeltaNet decay g = -exp(A_log) * softplus(a + dt_bias) with FLA's initialisation.

#include "models/config.h"

#include <ATen/core/Tensor.h>

namespace deltabench::models {

// Per-head key and value dims of a linear-family mixer: head_dim (or d_model / num_heads) and
// head_dim * expand_v. Errors name the mixer when d_model does not split into the heads.
struct HeadDims {
  int64_t key = 0, value = 0;
};
HeadDims head_dims(int64_t d_model, const MixerConfig& config);

// silu, relu, elu + 1, or identity.
at::Tensor apply_feature_map(const at::Tensor& x, FeatureMap map);

// Over the last dim: l2 (x / sqrt(sum x^2 + 1e-6), FLA's), sum (x / sum x), rms, or none. l2 runs one
// fused loop on the CPU (fp32, fp64; models/fused_cpu.h) and, under the kernel backend, deltabench's
// kernels on CUDA (models/fused_cuda.h; an error saying why where they cannot serve), else ATen.
at::Tensor apply_qk_norm(const at::Tensor& x, QkNorm norm, double eps, BackendChoice backend = BackendChoice::kAuto);

// FLA's GatedDeltaNet initialisation: A_log = log(U(0, 16)); dt = exp(U(log 1e-3, log 1e-1))
// clamped >= 1e-4, dt_bias = dt + log(-expm1(-dt)), the inverse softplus of dt.
at::Tensor init_a_log(int64_t heads);
at::Tensor init_dt_bias(int64_t heads);

// g = -exp(A_log) * softplus(a + dt_bias), in fp32 (fp64 for fp64 inputs). a: [B, T, H].
at::Tensor decay_gate(const at::Tensor& a, const at::Tensor& a_log, const at::Tensor& dt_bias);

}  // namespace deltabench::models
