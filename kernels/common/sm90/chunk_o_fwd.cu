// The forward's output on Hopper's warpgroup products (wgmma), version 1: see sm90_kernels.h for what it
// computes, kernels/delta_rule/NOTES.md ("Hopper version 1") for the design.
//
// One block (one warpgroup, 128 threads) a (chunk, head, 64 columns of V); the chunks are independent.
// Q, K [64 x K], the chunk's state slice h [K x 64] and v_new [64 x 64] come by cp.async (zero-filled past
// the sequence's end) into 128-byte-swizzled tiles, then:
//   1. P = Q K^T (A = Q K-major, B = K K-major) and O = Q h (B = h, N-major as it sits in memory), one
//      wgmma batch;
//   2. P masked to j <= i, scaled by scale exp(G_i - G_j) and rounded into a K-major tile; O's rows scaled
//      by scale exp(G_i);
//   3. O += P v_new (B = v_new, N-major), and O's rows of the sequence out in pairs of columns.

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
constexpr int kBV = kOutputColumns;
constexpr int kThreads = kWarpgroupThreads;

template <class E, int KD>
struct Tiles {
  using LayoutQ = decltype(tile_to_shape(GMMA::Layout_K_SW128_Atom<E>{}, Shape<Int<kC>, Int<KD>>{}));   // Q, K
  using LayoutH = decltype(tile_to_shape(GMMA::Layout_MN_SW128_Atom<E>{}, Shape<Int<kBV>, Int<KD>>{}));  // h as B
  using LayoutV = decltype(tile_to_shape(GMMA::Layout_MN_SW128_Atom<E>{}, Shape<Int<kBV>, Int<kC>>{}));  // v_new as B
  using LayoutP = decltype(tile_to_shape(GMMA::Layout_K_SW128_Atom<E>{}, Shape<Int<kC>, Int<kC>>{}));    // P as A
  using MmaKK = decltype(make_tiled_mma(typename MmaOp<E, GMMA::Major::K, GMMA::Major::K>::type{}));
  using MmaKN = decltype(make_tiled_mma(typename MmaOp<E, GMMA::Major::K, GMMA::Major::MN>::type{}));
};

template <class E, int KD>
struct alignas(1024) Smem {
  using L = Tiles<E, KD>;
  alignas(1024) E q[cosize_v<typename L::LayoutQ>];
  alignas(1024) E k[cosize_v<typename L::LayoutQ>];
  alignas(1024) E h[cosize_v<typename L::LayoutH>];
  alignas(1024) E v[cosize_v<typename L::LayoutV>];
  alignas(1024) E p[cosize_v<typename L::LayoutP>];
  float G[kC];
};

// I: the inputs' dtype (q, k; o out); h and v_new are Inner, and q and k become Inner in shared memory.
template <class I, int KD, bool kGated>
__global__ void __launch_bounds__(kThreads) output_forward_kernel(const OutputFwdParams p) {
#if defined(__CUDA_ARCH__) && defined(CUTE_ARCH_MMA_SM90A_ENABLED)
  using E = Inner;
  using L = Tiles<E, KD>;
  extern __shared__ char smem_raw[];
  auto& s = aligned_smem<Smem<E, KD>>(smem_raw);
  const int tid = threadIdx.x;
  const int64_t H = p.H, V = p.V;
  const int64_t chunk = blockIdx.x, head = blockIdx.y, col0 = int64_t(blockIdx.z) * kBV;
  const ChunkSpan span = locate_chunk(chunk, p.chunk_starts, p.seq_starts, p.N, p.T);
  const int64_t t0 = span.t0;
  const int rows = span.rows;

  Tensor sQ = make_tensor(make_smem_ptr(s.q), typename L::LayoutQ{});  // (C, KD)
  Tensor sK = make_tensor(make_smem_ptr(s.k), typename L::LayoutQ{});  // (C, KD)
  Tensor sH = make_tensor(make_smem_ptr(s.h), typename L::LayoutH{});  // (BV, KD)
  Tensor sV = make_tensor(make_smem_ptr(s.v), typename L::LayoutV{});  // (BV, C)
  Tensor sP = make_tensor(make_smem_ptr(s.p), typename L::LayoutP{});  // (C, C)

  const I* q = static_cast<const I*>(p.q);
  const I* k = static_cast<const I*>(p.k);
  const E* vn = static_cast<const E*>(p.v_new);
  const E* h = static_cast<const E*>(p.h) + (chunk * H + head) * KD * V + col0;
  constexpr int kPieces = KD / 8;
  for (int i = tid; i < kC * kPieces; i += kThreads) {
    const int r = i / kPieces, f = (i % kPieces) * 8;
    const bool valid = r < rows;
    const int64_t row = valid ? (t0 + r) * H + head : 0;
    copy16_zfill(&sQ(r, f), q + row * KD + f, valid);
    copy16_zfill(&sK(r, f), k + row * KD + f, valid);
  }
  constexpr int kColPieces = kBV / 8;
  for (int i = tid; i < KD * kColPieces; i += kThreads) {
    const int f = i / kColPieces, c = (i % kColPieces) * 8;
    copy16_zfill(&sH(c, f), h + int64_t(f) * V + c, true);
  }
  for (int i = tid; i < kC * kColPieces; i += kThreads) {
    const int r = i / kColPieces, c = (i % kColPieces) * 8;
    const bool valid = r < rows;
    copy16_zfill(&sV(c, r), vn + (valid ? ((t0 + r) * H + head) * V + col0 + c : 0), valid);
  }
  commit();
  if constexpr (kGated) {
    if (tid < 32) chunk_cumsum(p.g + t0 * H + head, H, rows, s.G);
  }
  wait<0>();
  if constexpr (!std::is_same_v<I, E>) {  // q and k made Inner by the thread that copied each piece
    for (int i = tid; i < kC * kPieces; i += kThreads) {
      to_inner_in_place<I>(&sQ(i / kPieces, (i % kPieces) * 8));
      to_inner_in_place<I>(&sK(i / kPieces, (i % kPieces) * 8));
    }
  }
  landed_for_wgmma<0>();

  typename L::MmaKK mma_p;
  typename L::MmaKN mma_o;
  auto thr_p = mma_p.get_thread_slice(tid);
  auto thr_o = mma_o.get_thread_slice(tid);
  Tensor accP = partition_fragment_C(mma_p, Shape<Int<kC>, Int<kC>>{});
  Tensor accO = partition_fragment_C(mma_o, Shape<Int<kC>, Int<kBV>>{});
  Tensor tPrQ = thr_p.make_fragment_A(thr_p.partition_A(sQ));
  Tensor tPrK = thr_p.make_fragment_B(thr_p.partition_B(sK));
  Tensor tOrQ = thr_o.make_fragment_A(thr_o.partition_A(sQ));
  Tensor tOrH = thr_o.make_fragment_B(thr_o.partition_B(sH));
  Tensor tOrP = thr_o.make_fragment_A(thr_o.partition_A(sP));
  Tensor tOrV = thr_o.make_fragment_B(thr_o.partition_B(sV));
  // 1. P = Q K^T and O = Q h, one batch.
  clear(accP);
  clear(accO);
  warpgroup_fence_operand(accP);
  warpgroup_fence_operand(accO);
  warpgroup_arrive();
  gemm(mma_p, tPrQ, tPrK, accP);
  gemm(mma_o, tOrQ, tOrH, accO);
  warpgroup_commit_batch();
  warpgroup_wait<0>();
  warpgroup_fence_operand(accP);
  warpgroup_fence_operand(accO);

  // 2. P masked and scaled into sP; O's rows scaled.
  const int me = opaque_tid();
  Tensor cP = mma_p.get_thread_slice(me).partition_C(make_identity_tensor(Shape<Int<kC>, Int<kC>>{}));
  Tensor cO = mma_o.get_thread_slice(me).partition_C(make_identity_tensor(Shape<Int<kC>, Int<kBV>>{}));
  const float scale = p.scale;
  CUTE_UNROLL
  for (int i = 0; i < size(accP); i += 2) {
    const int r = get<0>(cP(i)), c = get<1>(cP(i));
    float a = c <= r ? accP(i) * scale : 0.0f, b = c + 1 <= r ? accP(i + 1) * scale : 0.0f;
    if constexpr (kGated) {
      a = c <= r ? a * __expf(s.G[r] - s.G[c]) : 0.0f;
      b = c + 1 <= r ? b * __expf(s.G[r] - s.G[c + 1]) : 0.0f;
    }
    store_shared(&sP(r, c), pack_as<E>(a, b));
  }
  CUTE_UNROLL
  for (int i = 0; i < size(accO); ++i) {
    const int r = get<0>(cO(i));
    accO(i) *= kGated ? scale * __expf(s.G[r]) : scale;
  }
  cutlass::arch::fence_view_async_shared();
  __syncthreads();
  // 3. O += P v_new, and out.
  product(mma_o, tOrP, tOrV, accO);
  I* o = static_cast<I*>(p.o);
  CUTE_UNROLL
  for (int i = 0; i < size(accO); i += 2) {
    const int r = get<0>(cO(i)), c = get<1>(cO(i));
    if (r < rows) *reinterpret_cast<uint32_t*>(o + ((t0 + r) * H + head) * V + col0 + c) = pack_as<I>(accO(i), accO(i + 1));
  }
#endif
}

template <class I, int KD, bool kGated>
void launch(const OutputFwdParams& p, int64_t chunks, cudaStream_t stream) {
  launch_warpgroup<Smem<Inner, KD>>("sm90::chunk_output_forward", output_forward_kernel<I, KD, kGated>,
                                dim3(static_cast<unsigned>(chunks), static_cast<unsigned>(p.H), static_cast<unsigned>(p.V / kBV)),
                                stream, p);
}

template <class E>
void dispatch(const OutputFwdParams& p, int64_t chunks, cudaStream_t stream) {
  if (p.K == 64) return p.g ? launch<E, 64, true>(p, chunks, stream) : launch<E, 64, false>(p, chunks, stream);
  return p.g ? launch<E, 128, true>(p, chunks, stream) : launch<E, 128, false>(p, chunks, stream);
}

}  // namespace

void chunk_output_forward(const OutputFwdParams& p, void* stream) {
  detail::CallShape shape{p.dtype, p.N, p.T, p.H, p.K, p.V, p.seq_starts, p.chunk_starts, p.chunks};
  shape.chunk_grid = true;
  const int64_t chunks = detail::check_call("sm90::chunk_output_forward", shape,
                                            {{"q", p.q}, {"k", p.k}, {"v_new", p.v_new}, {"h", p.h}, {"o", p.o}});
  const auto s = static_cast<cudaStream_t>(stream);
  if (chunks <= 0) return;
  if (p.dtype == Dtype::kBF16) return dispatch<cutlass::bfloat16_t>(p, chunks, s);
  return dispatch<cutlass::half_t>(p, chunks, s);
}

}  // namespace deltabench::cuda::sm90
