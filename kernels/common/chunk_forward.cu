// The fused chunked forward's entry (kernels/common/cuda_kernels.h): checks the call, then hands it to
// the family's instantiation of the shared kernel (kernels/<family>/chunk_fwd.cu, the kernel in
// kernels/common/chunk_fwd.cuh); fp32 inputs to version 1 (chunk_forward_simt.cu).

#include "kernels/common/cuda_common.cuh"

#include <cstdint>
#include <stdexcept>
#include <string>

namespace deltabench::cuda {

bool chunk_forward_supports(int64_t K, int64_t V) { return (K == 64 || K == 128) && (V == 64 || V == 128); }

void chunk_forward(const ChunkParams& p, void* stream) {
  if (!chunk_forward_supports(p.K, p.V)) {
    throw std::runtime_error("chunk_forward: K and V must be 64 or 128, got K=" + std::to_string(p.K) +
                             " V=" + std::to_string(p.V));
  }
  if (p.N > 65535) {
    throw std::runtime_error("chunk_forward: at most 65535 sequences per call, got " + std::to_string(p.N));
  }
  const int64_t max_transitions = (p.K + p.V - 1) / p.V;
  if (p.transitions < 0 || p.transitions > max_transitions || (p.transitions > 0 && p.o != nullptr)) {
    throw std::runtime_error("chunk_forward: transitions must be 0, or 1 to ceil(K / V) = " +
                             std::to_string(max_transitions) + " with o null, got " + std::to_string(p.transitions));
  }
  if ((p.o == nullptr || p.transitions > 0) && p.ht == nullptr) {
    throw std::runtime_error("chunk_forward: a pass without output (o null) or with transitions must write ht");
  }
  check_family_decay(p.family, p.g != nullptr, "chunk_forward");
  if (p.N == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  if (p.dtype == Dtype::kFP32) {
    if (p.o == nullptr || p.transitions > 0) {
      throw std::runtime_error("chunk_forward: the fp32 version has no state-only pass or transitions");
    }
    return chunk_forward_simt(p, s);
  }
  for (const void* ptr : {p.q, p.k, p.v, static_cast<const void*>(p.o)}) {
    if (reinterpret_cast<std::uintptr_t>(ptr) % 16 != 0) {
      throw std::runtime_error("chunk_forward: q, k, v and o must be 16-byte aligned");
    }
  }
  for (const void* ptr : {static_cast<const void*>(p.h0), static_cast<const void*>(p.ht)}) {
    if (reinterpret_cast<std::uintptr_t>(ptr) % 32 != 0) {
      throw std::runtime_error("chunk_forward: the initial and final states must be 32-byte aligned");
    }
  }
  switch (p.family) {
    case Family::kLinearAttention: return chunk_forward_linear_attn(p, s);
    case Family::kDeltaRule: return chunk_forward_delta_rule(p, s);
    case Family::kGatedDeltaRule: return chunk_forward_gated_delta_rule(p, s);
  }
}

}  // namespace deltabench::cuda
