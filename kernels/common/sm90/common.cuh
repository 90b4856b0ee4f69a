#pragma once
// What the sm_90a kernels (kernels/common/sm90/*.cu) share beyond tiles.h (their operand tiles, products and
// accumulator layout): 16-byte cp.async copies that zero-fill past a sequence's end, shared and global stores of
// accumulator pairs and of 16-byte pieces, rows of an accumulator scaled and summed, one waited-for wgmma batch, a
// chunk's cumulative log decay by one warp, where a chunk lies, the aligned shared memory, and the launch.

#include "kernels/common/sm90/tiles.h"

#include <cute/tensor.hpp>
#include <cutlass/arch/barrier.h>
#include <cutlass/numeric_types.h>

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace deltabench::cuda::sm90::detail {

using namespace cute;

inline constexpr int kWarpgroupThreads = 128;  // every sm_90a kernel here is one warpgroup a block

__device__ __forceinline__ void copy16_zfill(void* dst, const void* src, bool valid) {
  const auto to = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  const int bytes = valid ? 16 : 0;  // 0: the 16 bytes are zero-filled, nothing is read
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(to), "l"(src), "r"(bytes) : "memory");
}
__device__ __forceinline__ void commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int kPending>
__device__ __forceinline__ void wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

// The kernels' 16-bit intermediates (W, U, h, v_new, P) and the type of every product's operands: fp16, whose
// 10-bit mantissa keeps the forward's error at half of bf16's (kernels/delta_rule/NOTES.md, Hopper version 1);
// bf16 inputs are made fp16 in shared memory (to_inner_in_place). Inputs past fp16's +-65504 overflow.
using Inner = cutlass::half_t;

// 16 bytes at a 32-bit shared address (__cvta_generic_to_shared's), into registers and back: one LDS.128 / STS.128.
__device__ __forceinline__ uint4 load_shared_16(unsigned at) {
  uint4 v;
  asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];\n" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(at));
  return v;
}
__device__ __forceinline__ void store_shared_16(unsigned at, uint4 v) {
  asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(at), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w) : "memory");
}
// 16 bytes to device memory in one store (STG.E.128; a plain uint4 assignment compiled to four 4-byte ones in these
// kernels). out 16-byte aligned.
__device__ __forceinline__ void store_global_16(void* out, uint4 v) {
  asm volatile("st.global.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"l"(out), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w) : "memory");
}
// 16 bytes of shared memory, by generic address, as one LDS.128.
__device__ __forceinline__ uint4 load_shared_16(const void* p) {
  return load_shared_16(static_cast<unsigned>(__cvta_generic_to_shared(p)));
}

// 16 bytes at a shared address, 8 elements of I that this thread copied there (its copies waited for), made
// Inner in place; nothing where I is Inner. bf16 -> fp32 is exact and fp32 -> fp16 rounds to nearest.
template <class I>
__device__ __forceinline__ void to_inner_in_place(const void* p) {
  if constexpr (!std::is_same_v<I, Inner>) {
    static_assert(std::is_same_v<I, cutlass::bfloat16_t>, "inputs are bf16 or fp16");
    const auto at = static_cast<unsigned>(__cvta_generic_to_shared(p));
    const uint4 v = load_shared_16(at);
    uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float lo = __uint_as_float(w[i] << 16), hi = __uint_as_float(w[i] & 0xffff0000u);
      w[i] = uint32_t(__half_as_ushort(__float2half_rn(lo))) | (uint32_t(__half_as_ushort(__float2half_rn(hi))) << 16);
    }
    store_shared_16(at, make_uint4(w[0], w[1], w[2], w[3]));
  }
}

// As to_inner_in_place, each element times `scale` (rounded once, from fp32); runs for Inner inputs too.
template <class I>
__device__ __forceinline__ void scaled_to_inner_in_place(const void* p, float scale) {
  const auto at = static_cast<unsigned>(__cvta_generic_to_shared(p));
  const uint4 v = load_shared_16(at);
  uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    float lo, hi;
    if constexpr (std::is_same_v<I, Inner>) {
      lo = __half2float(__ushort_as_half(static_cast<unsigned short>(w[i] & 0xffffu)));
      hi = __half2float(__ushort_as_half(static_cast<unsigned short>(w[i] >> 16)));
    } else {
      lo = __uint_as_float(w[i] << 16);
      hi = __uint_as_float(w[i] & 0xffff0000u);
    }
    w[i] = uint32_t(__half_as_ushort(__float2half_rn(lo * scale))) |
           (uint32_t(__half_as_ushort(__float2half_rn(hi * scale))) << 16);
  }
  store_shared_16(at, make_uint4(w[0], w[1], w[2], w[3]));
}

// Waits for this thread's copies but the newest kPending groups, then makes every thread's copies and
// shared stores visible to the block and to wgmma (the async proxy): the step before a product reads them.
template <int kPending>
__device__ __forceinline__ void landed_for_wgmma() {
  wait<kPending>();
  cutlass::arch::fence_view_async_shared();
  __syncthreads();
}

// Two values rounded to E, the first in the low half: two adjacent elements of a row. The accumulators of
// a 64 x N wgmma hold columns in pairs: value i (even) and i + 1 of a thread are (m, n) and (m, n + 1).
template <class E>
__device__ __forceinline__ uint32_t pack_as(float a, float b) {
  return uint32_t(E(a).raw()) | (uint32_t(E(b).raw()) << 16);
}

// A 4-byte store to shared memory (STS; CuTe's swizzled pointers leave generic addresses otherwise).
__device__ __forceinline__ void store_shared(const void* p, uint32_t bits) {
  const auto to = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(to), "r"(bits) : "memory");
}

// A 2-byte store to shared memory.
__device__ __forceinline__ void store_shared_u16(const void* p, uint16_t bits) {
  const auto to = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("st.shared.b16 [%0], %1;\n" ::"r"(to), "h"(bits) : "memory");
}

// The form a kernel's final gradient stores take: fp32, or rounded to nearest into bf16 or fp16 (the inputs'
// dtype). Chosen once a block (with_out_form) and passed as a constant, so that each store is one conversion and
// one store, not a branch per pair.
enum class OutForm { kF32, kBF16, kF16 };
template <OutForm kForm>
using OutFormConstant = std::integral_constant<OutForm, kForm>;
// A 16-bit form's element type.
template <OutForm kForm>
using OutType = std::conditional_t<kForm == OutForm::kBF16, cutlass::bfloat16_t, cutlass::half_t>;

// f(OutFormConstant<form>) for the form a null / non-null 16-bit target and the dtype say.
template <class F>
__device__ __forceinline__ void with_out_form(const void* out16, bool bf16, F&& f) {
  if (out16 == nullptr) {
    f(OutFormConstant<OutForm::kF32>{});
  } else if (bf16) {
    f(OutFormConstant<OutForm::kBF16>{});
  } else {
    f(OutFormConstant<OutForm::kF16>{});
  }
}

// Two adjacent fp32 values of a row, stored at element `index` (even) of out32 (fp32) or, rounded in the form's
// dtype, of out16, as one 8-byte or 4-byte store.
template <OutForm kForm>
__device__ __forceinline__ void store_pair(float* out32, void* out16, int64_t index, float a, float b) {
  if constexpr (kForm == OutForm::kF32) {
    // One 8-byte store: a float2 assignment compiled to two 4-byte ones here, each covering half of a warp's sectors.
    asm volatile("st.global.v2.f32 [%0], {%1, %2};\n" ::"l"(out32 + index), "f"(a), "f"(b) : "memory");
  } else {
    *reinterpret_cast<uint32_t*>(static_cast<uint16_t*>(out16) + index) = pack_as<OutType<kForm>>(a, b);
  }
}

// A [64 x D] 16-bit tile staged in shared memory for whole-row stores (D 64 or 128): element (r, c) sits in row r at
// 16-byte chunk (c / 8) ^ (r % 8), so that a warp's pair stores in the accumulators' layout (8 rows, one chunk
// each) and a quarter warp's 16-byte reads of 8 consecutive chunks of a row each fall in distinct banks.
template <int D>
__device__ __forceinline__ int staged_at(int r, int c) {
  static_assert(D % 64 == 0, "eight 16-byte chunks a row at least");
  return r * D + ((((c >> 3) ^ (r & 7)) << 3) | (c & 7));
}

// The staged tile's first `rows` rows to device memory, 16 bytes a thread at a time (whole 32-byte sectors, where
// the accumulators' pair stores cover half of each): row r at out + r * stride. The staging written by every
// thread and a barrier passed before the call.
template <int D, int kThreads>
__device__ __forceinline__ void store_staged_rows(const uint16_t* stage, int rows, uint16_t* out, int64_t stride, int tid) {
  constexpr int kChunks = D / 8;
  for (int i = tid; i < 64 * kChunks; i += kThreads) {
    const int r = i / kChunks, j = i % kChunks;
    if (r >= rows) break;  // i grows with r
    store_global_16(out + r * stride + j * 8, load_shared_16(stage + staged_at<D>(r, j * 8)));
  }
}

// threadIdx.x, read so that the compiler cannot tell it equal to an earlier read.
__device__ __forceinline__ int opaque_tid() {
  int t;
  asm volatile("mov.u32 %0, %%tid.x;\n" : "=r"(t));
  return t;
}

// One wgmma batch: acc (+)= A B, issued by the warpgroup and waited for.
template <class Mma, class TA, class TB, class TC>
__device__ __forceinline__ void product(Mma& mma, const TA& a, const TB& b, TC& acc) {
  warpgroup_fence_operand(acc);
  warpgroup_arrive();
  gemm(mma, a, b, acc);
  warpgroup_commit_batch();
  warpgroup_wait<0>();
  warpgroup_fence_operand(acc);
}

// The inclusive cumulative sum of a chunk's log decays, lane `lane` holding tokens 2 lane (a) and 2 lane + 1 (c),
// into G[0..63] by the 32 lanes of one warp: a scan over the lanes.
__device__ __forceinline__ void cumsum_pairs(float a, float c, float* G) {
  const int lane = threadIdx.x % 32;
  c += a;
  float sum = c;
#pragma unroll
  for (int d = 1; d < 32; d *= 2) {
    const float o = __shfl_up_sync(0xffffffffu, sum, d);
    if (lane >= d) sum += o;
  }
  const float before = sum - c;  // the lanes below this one
  G[2 * lane] = before + a;
  G[2 * lane + 1] = before + c;
}

// The inclusive cumulative sum of g[0], g[stride], ... over the chunk's first `rows` tokens (zeros after
// them) into G[0..63], by the 32 lanes of one warp: two tokens a lane. Call from every lane of the warp; G is
// visible to the others after a barrier. Its loads wait on device memory: the chunk-parallel kernels call it
// while their tiles' copies are in flight.
__device__ __forceinline__ void chunk_cumsum(const float* g, int64_t stride, int rows, float* G) {
  const int lane = threadIdx.x % 32;
  const float a = 2 * lane < rows ? g[(2 * lane) * stride] : 0.0f;
  const float c = 2 * lane + 1 < rows ? g[(2 * lane + 1) * stride] : 0.0f;
  cumsum_pairs(a, c, G);
}

// The same in two halves for the state passes, whose chunk loops would otherwise wait on g's loads every
// chunk: request_chunk_g copies the chunk's g into raw[0..63] by cp.async (4 bytes a copy, zero past `rows`), each
// lane of one warp the two tokens it sums, in the caller's copy group; once this lane's group has landed (its
// cp.async.wait_group; the lane reads only what it copied, so no barrier), chunk_cumsum_landed sums them.
__device__ __forceinline__ void request_chunk_g(float* raw, const float* g, int64_t stride, int rows) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = 2 * lane + h;
    const bool valid = r < rows;
    const auto to = static_cast<unsigned>(__cvta_generic_to_shared(raw + r));
    const float* from = valid ? g + r * stride : g;  // nothing read where not valid
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(to), "l"(from), "r"(valid ? 4 : 0) : "memory");
  }
}
__device__ __forceinline__ void chunk_cumsum_landed(const float* raw, float* G) {
  const int lane = threadIdx.x % 32;
  cumsum_pairs(raw[2 * lane], raw[2 * lane + 1], G);
}

// Where a chunk of a chunk-parallel grid lies: its first token and its rows of the sequence (at most 64).
// Chunks are numbered over the batch: N ceil(T / 64) of N equal lengths, or chunk_starts[N] of a varlen
// batch (chunk_starts[n] <= chunk < chunk_starts[n + 1], found by a binary search).
struct ChunkSpan {
  int64_t t0;
  int rows;
};
__device__ __forceinline__ ChunkSpan locate_chunk(int64_t chunk, const int64_t* chunk_starts, const int64_t* seq_starts,
                                                  int64_t N, int64_t T) {
  int64_t t_begin, t_end, local;
  if (chunk_starts) {
    int64_t lo = 0, hi = N;
    while (hi - lo > 1) {
      const int64_t mid = (lo + hi) / 2;
      if (chunk_starts[mid] <= chunk) {
        lo = mid;
      } else {
        hi = mid;
      }
    }
    local = chunk - chunk_starts[lo];
    t_begin = seq_starts[lo];
    t_end = seq_starts[lo + 1];
  } else {
    const int64_t per = (T + 63) / 64;
    local = chunk % per;
    t_begin = (chunk / per) * T;
    t_end = t_begin + T;
  }
  const int64_t t0 = t_begin + local * 64;
  return {t0, t_end - t0 < 64 ? static_cast<int>(t_end - t0) : 64};
}

// Column j of T = (I + A)^-1, A strictly lower triangular N x N fp32 in shared memory (row stride lda;
// what lies on and above the diagonal is never read), into x by forward substitution:
// x_i = [i == j] - sum_{m < i} A_im x_m, zero above the diagonal by itself. Fully unrolled, so that x stays
// in registers and every thread of a warp reads the same A_im at each step (a broadcast). N 64: a chunk's
// whole T (version 3f); N 16: the diagonal blocks of unit_lower_inverse_blocked.
template <int N>
__device__ __forceinline__ void unit_lower_inverse_column(const float* a, int lda, int j, float (&x)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) {
    float sum = i == j ? 1.0f : 0.0f;
#pragma unroll
    for (int m = 0; m < i; ++m) sum -= a[i * lda + m] * x[m];
    x[i] = sum;
  }
}

// T = (I + A)^-1 in place, by blocks (FLA's solve_tril does the same with its own tiles): a, 64 x 64 fp32 in
// shared memory (row stride lda, odd so that a column's elements fall in distinct banks), holds A strictly
// below the diagonal and zeros on and above it; on return it holds T, ones on the diagonal and zeros above.
// All 128 threads of the warpgroup call it; it ends on a barrier. Three steps, each a barrier apart:
//   1. the four 16 x 16 diagonal blocks inverted by forward substitution, a column a thread (threads 0-63);
//   2. the two 32 x 32 diagonal blocks joined from them: T_10 = -T_11 (A_10 T_00), 2 x 2 outputs a thread;
//   3. the 64 x 64 joined from those: T_10 = -T_11 (A_10 T_00) on 32 x 32 blocks, 2 x 4 outputs a thread.
// About 760 multiply-adds a thread against the column substitution's 2,016 (on 64 of the 128 threads, in a
// dependent chain). The sums run in a fixed order, so every kernel that calls it gets the same bits.
namespace inverse_detail {
// x = L M for one thread's R x C outputs, N terms in order: L's row r at l + r lda, M's row k at m + k lda.
template <int R, int C, int N>
__device__ __forceinline__ void tile_product(const float* l, const float* m, int lda, float (&x)[R][C]) {
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int c = 0; c < C; ++c) x[r][c] = 0.0f;
#pragma unroll
  for (int k = 0; k < N; ++k) {
    float lr[R], mc[C];
#pragma unroll
    for (int r = 0; r < R; ++r) lr[r] = l[r * lda + k];
#pragma unroll
    for (int c = 0; c < C; ++c) mc[c] = m[k * lda + c];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int c = 0; c < C; ++c) x[r][c] = fmaf(lr[r], mc[c], x[r][c]);
  }
}

// sign x into the R x C tile at out (row stride lda), once every thread has read what it overwrites; the
// barrier after it makes it visible.
template <int R, int C>
__device__ __forceinline__ void tile_store(float* out, int lda, const float (&x)[R][C], float sign) {
  __syncthreads();
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int c = 0; c < C; ++c) out[r * lda + c] = sign * x[r][c];
  __syncthreads();
}

// The join T_10 = -T_11 (A_10 T_00) of N x N blocks, the pair's top-left corner at (row0, col0), in two
// products whose output takes A_10's place: this thread's R x C outputs at (r0, c0) within T_10.
template <int R, int C, int N>
__device__ __forceinline__ void join(float* a, int lda, int row0, int col0, int r0, int c0) {
  float* const below = a + (row0 + N + r0) * lda;  // this thread's rows of A_10 and T_11
  float x[R][C];
  tile_product<R, C, N>(below + col0, a + col0 * lda + col0 + c0, lda, x);                  // X = A_10 T_00
  tile_store(below + col0 + c0, lda, x, 1.0f);
  tile_product<R, C, N>(below + row0 + N, a + (row0 + N) * lda + col0 + c0, lda, x);        // T_11 X
  tile_store(below + col0 + c0, lda, x, -1.0f);
}
}  // namespace inverse_detail

__device__ __forceinline__ void unit_lower_inverse_blocked(float* a, int lda, int tid) {
  // 1. Column c of diagonal block b by substitution within the block.
  constexpr int kB = 16;
  float x[kB];
  const int b = (tid / kB) % 4, c = tid % kB;
  float* ab = a + b * kB * lda + b * kB;
  if (tid < 4 * kB) unit_lower_inverse_column(ab, lda, c, x);
  __syncthreads();  // every column's thread has read its block
  if (tid < 4 * kB) {
#pragma unroll
    for (int i = 0; i < kB; ++i) ab[i * lda + c] = x[i];
  }
  __syncthreads();
  // 2. Blocks (0, 1) and (2, 3) joined: 64 threads a pair, each 2 x 2 of the 16 x 16 T_10.
  {
    const int pair = tid / 64, local = tid % 64;
    inverse_detail::join<2, 2, kB>(a, lda, pair * 2 * kB, pair * 2 * kB, (local / 8) * 2, (local % 8) * 2);
  }
  // 3. The two 32 x 32 blocks joined: each thread 2 x 4 of the 32 x 32 T_10.
  inverse_detail::join<2, 4, 2 * kB>(a, lda, 0, 0, (tid / 8) * 2, (tid % 8) * 4);
}

// A 64 x N accumulator's rows scaled and summed by the closed-form layout of its values (tiles.h: acc_row,
// acc_upper): a value's row half is a constant of its index, so the unrolled loops carry no per-value row
// arithmetic (CuTe's coordinates of an opaque thread index made the compiler compute every value's row and
// address: the gated dq/dk/dW was 146 KB of code, 87 without them). Rows r and r + 8 of the thread (r = acc_row(tid))
// times f0 and f8.
template <class Acc>
__device__ __forceinline__ void scale_acc_rows(Acc& acc, float f0, float f8) {
#pragma unroll
  for (int i = 0; i < int(cute::size(acc)); ++i) acc(i) *= acc_upper(i) ? f8 : f0;
}
// Row sums of a 64 x N accumulator into out[64], in a fixed order: add_pair(i, x_i, x_i+1, sum) adds the pair
// (i even) to its row's sum value by value, then the four lanes of a quad add theirs. Call from every thread of
// the warpgroup; out is visible to the others after a barrier.
template <class Acc, class F>
__device__ __forceinline__ void acc_row_sums(const Acc& acc, F add_pair, float* out, int tid) {
  float part[2] = {0.0f, 0.0f};
#pragma unroll
  for (int i = 0; i < int(cute::size(acc)); i += 2) add_pair(i, acc(i), acc(i + 1), part[acc_upper(i)]);
#pragma unroll
  for (int k = 0; k < 2; ++k) {
    part[k] += __shfl_xor_sync(0xffffffffu, part[k], 1);
    part[k] += __shfl_xor_sync(0xffffffffu, part[k], 2);
  }
  if (tid % 4 == 0) {
    out[acc_row(tid)] = part[0];
    out[acc_row(tid) + 8] = part[1];
  }
}

// Two adjacent Inner elements of shared memory (4-byte aligned) as fp32, by one LDS.
__device__ __forceinline__ float2 load_shared_pair(const Inner* p) {
  static_assert(std::is_same_v<Inner, cutlass::half_t>, "the pair read as fp16");
  const auto at = static_cast<unsigned>(__cvta_generic_to_shared(p));
  uint32_t bits;
  asm volatile("ld.shared.b32 %0, [%1];\n" : "=r"(bits) : "r"(at));
  return __half22float2(*reinterpret_cast<const __half2*>(&bits));
}

// A sequential pass's block (blockIdx.y = sequence n times H plus head): the sequence's tokens [t_begin,
// t_end), its first chunk's index over the batch and its chunks (equal lengths T, or seq_starts and
// chunk_starts as locate_chunk takes them).
struct SequenceSpan {
  int64_t n, head, t_begin, t_end, chunk0;
  int chunks;
};
__device__ __forceinline__ SequenceSpan locate_sequence(const int64_t* seq_starts, const int64_t* chunk_starts, int64_t T,
                                                        int64_t H) {
  SequenceSpan s;
  s.n = blockIdx.y / H;
  s.head = blockIdx.y % H;
  s.t_begin = seq_starts ? seq_starts[s.n] : s.n * T;
  s.t_end = seq_starts ? seq_starts[s.n + 1] : (s.n + 1) * T;
  s.chunk0 = chunk_starts ? chunk_starts[s.n] : s.n * ((T + 63) / 64);
  s.chunks = static_cast<int>((s.t_end - s.t_begin + 63) / 64);
  return s;
}

// The 1024-byte-aligned start of the dynamic shared memory (the launch asks for 1024 bytes of slack), by
// pointer arithmetic on the __shared__ array: a round trip through an integer would lose the address
// space, and every access would go through 64-bit generic addresses.
template <class Storage>
__device__ __forceinline__ Storage& aligned_smem(char* raw) {
  const unsigned misaligned = static_cast<unsigned>(__cvta_generic_to_shared(raw)) & 1023u;
  return *reinterpret_cast<Storage*>(raw + ((1024u - misaligned) & 1023u));
}

// Launches kernel<<<grid, kWarpgroupThreads, used + 1024 bytes>>>(p) on `stream` (the 1024: the slack aligned_smem
// takes; used: sizeof(Storage), or less where the call leaves the end of Storage unused), the kernel's dynamic
// shared-memory limit raised first; throws std::runtime_error ("<who>: ...") where either fails.
template <class Storage, class Params>
void launch_warpgroup(const char* who, void (*kernel)(Params), dim3 grid, cudaStream_t stream, const Params& p,
                      size_t used = sizeof(Storage)) {
  const size_t bytes = used + 1024;
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)) != cudaSuccess) {
    throw std::runtime_error(std::string(who) + ": cannot give the kernel " + std::to_string(bytes) +
                             " bytes of shared memory: " + cudaGetErrorString(cudaGetLastError()));
  }
  kernel<<<grid, kWarpgroupThreads, bytes, stream>>>(p);
  const auto err = cudaGetLastError();
  if (err != cudaSuccess) throw std::runtime_error(std::string(who) + ": launch failed: " + cudaGetErrorString(err));
}

}  // namespace deltabench::cuda::sm90::detail
