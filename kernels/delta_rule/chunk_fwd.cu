// The delta rule's fused chunked forward: the shared kernel (kernels/common/chunk_fwd.cuh) with the
// delta rule's update and no decay.

#include "kernels/common/chunk_fwd.cuh"

namespace deltabench::cuda {

void chunk_forward_delta_rule(const ChunkParams& p, cudaStream_t stream) {
  chunk_forward_tc</*kDelta=*/true, /*kGated=*/false>(p, stream);
}

}  // namespace deltabench::cuda
