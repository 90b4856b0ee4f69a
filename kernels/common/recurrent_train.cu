// The recurrent training pair's entry (kernels/common/cuda_kernels.h): checks the call, then hands it to
// the family's instantiation (kernels/<family>/recurrent.cu) of the shared kernels in recurrent_train.cuh.

#include "kernels/common/cuda_common.cuh"

#include <stdexcept>
#include <string>

namespace deltabench::cuda {
namespace {

void run(const RecurrentTrainParams& p, bool backward, void* stream) {
  if (!recurrent_train_supports(p.K, p.V)) {
    throw std::runtime_error("recurrent_train: K must be 32, 64, 128 or 256 and V a multiple of 32, got K=" +
                             std::to_string(p.K) + " V=" + std::to_string(p.V));
  }
  check_family_decay(p.family, p.g != nullptr, "recurrent_train");
  if (p.N == 0 || p.H == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  switch (p.family) {
    case Family::kLinearAttention: return recurrent_train_linear_attn(p, backward, s);
    case Family::kDeltaRule: return recurrent_train_delta_rule(p, backward, s);
    case Family::kGatedDeltaRule: return recurrent_train_gated_delta_rule(p, backward, s);
  }
}

}  // namespace

bool recurrent_train_supports(int64_t K, int64_t V) {
  return (K == 32 || K == 64 || K == 128 || K == 256) && V % kRecurrentColumns == 0 && V > 0;
}

int64_t recurrent_train_slices(int64_t V) { return V / kRecurrentColumns; }

int64_t recurrent_train_dg_rows(int64_t V) { return V / kRecurrentColumns * kRecurrentWarps; }

void recurrent_train_forward(const RecurrentTrainParams& p, void* stream) { run(p, false, stream); }

void recurrent_train_backward(const RecurrentTrainParams& p, void* stream) { run(p, true, stream); }

}  // namespace deltabench::cuda
