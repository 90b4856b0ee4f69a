#pragma once
// Normalisations: RMSNorm, the gated RMSNorm of FLA's output (y = rmsnorm(x) * w * silu(g)), and a
// pre-norm that is LayerNorm or RMSNorm by config. Statistics in fp32, as FLA computes them. On CUDA an
// RMSNorm runs deltabench's kernels under `auto` (where they serve) and `kernel` (an error saying why where
// they cannot), a LayerNorm under `kernel` only (models/fused_cuda.h); otherwise ATen.

#include "models/config.h"

#include <torch/nn/module.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

namespace deltabench::models {

class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps, BackendChoice backend = BackendChoice::kAuto);
  at::Tensor forward(const at::Tensor& x);
  // Gated form: rmsnorm(x) * weight * silu(gate).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& gate);

  at::Tensor weight;

 private:
  // The kernels on CUDA under `auto` (where they serve) and `kernel`; `gate` undefined for the plain form.
  bool on_kernels(const at::Tensor& x, const at::Tensor& gate) const;

  double eps_;
  BackendChoice backend_;
};
TORCH_MODULE(RMSNorm);

class NormImpl : public torch::nn::Module {
 public:
  NormImpl(NormKind kind, int64_t dim, double eps, BackendChoice backend = BackendChoice::kAuto);
  at::Tensor forward(const at::Tensor& x);

 private:
  torch::nn::LayerNorm layer_norm_{nullptr};
  RMSNorm rms_norm_{nullptr};
  double eps_;
  BackendChoice backend_;
};
TORCH_MODULE(Norm);

}  // namespace deltabench::models
