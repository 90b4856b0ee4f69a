// The forward's state pass on Hopper's warpgroup products (wgmma), version 1: see sm90_kernels.h for
// what it computes, kernels/delta_rule/NOTES.md ("Hopper version 1") for the design and its numbers.
//
// One block (one warpgroup, 128 threads) a (sequence, head, 64 columns of V). The state slice S [K x 64]
// stays in the warpgroup's fp32 accumulators across the chunks. Per chunk of 64 tokens:
//   1. S, rounded to 16 bits, goes to shared memory (sH), and from there to h in device memory;
//   2. v = W S on wgmma (A = W [64 x K] K-major, B = sH MN-major), then v_new = U - v in registers;
//      v_new goes to device memory, and scaled by exp(G_last - G) and rounded to sV;
//   3. S = exp(G_last) S + K^T sV on wgmma (A = K^T, M-major as K sits in memory; B = sV MN-major),
//      accumulated into S's registers.
// The next chunk's W, K and U come by cp.async (16 bytes a copy, zero-filled past the sequence's end)
// into the other of two buffers while this chunk's products run. The operand tiles are laid out in
// 128-byte-swizzled atoms (CuTe's GMMA::Layout_*_SW128_Atom), what wgmma's descriptors read without
// bank conflicts. Shared memory written by ordinary stores or cp.async is fenced to the async proxy
// (fence.proxy.async) before the barrier that precedes the wgmma reading it.

#include "kernels/common/sm90/sm90_kernels.h"

#include <cuda_runtime.h>

#include <cute/tensor.hpp>
#include <cutlass/arch/barrier.h>
#include <cutlass/numeric_types.h>

#include <stdexcept>
#include <string>

namespace deltabench::cuda::sm90 {
namespace {

using namespace cute;

constexpr int kC = kStateChunk;
constexpr int kBV = kStateColumns;
constexpr int kThreads = 128;  // one warpgroup
constexpr int kLdU = kBV + 8;  // U's rows, padded by 16 bytes (read by the accumulators' coordinates)

// The 64 x 64 x 16 warpgroup product of element type E with fp32 accumulation, A and B majorness given.
template <class E, GMMA::Major A, GMMA::Major B>
struct MmaOp;
template <GMMA::Major A, GMMA::Major B>
struct MmaOp<cutlass::bfloat16_t, A, B> {
  using type = SM90_64x64x16_F32BF16BF16_SS<A, B>;
};
template <GMMA::Major A, GMMA::Major B>
struct MmaOp<cutlass::half_t, A, B> {
  using type = SM90_64x64x16_F32F16F16_SS<A, B>;
};

template <class E, int KD>
struct Tiles {
  // W [C x KD], K-major, two buffers.            A of v = W S
  using LayoutW = decltype(tile_to_shape(GMMA::Layout_K_SW128_Atom<E>{}, Shape<Int<kC>, Int<KD>, _2>{}));
  // K^T [KD x C]: the feature index contiguous, as a row of k in memory; two buffers.   A of K^T v_new
  using LayoutK = decltype(tile_to_shape(GMMA::Layout_MN_SW128_Atom<E>{}, Shape<Int<KD>, Int<kC>, _2>{}));
  // S as B [BV x KD] (N = the value column, contiguous).                           B of W S
  using LayoutH = decltype(tile_to_shape(GMMA::Layout_MN_SW128_Atom<E>{}, Shape<Int<kBV>, Int<KD>>{}));
  // v_new as B [BV x C] (N = the value column, contiguous).                        B of K^T v_new
  using LayoutV = decltype(tile_to_shape(GMMA::Layout_MN_SW128_Atom<E>{}, Shape<Int<kBV>, Int<kC>>{}));

  using MmaV = decltype(make_tiled_mma(typename MmaOp<E, GMMA::Major::K, GMMA::Major::MN>::type{}));
  using MmaS = decltype(make_tiled_mma(typename MmaOp<E, GMMA::Major::MN, GMMA::Major::MN>::type{}));
};

template <class E, int KD>
struct alignas(1024) Smem {
  using L = Tiles<E, KD>;
  // Each swizzled tile starts on a 1024-byte boundary: the swizzle acts on address bits 4-9.
  alignas(1024) E w[cosize_v<typename L::LayoutW>];
  alignas(1024) E k[cosize_v<typename L::LayoutK>];
  alignas(1024) E h[cosize_v<typename L::LayoutH>];
  alignas(1024) E v[cosize_v<typename L::LayoutV>];
  alignas(16) E u[2][kC * kLdU];
  float G[kC];  // the chunk's cumulative log decay
};

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

template <class E, int KD, bool kW, bool kGated>
__global__ void __launch_bounds__(kThreads) state_forward_kernel(const StateFwdParams p) {
#if defined(__CUDA_ARCH__) && defined(CUTE_ARCH_MMA_SM90A_ENABLED)
  using L = Tiles<E, KD>;
  extern __shared__ char smem_raw[];
  // The dynamic window's start is rounded up to 1024 bytes (the launch asks for the slack), by pointer
  // arithmetic on the __shared__ array: a round trip through an integer would lose the address space,
  // and every access would go through 64-bit generic addresses.
  const unsigned misaligned = static_cast<unsigned>(__cvta_generic_to_shared(smem_raw)) & 1023u;
  auto& s = *reinterpret_cast<Smem<E, KD>*>(smem_raw + ((1024u - misaligned) & 1023u));
  const int tid = threadIdx.x;
  const int64_t H = p.H, V = p.V;
  const int64_t n = blockIdx.y / H, head = blockIdx.y % H;
  const int64_t col0 = int64_t(blockIdx.x) * kBV;
  const int64_t t_begin = p.seq_starts ? p.seq_starts[n] : n * p.T;
  const int64_t t_end = p.seq_starts ? p.seq_starts[n + 1] : (n + 1) * p.T;
  const int64_t chunk0 = p.chunk_starts ? p.chunk_starts[n] : n * ((p.T + kC - 1) / kC);
  const int chunks = static_cast<int>((t_end - t_begin + kC - 1) / kC);

  Tensor sW = make_tensor(make_smem_ptr(s.w), typename L::LayoutW{});  // (C, KD, 2)
  Tensor sK = make_tensor(make_smem_ptr(s.k), typename L::LayoutK{});  // (KD, C, 2)
  Tensor sH = make_tensor(make_smem_ptr(s.h), typename L::LayoutH{});  // (BV, KD)
  Tensor sV = make_tensor(make_smem_ptr(s.v), typename L::LayoutV{});  // (BV, C)

  typename L::MmaV mma_v;
  typename L::MmaS mma_s;
  auto thr_v = mma_v.get_thread_slice(tid);
  auto thr_s = mma_s.get_thread_slice(tid);
  Tensor tVrW = thr_v.make_fragment_A(thr_v.partition_A(sW));  // (MMA, 1, KD/16, 2) descriptors
  Tensor tVrH = thr_v.make_fragment_B(thr_v.partition_B(sH));  // (MMA, 1, KD/16)
  Tensor tSrK = thr_s.make_fragment_A(thr_s.partition_A(sK));  // (MMA, KD/64, C/16, 2)
  Tensor tSrV = thr_s.make_fragment_B(thr_s.partition_B(sV));  // (MMA, 1, C/16)
  Tensor accV = partition_fragment_C(mma_v, Shape<Int<kC>, Int<kBV>>{});  // v = W S, (token, column)
  Tensor accS = partition_fragment_C(mma_s, Shape<Int<KD>, Int<kBV>>{});  // S, (feature, column)
  // Each accumulator's (row, column) in its tile. Inside the chunk loop these are formed again from
  // `opaque_tid` each chunk, so that the compiler does not keep the 200-odd addresses of the per-element
  // stores in registers across the loop (it did: 255 registers and 1.2 KB of stack at K 128).
  Tensor cS = thr_s.partition_C(make_identity_tensor(Shape<Int<KD>, Int<kBV>>{}));

  // The initial state.
  CUTE_UNROLL
  for (int i = 0; i < size(accS); ++i) {
    const int f = get<0>(cS(i)), c = get<1>(cS(i));
    accS(i) = p.h0 ? p.h0[((n * H + head) * p.K + f) * V + col0 + c] : 0.0f;
  }

  const E* w = static_cast<const E*>(p.w);
  const E* u = static_cast<const E*>(p.u);
  const E* k = static_cast<const E*>(p.k);
  // Requests chunk ci's W, K and U into buffer b: 16 bytes a copy, rows past the sequence zero-filled.
  auto request = [&](int ci, int b) {
    const int64_t t0 = t_begin + int64_t(ci) * kC;
    constexpr int kPieces = KD / 8;  // 16-byte pieces of a row of K features
    for (int i = tid; i < kC * kPieces; i += kThreads) {
      const int r = i / kPieces, f = (i % kPieces) * 8;
      const bool valid = t0 + r < t_end;
      const int64_t row = valid ? (t0 + r) * H + head : 0;
      if constexpr (kW) copy16_zfill(&sW(r, f, b), w + row * KD + f, valid);
      copy16_zfill(&sK(f, r, b), k + row * KD + f, valid);
    }
    constexpr int kUPieces = kBV / 8;
    for (int i = tid; i < kC * kUPieces; i += kThreads) {
      const int r = i / kUPieces, c = (i % kUPieces) * 8;
      const bool valid = t0 + r < t_end;
      const int64_t row = valid ? (t0 + r) * H + head : 0;
      copy16_zfill(&s.u[b][r * kLdU + c], u + row * V + col0 + c, valid);
    }
    commit();
  };

  auto pack = [](float a, float b) { return pack_as<E>(a, b); };
  auto store_pair_shared = [](const E* at, float a, float b) { store_shared(at, pack_as<E>(a, b)); };
  E* h_out = static_cast<E*>(p.h);
  E* v_out = static_cast<E*>(p.v_new);
  if (chunks > 0) request(0, 0);
  for (int ci = 0; ci < chunks; ++ci) {
    const int b = ci & 1;
    const int me = opaque_tid();
    Tensor cV = mma_v.get_thread_slice(me).partition_C(make_identity_tensor(Shape<Int<kC>, Int<kBV>>{}));
    Tensor cS = mma_s.get_thread_slice(me).partition_C(make_identity_tensor(Shape<Int<KD>, Int<kBV>>{}));
    const int64_t t0 = t_begin + int64_t(ci) * kC;
    const int valid_rows = t_end - t0 < kC ? static_cast<int>(t_end - t0) : kC;
    // Every thread is past the last chunk's products (which read buffer b ^ 1 and sH, sV).
    __syncthreads();
    if (ci + 1 < chunks) {
      request(ci + 1, b ^ 1);
    } else {
      commit();  // an empty group, so that wait<1> below means chunk ci's copies in every thread
    }
    // 1. S, rounded, into sH.
    CUTE_UNROLL
    for (int i = 0; i < size(accS); i += 2) {
      store_pair_shared(&sH(get<1>(cS(i)), get<0>(cS(i))), accS(i), accS(i + 1));
    }
    // The chunk's cumulative log decay, by the first warp: two tokens a lane, a scan over the lanes.
    float G_last = 0.0f;
    if constexpr (kGated) {
      if (tid < 32) {
        float a = 0.0f, c = 0.0f;
        if (2 * tid < valid_rows) a = p.g[(t0 + 2 * tid) * H + head];
        if (2 * tid + 1 < valid_rows) c = p.g[(t0 + 2 * tid + 1) * H + head];
        c += a;
        float sum = c;
        CUTE_UNROLL
        for (int d = 1; d < 32; d *= 2) {
          const float o = __shfl_up_sync(0xffffffffu, sum, d);
          if (tid >= d) sum += o;
        }
        const float before = sum - c;  // the lanes below this one
        s.G[2 * tid] = before + a;
        s.G[2 * tid + 1] = before + c;
      }
    }
    wait<1>();
    cutlass::arch::fence_view_async_shared();
    __syncthreads();
    if constexpr (kGated) G_last = s.G[valid_rows - 1];

    // 2. v = W S, and h out while the product runs (both read sH).
    if constexpr (kW) {
      clear(accV);
      warpgroup_fence_operand(accV);
      warpgroup_arrive();
      gemm(mma_v, tVrW(_, _, _, b), tVrH, accV);
      warpgroup_commit_batch();
    }
    {
      // h[chunk0 + ci, head] [KD x V], this block's 64 columns: 16 bytes (8 columns) a copy from sH,
      // where a feature's 8 columns are contiguous.
      E* dst = h_out + ((chunk0 + ci) * H + head) * KD * V + col0;
      for (int i = tid; i < KD * (kBV / 8); i += kThreads) {
        const int f = i / (kBV / 8), c = (i % (kBV / 8)) * 8;
        *reinterpret_cast<uint4*>(dst + int64_t(f) * V + c) = *reinterpret_cast<const uint4*>(&sH(c, f));
      }
    }
    if constexpr (kW) {
      warpgroup_wait<0>();
      warpgroup_fence_operand(accV);
    }
    // v_new = U - v: out unscaled; into sV scaled by exp(G_last - G) and rounded.
    CUTE_UNROLL
    for (int i = 0; i < size(accV); i += 2) {
      const int r = get<0>(cV(i)), c = get<1>(cV(i));
      float x0 = float(s.u[b][r * kLdU + c]), x1 = float(s.u[b][r * kLdU + c + 1]);
      if constexpr (kW) {
        x0 -= accV(i);
        x1 -= accV(i + 1);
      }
      if (r < valid_rows) {
        *reinterpret_cast<uint32_t*>(v_out + (t0 + r) * H * V + head * V + col0 + c) = pack(x0, x1);
        if constexpr (kGated) {
          const float scale = __expf(G_last - s.G[r]);
          x0 *= scale;
          x1 *= scale;
        }
      }
      store_pair_shared(&sV(c, r), x0, x1);  // zero past the sequence: U and W were zero-filled there
    }
    if constexpr (kGated) {
      const float gamma = __expf(G_last);
      CUTE_UNROLL
      for (int i = 0; i < size(accS); ++i) accS(i) *= gamma;
    }
    cutlass::arch::fence_view_async_shared();
    __syncthreads();
    // 3. S += K^T v_new.
    product(mma_s, tSrK(_, _, _, b), tSrV, accS);
  }
  if (p.ht) {
    CUTE_UNROLL
    for (int i = 0; i < size(accS); ++i) {
      const int f = get<0>(cS(i)), c = get<1>(cS(i));
      p.ht[((n * H + head) * p.K + f) * V + col0 + c] = accS(i);
    }
  }
#endif
}

void fail(const std::string& what) { throw std::invalid_argument("sm90::chunk_state_forward: " + what); }

bool aligned16(const void* p) { return p == nullptr || reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <class E, int KD, bool kW, bool kGated>
void launch(const StateFwdParams& p, cudaStream_t stream) {
  auto* kernel = state_forward_kernel<E, KD, kW, kGated>;
  const size_t bytes = sizeof(Smem<E, KD>) + 1024;
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)) !=
      cudaSuccess) {
    throw std::runtime_error("sm90::chunk_state_forward: cannot give the kernel " + std::to_string(bytes) +
                             " bytes of shared memory: " + cudaGetErrorString(cudaGetLastError()));
  }
  const dim3 grid(static_cast<unsigned>(p.V / kBV), static_cast<unsigned>(p.N * p.H));
  kernel<<<grid, kThreads, bytes, stream>>>(p);
  const auto err = cudaGetLastError();
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("sm90::chunk_state_forward: launch failed: ") + cudaGetErrorString(err));
  }
}

template <class E, int KD>
void dispatch_rule(const StateFwdParams& p, cudaStream_t stream) {
  const bool has_w = p.w != nullptr, gated = p.g != nullptr;
  if (has_w && gated) return launch<E, KD, true, true>(p, stream);
  if (has_w) return launch<E, KD, true, false>(p, stream);
  if (gated) return launch<E, KD, false, true>(p, stream);
  return launch<E, KD, false, false>(p, stream);
}

template <class E>
void dispatch_k(const StateFwdParams& p, cudaStream_t stream) {
  if (p.K == 64) return dispatch_rule<E, 64>(p, stream);
  return dispatch_rule<E, 128>(p, stream);
}

}  // namespace

bool chunk_state_forward_supports(int64_t K, int64_t V) {
  return (K == 64 || K == 128) && V > 0 && V % kStateColumns == 0;
}

void chunk_state_forward(const StateFwdParams& p, void* stream) {
  std::string why;
  if (!available(&why)) throw std::runtime_error("sm90::chunk_state_forward: " + why);
  if (p.dtype != Dtype::kBF16 && p.dtype != Dtype::kFP16) fail("dtype must be bf16 or fp16 (got fp32)");
  if (!chunk_state_forward_supports(p.K, p.V)) {
    fail("K must be 64 or 128 and V a positive multiple of " + std::to_string(kStateColumns) + " (got K " +
         std::to_string(p.K) + ", V " + std::to_string(p.V) + ")");
  }
  if (p.N <= 0 || p.H <= 0) fail("N and H must be positive (got N " + std::to_string(p.N) + ", H " + std::to_string(p.H) + ")");
  if ((p.seq_starts == nullptr) != (p.chunk_starts == nullptr)) {
    fail("seq_starts and chunk_starts go together (one of them is null)");
  }
  if (p.seq_starts == nullptr && p.T <= 0) fail("T must be positive without seq_starts (got " + std::to_string(p.T) + ")");
  if (p.u == nullptr || p.k == nullptr || p.h == nullptr || p.v_new == nullptr) fail("u, k, h and v_new are required");
  for (const auto& [name, ptr] : {std::pair<const char*, const void*>{"w", p.w}, {"u", p.u}, {"k", p.k}, {"h", p.h},
                                  {"v_new", p.v_new}}) {
    if (!aligned16(ptr)) fail(std::string(name) + " must start on a 16-byte boundary");
  }
  const auto s = static_cast<cudaStream_t>(stream);
  if (p.dtype == Dtype::kBF16) return dispatch_k<cutlass::bfloat16_t>(p, s);
  return dispatch_k<cutlass::half_t>(p, s);
}

}  // namespace deltabench::cuda::sm90
