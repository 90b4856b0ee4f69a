#include "kernels/delta_rule/reference.h"

#include "kernels/common/chunk.h"

#include <ATen/ATen.h>

#include <vector>

namespace deltabench::reference {

Result delta_rule_recurrent(const PackedInputs& in) {
  const int64_t T = in.q.size(1);
  at::Tensor S = in.h0;  // [N, H, K, V]
  std::vector<at::Tensor> outputs;
  outputs.reserve(T);
  for (int64_t t = 0; t < T; ++t) {
    const auto q_t = in.q.select(1, t) * in.scale;            // [N, H, K]
    const auto k_t = in.k.select(1, t);                       // [N, H, K]
    const auto v_t = in.v.select(1, t);                       // [N, H, V]
    const auto beta_t = in.beta.select(1, t).unsqueeze(-1);   // [N, H, 1]
    if (in.g.defined()) S = S * in.g.select(1, t).exp().unsqueeze(-1).unsqueeze(-1);
    const auto recalled = at::matmul(k_t.unsqueeze(-2), S).squeeze(-2);  // S^T k: [N, H, V]
    const auto delta = beta_t * (v_t - recalled);                         // [N, H, V]
    S = S + k_t.unsqueeze(-1) * delta.unsqueeze(-2);                      // + k delta^T
    outputs.push_back(at::matmul(q_t.unsqueeze(-2), S).squeeze(-2));      // S^T q: [N, H, V]
  }
  return {at::stack(outputs, 1), S};
}

Result delta_rule_chunk(const PackedInputs& in) {
  const int64_t C = in.chunk_size;
  const auto q = detail::to_chunks(in.q, C) * in.scale;           // [N, H, NT, C, K]
  const auto k = detail::to_chunks(in.k, C);                      // [N, H, NT, C, K]
  const auto v = detail::to_chunks(in.v, C);                      // [N, H, NT, C, V]
  const auto beta = detail::to_chunks(in.beta, C).unsqueeze(-1);  // [N, H, NT, C, 1]
  const auto G = in.g.defined() ? detail::chunk_log_decay(in.g, C) : at::Tensor();  // [N, H, NT, C]

  // A = strict_lower(diag(beta) K K^T * exp(G_i - G_j)); (I + A) W = K beta exp(G), (I + A) U = V beta.
  // With unitriangular the solver takes the unit diagonal of I + A as given and reads only the
  // strictly lower part, so A may carry the inclusive mask that attn needs too (one exp, not two).
  const auto decay = detail::chunk_decay_mask(G, C, /*strict=*/false, q);  // [N, H, NT, C, C]
  const auto k_beta = k * beta;
  const auto A = at::matmul(k_beta, k.transpose(-1, -2)) * decay;         // [N, H, NT, C, C]
  const auto k_beta_decayed = G.defined() ? k_beta * G.exp().unsqueeze(-1) : k_beta;
  // One solve for both right-hand sides: one call (and one in the backward) instead of two.
  const int64_t K = k.size(-1), V = v.size(-1);
  const auto WU = at::linalg_solve_triangular(A, at::cat({k_beta_decayed, v * beta}, -1), /*upper=*/false,
                                              /*left=*/true, /*unitriangular=*/true);  // [N, H, NT, C, K + V]
  const auto W = WU.narrow(-1, 0, K), U = WU.narrow(-1, K, V);

  const auto attn = at::matmul(q, k.transpose(-1, -2)) * decay;  // [N, H, NT, C, C]
  auto [o, S] = detail::chunk_state_pass(q, k, W, U, G, attn, in.h0, in.zero_h0, in.final_state);
  return {detail::from_chunks(o), S};
}

}  // namespace deltabench::reference
