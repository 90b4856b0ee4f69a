// Linear attention's recurrent kernels: decode steps and the recurrent training pair, the shared kernels
// (kernels/common/recurrent_decode.cuh, recurrent_train.cuh) with this family's switches (the template
// arguments: the delta rule's update, the decay).

#include "kernels/common/recurrent_decode.cuh"
#include "kernels/common/recurrent_train.cuh"

namespace deltabench::cuda {

void recurrent_decode_linear_attn(const DecodeParams& p, cudaStream_t stream) {
  if (p.g != nullptr) {
    recurrent_decode_family<false, true>(p, stream);
  } else {
    recurrent_decode_family<false, false>(p, stream);
  }
}

void recurrent_train_linear_attn(const RecurrentTrainParams& p, bool backward, cudaStream_t stream) {
  if (p.g != nullptr) {
    recurrent_train_family<false, true>(p, backward, stream);
  } else {
    recurrent_train_family<false, false>(p, backward, stream);
  }
}

}  // namespace deltabench::cuda
