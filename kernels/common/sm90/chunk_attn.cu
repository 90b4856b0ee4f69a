// The chunk's attention products on Hopper's warpgroup products (wgmma), version 1, in two modes: the
// forward's output (FLA's chunk_fwd_o) and the backward's dv_local (its chunk_bwd_dv_local). sm90_kernels.h
// says what each computes, kernels/delta_rule/NOTES.md ("Hopper version 1") why.
//
// One block (one warpgroup, 128 threads) a (chunk, head, 64 columns of V) in the forward, a (chunk, head,
// 128 columns of V) in the backward where V allows (kCols 2: P' computed once for both 64-column slices of dO,
// and q and k read once); the chunks are independent. The grid is (chunks x slices, H), the slice fastest.
// Q, K [64 x K] and X [64 x 64] a slice (v_new forward, dO backward) come by cp.async (zero-filled past the
// sequence's end) into 128-byte-swizzled tiles, with the forward's state slice h [K x 64]; then:
//   1. P = Q K^T (forward; A = Q, B = K, both K-major) or P' = K Q^T (backward; A = K, B = Q), and in the
//      forward O = Q h (B = h, N-major as it sits in memory), one wgmma batch;
//   2. P masked to j <= i and scaled by scale exp(G_i - G_j) (P' to j >= i, by scale exp(G_j - G_i)),
//      rounded into a K-major tile; the forward's O rows scaled by scale exp(G_i);
//   3. O += P X (B = X, N-major), a slice at a time, staged over Q's (or K's) tile and out in 16-byte pieces of
//      the sequence's rows (o in the inputs' dtype, dv_local in fp16).

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

// What either mode reads and writes: the entry points fill it from their own parameters.
struct AttnParams {
  const void *q, *k;
  const void* x;      // forward: v_new (Inner); backward: dO (the inputs' dtype)
  const void* h;      // forward only
  const float* g;
  void* out;          // forward: o (the inputs' dtype); backward: dv_local (Inner)
  const int64_t *seq_starts, *chunk_starts;
  int64_t N, T, H, V;
  float scale;
  const float* x_scale;  // backward: dO's factor (DvLocalParams::dout_scale), or null
};

template <class E, int KD>
struct Tiles {
  using LayoutQ = decltype(tile_to_shape(GMMA::Layout_K_SW128_Atom<E>{}, Shape<Int<kC>, Int<KD>>{}));   // Q, K
  using LayoutH = decltype(tile_to_shape(GMMA::Layout_MN_SW128_Atom<E>{}, Shape<Int<kBV>, Int<KD>>{}));  // h as B
  using LayoutV = decltype(tile_to_shape(GMMA::Layout_MN_SW128_Atom<E>{}, Shape<Int<kBV>, Int<kC>>{}));  // v_new as B
  using LayoutP = decltype(tile_to_shape(GMMA::Layout_K_SW128_Atom<E>{}, Shape<Int<kC>, Int<kC>>{}));    // P as A
  using MmaKK = MmaKKOf<E>;
  using MmaKN = MmaKNOf<E>;
};

template <class E, int KD, int kCols>
struct alignas(1024) Smem {
  using L = Tiles<E, KD>;
  alignas(1024) E q[cosize_v<typename L::LayoutQ>];
  alignas(1024) E k[cosize_v<typename L::LayoutQ>];
  alignas(1024) E h[cosize_v<typename L::LayoutH>];
  alignas(1024) E v[kCols][cosize_v<typename L::LayoutV>];  // X's slices
  alignas(1024) E p[cosize_v<typename L::LayoutP>];
  float G[kC];
};

// I: the inputs' dtype (q, k, dO; o out); h, v_new and dv_local are Inner, and q, k and dO become Inner in
// shared memory.
template <class I, int KD, bool kGated, bool kBackward, int kCols>
__global__ void __launch_bounds__(kThreads) attn_kernel(const AttnParams p) {
#if defined(__CUDA_ARCH__) && defined(CUTE_ARCH_MMA_SM90A_ENABLED)
  static_assert(kCols == 1 || kBackward, "the forward's O = Q h + P v_new runs one slice a block");
  using E = Inner;
  using L = Tiles<E, KD>;
  extern __shared__ char smem_raw[];
  auto& s = aligned_smem<Smem<E, KD, kCols>>(smem_raw);
  const int tid = threadIdx.x;
  const int64_t H = p.H, V = p.V;
  // A block's V slice varies fastest in the launch order (FLA's chunk_fwd_o grid does the same): the blocks of one
  // (chunk, head) run side by side, so q and k come from DRAM once and from L2 for the other slices.
  const int64_t slices = p.V / (kBV * kCols);
  const int64_t chunk = blockIdx.x / slices, head = blockIdx.y, col0 = (blockIdx.x % slices) * kBV * kCols;
  const ChunkSpan span = locate_chunk(chunk, p.chunk_starts, p.seq_starts, p.N, p.T);
  const int64_t t0 = span.t0;
  const int rows = span.rows;

  Tensor sQ = make_tensor(make_smem_ptr(s.q), typename L::LayoutQ{});  // (C, KD)
  Tensor sK = make_tensor(make_smem_ptr(s.k), typename L::LayoutQ{});  // (C, KD)
  Tensor sH = make_tensor(make_smem_ptr(s.h), typename L::LayoutH{});  // (BV, KD)
  auto slice = [&](int j) { return make_tensor(make_smem_ptr(s.v[j]), typename L::LayoutV{}); };  // (BV, C)
  Tensor sP = make_tensor(make_smem_ptr(s.p), typename L::LayoutP{});  // (C, C)

  const I* q = static_cast<const I*>(p.q);
  const I* k = static_cast<const I*>(p.k);
  using X = std::conditional_t<kBackward, I, E>;
  const X* x = static_cast<const X*>(p.x);
  constexpr int kPieces = KD / 8;
  for (int i = tid; i < kC * kPieces; i += kThreads) {
    const int r = i / kPieces, f = (i % kPieces) * 8;
    const bool valid = r < rows;
    const int64_t row = valid ? (t0 + r) * H + head : 0;
    copy16_zfill(&sQ(r, f), q + row * KD + f, valid);
    copy16_zfill(&sK(r, f), k + row * KD + f, valid);
  }
  constexpr int kColPieces = kBV / 8;
  if constexpr (!kBackward) {
    const E* h = static_cast<const E*>(p.h) + (chunk * H + head) * KD * V + col0;
    for (int i = tid; i < KD * kColPieces; i += kThreads) {
      const int f = i / kColPieces, c = (i % kColPieces) * 8;
      copy16_zfill(&sH(c, f), h + int64_t(f) * V + c, true);
    }
  }
  CUTE_UNROLL
  for (int j = 0; j < kCols; ++j) {
    Tensor sV = slice(j);
    for (int i = tid; i < kC * kColPieces; i += kThreads) {
      const int r = i / kColPieces, c = (i % kColPieces) * 8;
      const bool valid = r < rows;
      copy16_zfill(&sV(c, r), x + (valid ? ((t0 + r) * H + head) * V + col0 + j * kBV + c : 0), valid);
    }
  }
  commit();
  if constexpr (kGated) {
    if (tid < 32) chunk_cumsum(p.g + t0 * H + head, H, rows, s.G);
  }
  wait<0>();
  if constexpr (!std::is_same_v<I, E>) {  // q, k (and dO, below) made Inner by the thread that copied each piece
    for (int i = tid; i < kC * kPieces; i += kThreads) {
      to_inner_in_place<I>(&sQ(i / kPieces, (i % kPieces) * 8));
      to_inner_in_place<I>(&sK(i / kPieces, (i % kPieces) * 8));
    }
  }
  if constexpr (kBackward) {  // dO times its factor where one is given
    const float xs = p.x_scale != nullptr ? *p.x_scale : 1.0f;
    if (!std::is_same_v<I, E> || p.x_scale != nullptr) {
      CUTE_UNROLL
      for (int j = 0; j < kCols; ++j) {
        Tensor sV = slice(j);
        for (int i = tid; i < kC * kColPieces; i += kThreads) {
          scaled_to_inner_in_place<I>(&sV((i % kColPieces) * 8, i / kColPieces), xs);
        }
      }
    }
  }
  landed_for_wgmma<0>();

  typename L::MmaKK mma_p;
  typename L::MmaKN mma_o;
  auto thr_p = mma_p.get_thread_slice(tid);
  auto thr_o = mma_o.get_thread_slice(tid);
  Tensor accP = partition_fragment_C(mma_p, Shape<Int<kC>, Int<kC>>{});
  Tensor accO = partition_fragment_C(mma_o, Shape<Int<kC>, Int<kBV>>{});
  // Forward P = Q K^T; backward P' = K Q^T: the same two tiles, the operands swapped.
  Tensor tPrA = thr_p.make_fragment_A(thr_p.partition_A(kBackward ? sK : sQ));
  Tensor tPrB = thr_p.make_fragment_B(thr_p.partition_B(kBackward ? sQ : sK));
  Tensor tOrQ = thr_o.make_fragment_A(thr_o.partition_A(sQ));
  Tensor tOrH = thr_o.make_fragment_B(thr_o.partition_B(sH));
  Tensor tOrP = thr_o.make_fragment_A(thr_o.partition_A(sP));
  // 1. P (and the forward's O = Q h), one batch.
  clear(accP);
  clear(accO);
  warpgroup_fence_operand(accP);
  warpgroup_fence_operand(accO);
  warpgroup_arrive();
  gemm(mma_p, tPrA, tPrB, accP);
  if constexpr (!kBackward) gemm(mma_o, tOrQ, tOrH, accO);
  warpgroup_commit_batch();
  warpgroup_wait<0>();
  warpgroup_fence_operand(accP);
  warpgroup_fence_operand(accO);

  // 2. P masked and scaled into sP; O's rows scaled. A value's place by the closed-form accumulator layout
  //    (tiles.h); the exps taken for every value and the masked ones dropped by a select (one that overflows is
  //    never kept).
  static_assert(std::is_same_v<typename L::LayoutP, KMajorTile<E, kC, kC>>, "sP as k_major_at addresses it");
  const int arow = acc_row(tid), acol = acc_col(tid);  // the thread's first accumulator row and column
  const float scale = p.scale;
  CUTE_UNROLL
  for (int i = 0; i < size(accP); i += 2) {
    const int r = arow + acc_row_of(i), c = acol + acc_col_of(i);
    // Forward: query r, key c, kept where c <= r. Backward: key r, query c, kept where c >= r.
    const bool keep0 = kBackward ? c >= r : c <= r, keep1 = kBackward ? c + 1 >= r : c + 1 <= r;
    float a = accP(i) * scale, b = accP(i + 1) * scale;
    if constexpr (kGated) {
      const int sign = kBackward ? -1 : 1;  // exp(G_query - G_key)
      a *= __expf(sign * (s.G[r] - s.G[c]));
      b *= __expf(sign * (s.G[r] - s.G[c + 1]));
    }
    store_shared(s.p + k_major_at<kC>(r, c), pack_as<E>(keep0 ? a : 0.0f, keep1 ? b : 0.0f));
  }
  if constexpr (!kBackward) {
    scale_acc_rows(accO, kGated ? scale * __expf(s.G[arow]) : scale, kGated ? scale * __expf(s.G[arow + 8]) : scale);
  }
  cutlass::arch::fence_view_async_shared();
  __syncthreads();
  // 3. O += P X, and out, a slice at a time (the backward's O from zero each): rounded into a staging tile over Q's
  //    storage (K's for the second slice; both free since step 1's products, which the barrier above follows), then
  //    out in 16-byte pieces of its rows.
  static_assert(kCols <= 2 && kC * kBV <= cosize_v<typename L::LayoutQ>, "a slice's staging over Q's or K's tile");
  using Out = std::conditional_t<kBackward, E, I>;
  auto* o = static_cast<uint16_t*>(p.out) + (t0 * H + head) * V + col0;
  CUTE_UNROLL
  for (int j = 0; j < kCols; ++j) {
    if (kBackward && j > 0) clear(accO);
    product(mma_o, tOrP, thr_o.make_fragment_B(thr_o.partition_B(slice(j))), accO);
    auto* stage = reinterpret_cast<uint16_t*>(j == 0 ? s.q : s.k);
    CUTE_UNROLL
    for (int i = 0; i < size(accO); i += 2) {
      store_shared(stage + staged_at<kBV>(arow + acc_row_of(i), acol + acc_col_of(i)), pack_as<Out>(accO(i), accO(i + 1)));
    }
    __syncthreads();
    store_staged_rows<kBV, kThreads>(stage, rows, o + j * kBV, H * V, tid);
  }
#endif
}

// The backward takes two slices a block where V is a multiple of 128 (K = V = 128: q and k read and P'
// computed once a (chunk, head), not twice).
template <class I, int KD, bool kGated, bool kBackward>
void launch(const char* who, const AttnParams& p, int64_t chunks, cudaStream_t stream) {
  auto go = [&](auto cols) {
    constexpr int kCols = decltype(cols)::value;
    const int64_t blocks = chunks * (p.V / (kBV * kCols));
    if (blocks > 2147483647) {
      throw std::runtime_error(std::string(who) + ": " + std::to_string(chunks) + " chunks x " +
                               std::to_string(p.V / (kBV * kCols)) + " column slices is more than a grid's 2^31 - 1 blocks");
    }
    launch_warpgroup<Smem<Inner, KD, kCols>>(
        who, attn_kernel<I, KD, kGated, kBackward, kCols>,
        dim3(static_cast<unsigned>(blocks), static_cast<unsigned>(p.H), 1), stream, p);
  };
  if constexpr (kBackward) {
    if (p.V % (2 * kBV) == 0) return go(std::integral_constant<int, 2>{});
  }
  go(std::integral_constant<int, 1>{});
}

template <bool kBackward>
void dispatch(const char* who, Dtype dtype, int64_t K, const AttnParams& p, int64_t chunks, cudaStream_t stream) {
  const bool gated = p.g != nullptr;
  auto go = [&](auto input) {
    using I = decltype(input);
    if (K == 64) return gated ? launch<I, 64, true, kBackward>(who, p, chunks, stream) : launch<I, 64, false, kBackward>(who, p, chunks, stream);
    if constexpr (!kBackward) {  // the forward's output alone takes K 256 (chunk_output_forward's check)
      if (K == 256) return gated ? launch<I, 256, true, false>(who, p, chunks, stream) : launch<I, 256, false, false>(who, p, chunks, stream);
    }
    return gated ? launch<I, 128, true, kBackward>(who, p, chunks, stream) : launch<I, 128, false, kBackward>(who, p, chunks, stream);
  };
  if (dtype == Dtype::kBF16) return go(cutlass::bfloat16_t{});
  return go(cutlass::half_t{});
}

}  // namespace

void chunk_output_forward(const OutputFwdParams& p, void* stream) {
  detail::CallShape shape{p.dtype, p.N, p.T, p.H, p.K, p.V, p.seq_starts, p.chunk_starts, p.chunks};
  shape.chunk_grid = true;
  shape.max_K = 256;
  const int64_t chunks = detail::check_call("sm90::chunk_output_forward", shape,
                                            {{"q", p.q}, {"k", p.k}, {"v_new", p.v_new}, {"h", p.h}, {"o", p.o}});
  if (chunks <= 0) return;
  const AttnParams a{p.q, p.k, p.v_new, p.h, p.g, p.o, p.seq_starts, p.chunk_starts, p.N, p.T, p.H, p.V, p.scale, nullptr};
  dispatch<false>("sm90::chunk_output_forward", p.dtype, p.K, a, chunks, static_cast<cudaStream_t>(stream));
}

void chunk_dv_local(const DvLocalParams& p, void* stream) {
  detail::CallShape shape{p.dtype, p.N, p.T, p.H, p.K, p.V, p.seq_starts, p.chunk_starts, p.chunks};
  shape.chunk_grid = true;
  const int64_t chunks = detail::check_call("sm90::chunk_dv_local", shape,
                                            {{"q", p.q}, {"k", p.k}, {"dout", p.dout}, {"dv_local", p.dv_local}});
  if (chunks <= 0) return;
  const AttnParams a{p.q, p.k, p.dout, nullptr, p.g, p.dv_local, p.seq_starts, p.chunk_starts,
                     p.N, p.T, p.H, p.V, p.scale, p.dout_scale};
  dispatch<true>("sm90::chunk_dv_local", p.dtype, p.K, a, chunks, static_cast<cudaStream_t>(stream));
}

}  // namespace deltabench::cuda::sm90
