#pragma once
// Which backend served the public sequence ops: the reference ops (ATen, differentiable through
// autograd) or deltabench's CUDA kernels (forward only, no gradient). Every call of
// linear_attention, delta_rule and gated_delta_rule is counted, so that a trainer can record what
// actually ran in its training and evaluation phases instead of inferring it.

#include "kernels/common/sequence_op.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <initializer_list>
#include <string>

namespace deltabench {

struct BackendCounts {
  int64_t reference = 0;            // reference-op calls
  int64_t reference_with_grad = 0;  // of those, calls that recorded a graph for backward
  int64_t kernel = 0;               // CUDA kernel calls
  int64_t kernel_with_grad = 0;     // of those, calls whose backward runs deltabench's backward kernel
  int64_t kernel_sm90 = 0;          // of those, calls on the sm_90a training op (Hopper, wgmma), forward and backward
  int64_t kernel_sm90_forward = 0;  // kernel calls without a gradient on the sm_90a forward (Hopper, wgmma)
};

// Counts since the process started (atomic; any thread).
BackendCounts backend_counts();
BackendCounts operator-(const BackendCounts& a, const BackendCounts& b);
// Every field added: a phase's counts accumulated over epochs (none dropped on the way).
BackendCounts& operator+=(BackendCounts& a, const BackendCounts& b);

// What a phase's forward ran between two snapshots: "kernel (sm_90a)" where the calls ran the sm_90a forward or
// training op, "kernel" where they ran the other kernels, "reference" where the reference ops; any of them
// joined by " + ", else "none".
std::string forward_backend(const BackendCounts& phase);
// The backward of a phase: "kernel" where the calls that need a gradient ran the chunked or recurrent
// training kernels, "kernel (sm_90a)" where they ran the sm_90a training op (kernels/common/sm90: forward and
// backward on wgmma), "reference (ATen autograd)" where they ran the reference ops; any of them joined by " + ",
// else "none".
std::string backward_backend(const BackendCounts& phase);

namespace detail {
void count_backend_call(Backend backend, bool with_grad);
// A kernel call with a gradient taken by the sm_90a training op (counted by count_backend_call too).
void count_sm90_train_call();
// A kernel call without a gradient taken by the sm_90a forward (counted by count_backend_call too).
void count_sm90_forward_call();
// True when grad mode is on and any defined tensor requires grad.
bool needs_grad(std::initializer_list<const at::Tensor*> tensors);
}  // namespace detail

}  // namespace deltabench
