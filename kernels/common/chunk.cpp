#include "kernels/common/chunk.h"

#include <ATen/ATen.h>

#include <limits>
#include <vector>

namespace deltabench::detail {

at::Tensor to_chunks(const at::Tensor& x, int64_t chunk_size) {
  const int64_t N = x.size(0), T = x.size(1), H = x.size(2), NT = T / chunk_size;
  // Contiguous, so that every batched matmul below reads plain [C, D] blocks.
  if (x.dim() == 3) return x.reshape({N, NT, chunk_size, H}).permute({0, 3, 1, 2}).contiguous();
  return x.reshape({N, NT, chunk_size, H, x.size(3)}).permute({0, 3, 1, 2, 4}).contiguous();
}

at::Tensor from_chunks(const at::Tensor& x) {
  const int64_t N = x.size(0), H = x.size(1), NT = x.size(2), C = x.size(3), D = x.size(4);
  return x.permute({0, 2, 3, 1, 4}).reshape({N, NT * C, H, D});
}

at::Tensor chunk_log_decay(const at::Tensor& g, int64_t chunk_size) {
  return to_chunks(g, chunk_size).cumsum(-1);
}

at::Tensor chunk_decay_mask(const at::Tensor& G, int64_t chunk_size, bool strict,
                            const at::Tensor& like) {
  const auto causal = at::ones({chunk_size, chunk_size}, like.options().dtype(at::kBool))
                          .tril(strict ? -1 : 0);  // [C, C]
  if (!G.defined()) return causal.to(like.scalar_type());
  // Mask before exp: above the diagonal G_i - G_j > 0 and may overflow.
  const auto diff = G.unsqueeze(-1) - G.unsqueeze(-2);  // [N, H, NT, C, C]
  return diff.masked_fill(causal.logical_not(), -std::numeric_limits<double>::infinity()).exp();
}

std::pair<at::Tensor, at::Tensor> chunk_state_pass(const at::Tensor& q, const at::Tensor& k,
                                                   const at::Tensor& W, const at::Tensor& U,
                                                   const at::Tensor& G, const at::Tensor& attn,
                                                   const at::Tensor& h0, bool zero_h0, bool final_state) {
  const int64_t NT = q.size(2);
  const int64_t first = zero_h0 ? 1 : 0;  // the first chunk whose starting state is not zero
  at::Tensor S = zero_h0 ? at::Tensor() : h0;  // [N, H, K, V]; undefined: zero
  std::vector<at::Tensor> states, new_values;
  states.reserve(NT);
  new_values.reserve(NT);
  for (int64_t c = 0; c < NT; ++c) {
    if (S.defined()) states.push_back(S);
    const auto k_c = k.select(2, c);  // [N, H, C, K]
    auto vn = U.select(2, c);         // [N, H, C, V]
    if (W.defined() && S.defined()) vn = vn - at::matmul(W.select(2, c), S);
    new_values.push_back(vn);
    if (c == NT - 1 && !final_state) break;
    if (G.defined()) {
      const auto G_c = G.select(2, c);                          // [N, H, C]
      const auto G_last = G_c.select(-1, G_c.size(-1) - 1);   // [N, H]
      const auto k_decayed = k_c * (G_last.unsqueeze(-1) - G_c).exp().unsqueeze(-1);
      const auto update = at::matmul(k_decayed.transpose(-1, -2), vn);
      S = S.defined() ? S * G_last.exp().unsqueeze(-1).unsqueeze(-1) + update : update;
    } else {
      const auto update = at::matmul(k_c.transpose(-1, -2), vn);
      S = S.defined() ? S + update : update;
    }
  }
  auto o = at::matmul(attn, at::stack(new_values, 2));  // [N, H, NT, C, V]: within the chunks
  if (first < NT) {
    // Across chunks, from chunk `first` on: (Q_c exp(G)) S_c.
    const auto q_tail = q.narrow(2, first, NT - first);
    const auto q_decayed = G.defined() ? q_tail * G.narrow(2, first, NT - first).exp().unsqueeze(-1) : q_tail;
    const auto across = at::matmul(q_decayed, at::stack(states, 2));
    o = first == 0 ? o + across : at::cat({o.narrow(2, 0, first), o.narrow(2, first, NT - first) + across}, 2);
  }
  return {o, final_state ? S : at::Tensor()};
}

}  // namespace deltabench::detail
