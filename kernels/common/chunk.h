#pragma once
// Pieces of the chunkwise-parallel algorithm that every family shares (math: kernels/README.md).
// Inputs are packed ([N, T, H, D] with T a multiple of the chunk size C) and in the compute dtype.

#include <ATen/core/Tensor.h>

#include <utility>

namespace deltabench::detail {

// [N, T, H, D] -> [N, H, NT, C, D]; [N, T, H] -> [N, H, NT, C].
at::Tensor to_chunks(const at::Tensor& x, int64_t chunk_size);
// [N, H, NT, C, D] -> [N, T, H, D].
at::Tensor from_chunks(const at::Tensor& x);

// Within-chunk cumulative log decay G: [N, T, H] -> [N, H, NT, C].
at::Tensor chunk_log_decay(const at::Tensor& g, int64_t chunk_size);

// exp(G_i - G_j) for j <= i (j < i when `strict`), zero above: [N, H, NT, C, C]. G undefined:
// the plain causal 0/1 mask, in `like`'s dtype and device.
at::Tensor chunk_decay_mask(const at::Tensor& G, int64_t chunk_size, bool strict,
                            const at::Tensor& like);

// The sequential pass over chunks. For each chunk c with state S (the state before the chunk):
//   vn_c = U_c - W_c S                     (W undefined: vn_c = U_c, linear attention)
//   o_c  = (Q_c S) * exp(G) + attn_c vn_c
//   S    = exp(G_last) S + K_c^T (vn_c * exp(G_last - G))   (G undefined: no decay)
// q: [N, H, NT, C, K] (scaled), k: [N, H, NT, C, K], W: [N, H, NT, C, K], U: [N, H, NT, C, V],
// G: [N, H, NT, C], attn: [N, H, NT, C, C] (causal, decayed), h0: [N, H, K, V].
// Returns o [N, H, NT, C, V] and the final state [N, H, K, V].
// Where h0 is known to be zero (`zero_h0`) the first chunk's products with it are skipped, and where
// the final state is not wanted (`final_state` false) the last chunk's update is skipped and the
// returned state is undefined: at one chunk per sequence (MQAR at L 64, chunk 64) that is three of
// the seven matrix products of the delta rule's forward, and their gradients.
std::pair<at::Tensor, at::Tensor> chunk_state_pass(const at::Tensor& q, const at::Tensor& k,
                                                   const at::Tensor& W, const at::Tensor& U,
                                                   const at::Tensor& G, const at::Tensor& attn,
                                                   const at::Tensor& h0, bool zero_h0 = false,
                                                   bool final_state = true);

}  // namespace deltabench::detail
