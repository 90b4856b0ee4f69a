// The gated delta rule's fused chunked forward: the shared kernel (kernels/common/chunk_fwd.cuh) with
// the delta rule's update and the decay g.

#include "kernels/common/chunk_fwd.cuh"

namespace deltabench::cuda {

void chunk_forward_gated_delta_rule(const ChunkParams& p, cudaStream_t stream) {
  chunk_forward_tc</*kDelta=*/true, /*kGated=*/true>(p, stream);
}

}  // namespace deltabench::cuda
