// The decode steps' entry (kernels/common/cuda_kernels.h): checks the call, then hands it to the
// family's instantiation (kernels/<family>/recurrent.cu) of the shared kernel in recurrent_decode.cuh.

#include "kernels/common/cuda_common.cuh"

#include <stdexcept>
#include <string>

namespace deltabench::cuda {

bool recurrent_decode_supports(int64_t K, int64_t V) {
  return (K == 64 || K == 128) && V % kRecurrentColumns == 0 && V > 0;
}

void recurrent_decode(const DecodeParams& p, void* stream) {
  if (!recurrent_decode_supports(p.K, p.V)) {
    throw std::runtime_error("recurrent_decode: K must be 64 or 128 and V a multiple of 32, got K=" +
                             std::to_string(p.K) + " V=" + std::to_string(p.V));
  }
  if (p.B == 0 || p.T == 0) return;
  check_family_decay(p.family, p.g != nullptr, "recurrent_decode");
  auto s = static_cast<cudaStream_t>(stream);
  switch (p.family) {
    case Family::kLinearAttention: return recurrent_decode_linear_attn(p, s);
    case Family::kDeltaRule: return recurrent_decode_delta_rule(p, s);
    case Family::kGatedDeltaRule: return recurrent_decode_gated_delta_rule(p, s);
  }
}

}  // namespace deltabench::cuda
