#pragma once
// The pieces around the sequence ops on deltabench's CUDA kernels, as autograd functions, which the
// layers take on CUDA under the kernel backend; tests/models/fused_cuda_test.cpp compares each with its
// ATen form and the fp64 definition, values and gradients.
//  - The short convolution (kernels/common/causal_conv1d.h): one kernel forward and one backward (plus
//    the sum of dw's per-tile parts), on x's own [B, T, C] layout. The ATen form (models/short_conv.cpp)
//    transposes x to [B, C, T], pads it, runs ATen's grouped convolution, transposes back and applies
//    SiLU, and as many passes again in the backward.
//  - The L2 normalisation of q and k over the head dimension (kernels/common/l2_norm.h): one kernel each
//    way, where the ATen form (models/gates.cpp) is a square, a sum, a root and a product forward and
//    their gradients backward.
//  - The blocks' LayerNorm (kernels/common/row_norm.h): one kernel each way (plus the sums of dw's and
//    db's per-block parts), where ATen's weight gradient reads at a tenth of the copy rate.
//  - The embedding's gradient (kernels/common/embedding_backward.h): ATen's sort, then two passes that sum
//    each token's rows in parallel and in a fixed order, where ATen's walks a frequent token's rows serially.
//  - The output norm, RMSNorm with or without its SiLU gate (kernels/common/row_norm.h): one kernel each
//    way (plus the sum of dw's per-block parts), where the ATen form (models/norm.cpp) casts to fp32 and
//    runs about eight passes forward and twice as many backward.

#include <ATen/core/Tensor.h>

#include <string>
#include <string_view>

#include "kernels/common/backend_choice.h"

namespace deltabench::models {

// y[b, t, c] = act(sum_j weight[c, j] x[b, t - K + 1 + j, c]): x [B, T, C] on CUDA (fp32, bf16 or fp16),
// weight [C, K] of any floating dtype (its gradient comes back in that dtype). Throws c10::Error saying why
// where the kernels do not serve the call (cuda_conv1d_serves gives the reason first).
at::Tensor causal_conv1d_cuda(const at::Tensor& x, const at::Tensor& weight, bool silu);

// Empty where the CUDA kernels serve x (and a weight of K taps), else the reason.
std::string cuda_conv1d_serves(const at::Tensor& x, int64_t kernel_size);

// x r per row of the last dimension, r = (sum x^2 + eps)^(-1/2): x on CUDA (fp32, bf16 or fp16), any
// shape (taken contiguous). Throws c10::Error saying why where the kernels do not serve the call.
at::Tensor l2_normalize_cuda(const at::Tensor& x, double eps);

// Empty where the CUDA kernels serve x, else the reason.
std::string cuda_l2_norm_serves(const at::Tensor& x);

// rmsnorm(x) weight, times silu(gate) where gate is defined, over the last dimension: x (and gate, of x's
// shape and dtype) on CUDA in fp32, bf16 or fp16, weight [D] of any floating dtype (its gradient comes back
// in that dtype). Throws c10::Error saying why where the kernels do not serve the call.
at::Tensor rms_norm_cuda(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& gate, double eps);

// Empty where the CUDA kernels serve x (and gate, where defined), else the reason.
std::string cuda_rms_norm_serves(const at::Tensor& x, const at::Tensor& gate);

// (x - mean) rstd weight + bias over the last dimension (torch.nn.LayerNorm): x on CUDA in fp32, bf16 or
// fp16, weight and bias [D] of any floating dtype (their gradients come back in theirs); z in x's dtype.
// Throws c10::Error saying why where the kernels do not serve the call.
at::Tensor layer_norm_cuda(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps);

// Empty where the CUDA kernels serve x, else the reason.
std::string cuda_layer_norm_serves(const at::Tensor& x);

// weight[ids] (torch.nn.Embedding without padding_idx, max_norm or sparse gradients): ATen's lookup, and
// the table's gradient from deltabench's kernels, summed in a fixed order. weight [V, D] on CUDA in fp32,
// bf16 or fp16, ids int64 of any shape on its device. Throws c10::Error saying why where the kernels do
// not serve the call.
at::Tensor embedding_cuda(const at::Tensor& weight, const at::Tensor& ids);

// Empty where the CUDA kernels serve the table and the ids, else the reason.
std::string cuda_embedding_serves(const at::Tensor& weight, const at::Tensor& ids);

// Throws c10::Error "<piece>: backend kernel was asked for, but deltabench's CUDA kernels do not serve
// this call: <why>" where why is not empty.
void refuse_unless_served(std::string_view piece, const std::string& why);

// Whether a piece takes the kernels above for x: never off CUDA or under `reference`; under `auto` where
// `serves` (one of the *_serves above, called only for a CUDA x) gives no reason; under `kernel` always,
// and where it gives one, a c10::Error that names the piece and says why, never the ATen form. `auto`
// takes every piece: each made the Zoology training step faster on the H200 (train/NOTES.md).
template <typename Serves>
bool takes_cuda_kernels(BackendChoice backend, const at::Tensor& x, std::string_view piece, Serves&& serves) {
  if (backend == BackendChoice::kReference || !x.is_cuda()) return false;
  const std::string why = serves();
  if (backend == BackendChoice::kAuto) return why.empty();
  refuse_unless_served(piece, why);
  return true;
}

}  // namespace deltabench::models
