#pragma once
// WMMA's TF32 tiles as the chunked training kernels use them (chunk_state.cu, chunk_grads.cu,
// chunk_dout.cu and the delta rules' UT kernels): m = n = kTile, k = kTileK; fp32 operands rounded to
// TF32 (10 significant bits) before each product, fp32 accumulation. Shared rows are padded by kTcPad floats so that the 16 rows a fragment
// load touches start in different banks. A fragment's start, in shared or global memory, must lie on a
// 32-byte boundary and its leading dimension be a multiple of 4 floats. Operands in shared memory are
// loaded with load_shared (below), not wmma::load_matrix_sync.

#include <mma.h>

#include <type_traits>

namespace deltabench::cuda::tf32 {

namespace wmma = nvcuda::wmma;

inline constexpr int kTile = 16;
inline constexpr int kTileK = 8;
inline constexpr int kTcPad = 4;

using FragA = wmma::fragment<wmma::matrix_a, kTile, kTile, kTileK, wmma::precision::tf32, wmma::row_major>;
// FragAT: a transposed operand (column-major).
using FragAT = wmma::fragment<wmma::matrix_a, kTile, kTile, kTileK, wmma::precision::tf32, wmma::col_major>;
using FragB = wmma::fragment<wmma::matrix_b, kTile, kTile, kTileK, wmma::precision::tf32, wmma::row_major>;
// FragBT: B = X^T for a row-major X, read column-major.
using FragBT = wmma::fragment<wmma::matrix_b, kTile, kTile, kTileK, wmma::precision::tf32, wmma::col_major>;
using Acc = wmma::fragment<wmma::accumulator, kTile, kTile, kTileK, float>;

template <typename Frag>
__device__ __forceinline__ void round_tf32(Frag& f, float sign = 1.0f) {
#pragma unroll
  for (int e = 0; e < f.num_elements; ++e) f.x[e] = wmma::__float_to_tf32(sign * f.x[e]);
}

// x rounded to TF32 (an fp32 value with 10 significant bits), as round_tf32 rounds a fragment's elements.
__device__ __forceinline__ float to_tf32(float x) { return wmma::__float_to_tf32(x); }
__device__ __forceinline__ float4 tf32x4(float4 x) {
  return make_float4(to_tf32(x.x), to_tf32(x.y), to_tf32(x.z), to_tf32(x.w));
}

// A fragment of one of the four kinds above loaded from shared memory at p (ld floats a row or column), as
// wmma::load_matrix_sync loads it, but by PTX's wmma.load with the .shared state space and a 32-bit
// shared address. load_matrix_sync's generic pointer compiles to one generic 64-bit LD (and its own
// 64-bit address arithmetic) an element for these TF32 shapes wherever it was looked at (sm_90a SASS of
// chunk_grads, chunk_dout and both UT kernels, 2026-12-05): the ALU pipe those kernels were bound by.
// The asm reads memory the compiler cannot see, hence the "memory" clobber: no store before it is moved
// past it.
template <typename Frag>
__device__ __forceinline__ void load_shared(Frag& f, const float* p, unsigned ld) {
  static_assert(Frag::num_elements == 4, "m16n16k8 TF32 fragments hold 4 elements a thread");
  const auto addr = static_cast<unsigned>(__cvta_generic_to_shared(p));
  unsigned r0, r1, r2, r3;
  if constexpr (std::is_same_v<Frag, FragA>) {
    asm volatile("wmma.load.a.sync.aligned.row.m16n16k8.shared.tf32 {%0, %1, %2, %3}, [%4], %5;\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(addr), "r"(ld) : "memory");
  } else if constexpr (std::is_same_v<Frag, FragAT>) {
    asm volatile("wmma.load.a.sync.aligned.col.m16n16k8.shared.tf32 {%0, %1, %2, %3}, [%4], %5;\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(addr), "r"(ld) : "memory");
  } else if constexpr (std::is_same_v<Frag, FragB>) {
    asm volatile("wmma.load.b.sync.aligned.row.m16n16k8.shared.tf32 {%0, %1, %2, %3}, [%4], %5;\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(addr), "r"(ld) : "memory");
  } else {
    static_assert(std::is_same_v<Frag, FragBT>, "one of FragA, FragAT, FragB, FragBT");
    asm volatile("wmma.load.b.sync.aligned.col.m16n16k8.shared.tf32 {%0, %1, %2, %3}, [%4], %5;\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(addr), "r"(ld) : "memory");
  }
  f.x[0] = __uint_as_float(r0);
  f.x[1] = __uint_as_float(r1);
  f.x[2] = __uint_as_float(r2);
  f.x[3] = __uint_as_float(r3);
}

// acc += a b for one k step: a's 16 x 8 tile at pa (ld lda), b's 8 x 16 tile at pb (ldb), both in shared
// memory (loaded by load_shared) and rounded to TF32. FragA/FragAT and FragB/FragBT say how each is laid
// out. kRoundA / kRoundB false: that operand already holds TF32 values (rounded once where it was
// staged, with to_tf32), so its fragment is not converted again: the same product bits, 4 conversions a
// thread fewer for each. An operand that several tiles load is cheaper rounded once.
template <typename A, typename B, bool kRoundA = true, bool kRoundB = true>
__device__ __forceinline__ void mma_step(Acc& acc, const float* pa, unsigned lda, const float* pb, unsigned ldb) {
  A a;
  B b;
  load_shared(a, pa, lda);
  load_shared(b, pb, ldb);
  if constexpr (kRoundA) round_tf32(a);
  if constexpr (kRoundB) round_tf32(b);
  wmma::mma_sync(acc, a, b, acc);
}

}  // namespace deltabench::cuda::tf32
