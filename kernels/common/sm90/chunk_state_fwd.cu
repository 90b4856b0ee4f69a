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

#include "kernels/common/sm90/checks.h"
#include "kernels/common/sm90/common.cuh"
#include "kernels/common/sm90/sm90_kernels.h"

#include <cuda_runtime.h>


#include <stdexcept>
#include <string>

namespace deltabench::cuda::sm90 {
namespace {

using namespace cute;
using namespace sm90::detail;

constexpr int kC = kStateChunk;
constexpr int kBV = kStateColumns;
constexpr int kThreads = kWarpgroupThreads;
constexpr int kLdU = kBV + 8;  // U's rows, padded by 16 bytes (read by the accumulators' coordinates)

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

// U is Inner (the UT transform's) for the delta rules, v itself (the inputs' I) for linear attention.
template <class E, int KD, class TU>
struct alignas(1024) Smem {
  using L = Tiles<E, KD>;
  // Each swizzled tile starts on a 1024-byte boundary: the swizzle acts on address bits 4-9.
  alignas(1024) E w[cosize_v<typename L::LayoutW>];
  alignas(1024) E k[cosize_v<typename L::LayoutK>];
  alignas(1024) E h[cosize_v<typename L::LayoutH>];
  alignas(1024) E v[cosize_v<typename L::LayoutV>];
  alignas(16) TU u[2][kC * kLdU];
  float G[kC];  // the chunk's cumulative log decay
};

template <class I, int KD, bool kW>
using StateSmem = Smem<Inner, KD, std::conditional_t<kW, Inner, I>>;

// I: the inputs' dtype (k; v as U for linear attention); W, U (delta rules), h and v_new are Inner.
template <class I, int KD, bool kW, bool kGated>
__global__ void __launch_bounds__(kThreads) state_forward_kernel(const StateFwdParams p) {
#if defined(__CUDA_ARCH__) && defined(CUTE_ARCH_MMA_SM90A_ENABLED)
  using E = Inner;
  using TU = std::conditional_t<kW, Inner, I>;
  using L = Tiles<E, KD>;
  extern __shared__ char smem_raw[];
  auto& s = aligned_smem<StateSmem<I, KD, kW>>(smem_raw);
  const int tid = threadIdx.x;
  const int64_t H = p.H, V = p.V;
  const SequenceSpan seq = locate_sequence(p.seq_starts, p.chunk_starts, p.T, H);
  const int64_t n = seq.n, head = seq.head, t_begin = seq.t_begin, t_end = seq.t_end, chunk0 = seq.chunk0;
  const int chunks = seq.chunks;
  const int64_t col0 = int64_t(blockIdx.x) * kBV;

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
  const TU* u = static_cast<const TU*>(p.u);
  const I* k = static_cast<const I*>(p.k);
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
    // The chunk's cumulative log decay, by the first warp.
    if constexpr (kGated) {
      if (tid < 32) chunk_cumsum(p.g + t0 * H + head, H, valid_rows, s.G);
    }
    float G_last = 0.0f;
    // Chunk ci's copies landed (this thread's; the newest group is chunk ci + 1's); its K made Inner in place
    // by the thread that copied each piece, then every thread's made visible.
    wait<1>();
    if constexpr (!std::is_same_v<I, E>) {
      for (int i = tid; i < kC * (KD / 8); i += kThreads) to_inner_in_place<I>(&sK((i % (KD / 8)) * 8, i / (KD / 8), b));
    }
    landed_for_wgmma<1>();
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

template <class I, int KD, bool kW, bool kGated>
void launch(const StateFwdParams& p, cudaStream_t stream) {
  launch_warpgroup<StateSmem<I, KD, kW>>("sm90::chunk_state_forward", state_forward_kernel<I, KD, kW, kGated>,
                                dim3(static_cast<unsigned>(p.V / kBV), static_cast<unsigned>(p.N * p.H)), stream, p);
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
  detail::CallShape shape{p.dtype, p.N, p.T, p.H, p.K, p.V, p.seq_starts, p.chunk_starts};
  detail::check_call("sm90::chunk_state_forward", shape, {{"u", p.u}, {"k", p.k}, {"h", p.h}, {"v_new", p.v_new}}, {{"w", p.w}});
  if (p.N * p.H > 65535) {
    throw std::invalid_argument("sm90::chunk_state_forward: N H must be at most 65535, a block row each (got " +
                                std::to_string(p.N * p.H) + ")");
  }
  const auto s = static_cast<cudaStream_t>(stream);
  if (p.dtype == Dtype::kBF16) return dispatch_k<cutlass::bfloat16_t>(p, s);
  return dispatch_k<cutlass::half_t>(p, s);
}

}  // namespace deltabench::cuda::sm90
