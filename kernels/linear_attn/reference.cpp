#include "kernels/linear_attn/reference.h"

#include "kernels/common/chunk.h"

#include <ATen/ATen.h>

#include <vector>

namespace deltabench::reference {

Result linear_attention_recurrent(const PackedInputs& in) {
  const int64_t T = in.q.size(1);
  at::Tensor S = in.h0;  // [N, H, K, V]
  std::vector<at::Tensor> outputs;
  outputs.reserve(T);
  for (int64_t t = 0; t < T; ++t) {
    const auto q_t = in.q.select(1, t) * in.scale;  // [N, H, K]
    const auto k_t = in.k.select(1, t);             // [N, H, K]
    const auto v_t = in.v.select(1, t);             // [N, H, V]
    if (in.g.defined()) S = S * in.g.select(1, t).exp().unsqueeze(-1).unsqueeze(-1);
    S = S + k_t.unsqueeze(-1) * v_t.unsqueeze(-2);                     // + k v^T
    outputs.push_back(at::matmul(q_t.unsqueeze(-2), S).squeeze(-2));  // S^T q: [N, H, V]
  }
  return {at::stack(outputs, 1), S};
}

Result linear_attention_chunk(const PackedInputs& in) {
  const int64_t C = in.chunk_size;
  const auto q = detail::to_chunks(in.q, C) * in.scale;  // [N, H, NT, C, K]
  const auto k = detail::to_chunks(in.k, C);             // [N, H, NT, C, K]
  const auto v = detail::to_chunks(in.v, C);             // [N, H, NT, C, V]
  const auto G = in.g.defined() ? detail::chunk_log_decay(in.g, C) : at::Tensor();  // [N, H, NT, C]
  const auto attn = at::matmul(q, k.transpose(-1, -2)) *
                    detail::chunk_decay_mask(G, C, /*strict=*/false, q);  // [N, H, NT, C, C]
  auto [o, S] = detail::chunk_state_pass(q, k, /*W=*/at::Tensor(), /*U=*/v, G, attn, in.h0, in.zero_h0,
                                         in.final_state);
  return {detail::from_chunks(o), S};
}

}  // namespace deltabench::reference
