#pragma once
// One of the ops' process-wide kernel switches (cuda_dispatch.h's set_sm90_forward and set_sm90_train,
// chunk_train.h's set_chunk_stage_kernels) set for a scope, and set back as it was when the scope ends:
// a test's or a benchmark case's calls.

namespace deltabench::detail {

class ScopedKernelSwitch {
 public:
  ScopedKernelSwitch(void (*set)(bool), bool (*get)(), bool on) : set_(set), was_(get()) { set_(on); }
  ~ScopedKernelSwitch() { set_(was_); }
  ScopedKernelSwitch(const ScopedKernelSwitch&) = delete;
  ScopedKernelSwitch& operator=(const ScopedKernelSwitch&) = delete;

 private:
  void (*set_)(bool);
  bool was_;
};

}  // namespace deltabench::detail
