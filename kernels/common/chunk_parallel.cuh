#pragma once
// What the chunked backward's one-block-a-chunk kernels (chunk_dout.cu, chunk_grads.cu) share: the
// checks of a call and the dispatch over the head dim K and the width of the V slices they walk.

#include "kernels/common/cuda_common.cuh"

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

// T = (I + A)^-1 for a strictly lower triangular A [C x C] (row stride lda, shared memory) into t (row
// stride ldt, shared memory) by blocks of 16, fp32 throughout; every thread of the block (kBlockThreads
// of them) must call it, and it ends on a barrier. The 16 x 16 diagonal blocks by forward substitution
// (unit_lower_inverse_column, a thread a column: C threads 16 rows deep instead of 64), then the blocks
// below them one block diagonal at a time, from (I + A) T = I read by blocks:
//   T_ij = -T_ii S_ij,  S_ij = sum over j <= m < i of A_im T_mj   (blocks i > j),
// where S only needs the blocks of nearer diagonals; each block's elements are a thread's each. The
// blocks above the diagonal are written as exact zeros, as the substitution writes the zeros above a
// diagonal block's diagonal. `scratch` holds S: at least (C / 16 - 1) * 256 floats, disjoint from a and t.
template <int C, int kBlockThreads>
__device__ __forceinline__ void unit_lower_inverse_blocked(const float* a, int lda, float* t, int ldt, float* scratch) {
  constexpr int B = 16, NB = C / B;
  static_assert(C % B == 0 && C <= kBlockThreads, "C a multiple of 16 and a thread for each of T's columns");
  for (int idx = threadIdx.x; idx < C * C; idx += kBlockThreads) {
    const int i = idx / C, j = idx % C;
    if (j / B > i / B) t[i * ldt + j] = 0.0f;
  }
  if (threadIdx.x < C) {
    const int b = threadIdx.x / B, j = threadIdx.x % B;
    unit_lower_inverse_column<B>(a + b * B * lda + b * B, lda, j,
                                 [&](int i, float x) { t[(b * B + i) * ldt + b * B + j] = x; });
  }
  __syncthreads();
  for (int d = 1; d < NB; ++d) {  // the blocks (j + d, j), j < NB - d
    for (int idx = threadIdx.x; idx < (NB - d) * B * B; idx += kBlockThreads) {
      const int j = idx / (B * B), r = idx / B % B, c = idx % B;
      const float* arow = a + ((j + d) * B + r) * lda;
      float s0 = 0.0f, s1 = 0.0f;
#pragma unroll 4
      for (int m = j * B; m < (j + d) * B; m += 2) {
        s0 = fmaf(arow[m], t[m * ldt + j * B + c], s0);
        s1 = fmaf(arow[m + 1], t[(m + 1) * ldt + j * B + c], s1);
      }
      scratch[idx] = s0 + s1;
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < (NB - d) * B * B; idx += kBlockThreads) {
      const int j = idx / (B * B), r = idx / B % B, c = idx % B, i0 = (j + d) * B;
      const float* trow = t + (i0 + r) * ldt + i0;  // T_ii's row r: zero past its diagonal
      float s = 0.0f;
      for (int m = 0; m <= r; ++m) s = fmaf(trow[m], scratch[j * B * B + m * B + c], s);
      t[(i0 + r) * ldt + j * B + c] = -s;
    }
    __syncthreads();
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
