// The gated delta rule's recurrent kernels: decode steps and the recurrent training pair, the shared kernels
// (kernels/common/recurrent_decode.cuh, recurrent_train.cuh) with this family's switches (the template
// arguments: the delta rule's update, the decay).

#include "kernels/common/recurrent_decode.cuh"
#include "kernels/common/recurrent_train.cuh"

namespace deltabench::cuda {

void recurrent_decode_gated_delta_rule(const DecodeParams& p, cudaStream_t stream) {
  recurrent_decode_family<true, true>(p, stream);
}

void recurrent_train_gated_delta_rule(const RecurrentTrainParams& p, bool backward, cudaStream_t stream) {
  recurrent_train_family<true, true>(p, backward, stream);
}

}  // namespace deltabench::cuda
