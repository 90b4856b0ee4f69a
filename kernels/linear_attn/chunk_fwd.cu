// Linear attention's fused chunked forward: the shared kernel (kernels/common/chunk_fwd.cuh) with the
// plain update S += k v^T, with or without the optional scalar decay g.

#include "kernels/common/chunk_fwd.cuh"

namespace deltabench::cuda {

void chunk_forward_linear_attn(const ChunkParams& p, cudaStream_t stream) {
  if (p.g != nullptr) {
    chunk_forward_tc</*kDelta=*/false, /*kGated=*/true>(p, stream);
  } else {
    chunk_forward_tc</*kDelta=*/false, /*kGated=*/false>(p, stream);
  }
}

}  // namespace deltabench::cuda
