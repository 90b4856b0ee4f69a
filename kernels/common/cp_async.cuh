#pragma once
// sm_80's asynchronous copies from global to shared memory (cp.async, 16 bytes a copy, past L1), as the
// chunked training kernels stage their tiles (chunk_state.cu's walks, chunk_grads.cu, chunk_dout.cu): a
// thread's copies are grouped by commit_copies() and waited for by wait_copies<N>(), which returns once
// at most N of this thread's newest groups are still in flight. Every thread of a block should commit the same
// groups (an empty one where it has nothing to copy), so that a wait's count means the same copies in
// every thread; a barrier after the wait makes the other threads' copies visible.

namespace deltabench::cuda {

// Both addresses on a 16-byte boundary.
__device__ __forceinline__ void copy_async16(float* dst, const float* src) {
  const auto to = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(to), "l"(src) : "memory");
}

__device__ __forceinline__ void commit_copies() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

// Waits until at most kPending of this thread's newest groups are still in flight.
template <int kPending>
__device__ __forceinline__ void wait_copies() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

}  // namespace deltabench::cuda
