#pragma once
// What the chunked pair's one-block-a-chunk kernels (chunk_dout.cu, chunk_grads.cu, the UT kernels)
// share: the checks of a call, the dispatch over the head dim K and the width of the V slices they walk,
// and the staging of those slices.

#include "kernels/common/cp_async.cuh"
#include "kernels/common/cuda_common.cuh"
#include "kernels/common/wmma_tf32.cuh"

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace deltabench::cuda::chunk_parallel {

inline constexpr int kC = kChunkTrainSize;               // a block's chunk of tokens
inline constexpr int kWarps = 16, kThreads = 32 * kWarps;  // a block

inline bool supports(int64_t K, int64_t V) { return (K == 32 || K == 64 || K == 128) && V > 0 && V % 16 == 0; }

// Throws, naming `what`, unless K and V are served, every buffer given (null: not used) starts on a
// 32-byte boundary (WMMA's tiles in global memory) and the chunks fit a grid's x axis. False when there
// is nothing to do (no chunks).
inline bool check(const char* what, int64_t BH, int64_t NT, int64_t K, int64_t V,
                  std::initializer_list<const void*> buffers) {
  if (!supports(K, V)) {
    throw std::runtime_error(std::string(what) + ": K must be 32, 64 or 128 and V a multiple of 16, got K=" +
                             std::to_string(K) + " V=" + std::to_string(V));
  }
  for (const void* ptr : buffers) {
    if (reinterpret_cast<std::uintptr_t>(ptr) % 32 != 0) {
      throw std::runtime_error(std::string(what) + ": every buffer must start on a 32-byte boundary");
    }
  }
  if (BH * NT > std::numeric_limits<int32_t>::max()) {
    throw std::runtime_error(std::string(what) + ": at most 2^31 - 1 chunks, got " + std::to_string(BH * NT));
  }
  return BH > 0 && NT > 0;
}

// Requests columns [v0, v0 + BV) of a chunk's [rows x V] fp32 tile at src (contiguous rows of V floats)
// into shared rows of ld floats by cp.async, 16 bytes a copy, the block's kThreads threads taking every
// kThreads-th; the caller commits the group. A whole [rows x K] tile is the slice v0 = 0, BV = V = K.
template <int BV>
__device__ __forceinline__ void request_slice(float* dst, int ld, const float* src, int rows, int64_t V, int64_t v0) {
  for (int idx = threadIdx.x; idx < rows * BV / 4; idx += kThreads) {
    const int row = idx / (BV / 4), c = 4 * (idx % (BV / 4));
    copy_async16(dst + row * ld + c, src + row * V + v0 + c);
  }
}

// Rounds to TF32, in place, the elements of a [rows x BV] slice that this thread requested with
// request_slice (the same indices): after its own copies are waited for, which makes them visible to it,
// and before the barrier that shows the slice to the other threads; the products then load it without
// converting (tf32::mma_step's kRoundA / kRoundB).
template <int BV>
__device__ __forceinline__ void round_own_slice(float* dst, int ld, int rows) {
  for (int idx = threadIdx.x; idx < rows * BV / 4; idx += kThreads) {
    float4& x = *reinterpret_cast<float4*>(dst + idx / (BV / 4) * ld + 4 * (idx % (BV / 4)));
    x = tf32::tf32x4(x);
  }
}

// Column j of (I + A)^-1 for a strictly lower triangular A [C x C] (row stride lda, shared memory), by
// forward substitution in fp32: x_i = e_ij - sum over m < i of A_im x_m, a thread a column in registers,
// A's row i read as a broadcast; what lies on and above A's diagonal is never read, and the rows above j
// come out exactly zero. Calls out(i, x_i) for every row, in order.
template <int C, typename Out>
__device__ __forceinline__ void unit_lower_inverse_column(const float* a, int lda, int j, Out&& out) {
  float x[C];
#pragma unroll
  for (int i = 0; i < C; ++i) {
    float acc0 = i == j ? 1.0f : 0.0f, acc1 = 0.0f;
#pragma unroll
    for (int m = 0; m + 1 < i; m += 2) {
      acc0 = fmaf(-a[i * lda + m], x[m], acc0);
      acc1 = fmaf(-a[i * lda + m + 1], x[m + 1], acc1);
    }
    if (i % 2 == 1) acc0 = fmaf(-a[i * lda + i - 1], x[i - 1], acc0);
    x[i] = acc0 + acc1;
    out(i, x[i]);
  }
}

// Calls f(std::integral_constant<int, KD>, std::integral_constant<int, BV>) for K (32, 64 or 128) and V
// slices of 32 columns where V allows, else 16.
template <typename F>
void with_tiles(int64_t K, int64_t V, F&& f) {
  const auto by_k = [&](auto bv) {
    switch (K) {
      case 32: f(std::integral_constant<int, 32>{}, bv); break;
      case 64: f(std::integral_constant<int, 64>{}, bv); break;
      default: f(std::integral_constant<int, 128>{}, bv); break;
    }
  };
  V % 32 == 0 ? by_k(std::integral_constant<int, 32>{}) : by_k(std::integral_constant<int, 16>{});
}

// Launches kernel<KD, BV> (as `kernel_of` gives it for the two constants) one block of `threads` a chunk
// with `bytes_of`'s shared memory.
template <typename KernelOf, typename BytesOf, typename Params>
void launch(const char* what, const Params& p, int threads, KernelOf kernel_of, BytesOf bytes_of, cudaStream_t stream) {
  with_tiles(p.K, p.V, [&](auto kd, auto bv) {
    const auto kernel = kernel_of(kd, bv);
    const size_t bytes = bytes_of(kd, bv);
    reserve_shared_memory(kernel, bytes, what);
    kernel<<<static_cast<unsigned>(p.BH * p.NT), threads, bytes, stream>>>(p);
    check_launch(what);
  });
}

}  // namespace deltabench::cuda::chunk_parallel
