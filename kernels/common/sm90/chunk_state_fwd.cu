// The forward's state pass on Hopper's warpgroup products (wgmma), version 1: see sm90_kernels.h for
// what it computes, kernels/delta_rule/NOTES.md ("Hopper version 1") for the design and its numbers.
//
// One block (one warpgroup, 128 threads) a (sequence, head, 64 columns of V). The state slice S [K x 64]
// stays in the warpgroup's fp32 accumulators across the chunks. Per chunk of 64 tokens:
//   1. S, rounded to 16 bits, goes to shared memory (sH), and from there to h in device memory;
//   2. v = W S on wgmma (A = W [64 x K] K-major, B = sH MN-major), then v_new = U - v in registers;
//      v_new, rounded, over U in shared memory, and scaled by exp(G_last - G) and rounded to sV;
//   3. S = exp(G_last) S + K^T sV on wgmma (A = K^T, M-major as K sits in memory; B = sV MN-major),
//      accumulated into S's registers, while v_new goes to device memory in 16-byte pieces of its rows.
// The next chunk's W, K and U (and the gated rule's g, 4 bytes a copy) come by cp.async (16 bytes a copy,
// zero-filled past the sequence's end) into the other of two buffers while this chunk's products run.
//
// With the output (p.o set: the forward fused, FLA's chunk_delta_h and chunk_fwd_o in one pass, h and
// v_new not written), Q and K [C x K] come too (K a second time, K-major for Q K^T), and per chunk:
//   2'. P = Q K^T and O = Q S, in step 2's batch;
//   3'. P masked to j <= i and scaled by scale exp(G_i - G_j), rounded into sP; v_new rounded unscaled into a
//       tile of its own (the same tile as step 3's without a decay); O's rows scaled by scale exp(G_i);
//   4'. O += P v_new in step 3's batch, then O's rows of the sequence out (the inputs' dtype), staged over U's
//       buffer and stored 16 bytes at a time.
// chunk_attn.cu's output kernel computes the same from h and v_new in device memory.
//
// The segment-parallel pass (forward.cpp, kernels/common/segments.h) runs this kernel over segments as sequences:
// for the final states alone (h and v_new null, nothing written per chunk), once with U = 0 from identity
// columns (p.u null: no U copied, v_new = -W S; V = K), which gives each segment's transition M, once from zero
// for its end state L, then from the joined start states with the output. The operand tiles are laid out in
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

  // P [C x C] K-major: A of P v_new (the output's).
  using LayoutP = decltype(tile_to_shape(GMMA::Layout_K_SW128_Atom<E>{}, Shape<Int<kC>, Int<kC>>{}));

  using MmaV = MmaKNOf<E>;  // also Q S, P v_new
  using MmaS = MmaNNOf<E>;
  using MmaP = MmaKKOf<E>;   // Q K^T
};

// The output's tiles (kOut): Q and K [C x K] K-major (W's layout), two buffers each; v_new unscaled as B; P.
template <class E, int KD, bool kOut>
struct alignas(1024) OutSmem {
  using L = Tiles<E, KD>;
  alignas(1024) E q[cosize_v<typename L::LayoutW>];
  alignas(1024) E k[cosize_v<typename L::LayoutW>];
  alignas(1024) E v[cosize_v<typename L::LayoutV>];
  alignas(1024) E p[cosize_v<typename L::LayoutP>];
};
template <class E, int KD>
struct OutSmem<E, KD, false> {};

// U is Inner (the UT transform's) for the delta rules, v itself (the inputs' I) for linear attention.
template <class E, int KD, class TU, bool kOut>
struct alignas(1024) Smem {
  using L = Tiles<E, KD>;
  // Each swizzled tile starts on a 1024-byte boundary: the swizzle acts on address bits 4-9.
  alignas(1024) E w[cosize_v<typename L::LayoutW>];
  alignas(1024) E k[cosize_v<typename L::LayoutK>];
  alignas(1024) E h[cosize_v<typename L::LayoutH>];
  alignas(1024) E v[cosize_v<typename L::LayoutV>];
  alignas(16) TU u[2][kC * kLdU];  // U, then v_new (16-bit either way)
  float G[kC];          // the chunk's cumulative log decay
  float graw[2][kC];     // its g, copied a chunk ahead (gated)
  OutSmem<E, KD, kOut> out;
};

template <class I, int KD, bool kW, bool kOut>
using StateSmem = Smem<Inner, KD, std::conditional_t<kW, Inner, I>, kOut>;

// I: the inputs' dtype (k; v as U for linear attention); W, U (delta rules), h and v_new are Inner.
template <class I, int KD, bool kW, bool kGated, bool kOut>
__global__ void __launch_bounds__(kThreads) state_forward_kernel(const StateFwdParams p) {
#if defined(__CUDA_ARCH__) && defined(CUTE_ARCH_MMA_SM90A_ENABLED)
  using E = Inner;
  using TU = std::conditional_t<kW, Inner, I>;
  using L = Tiles<E, KD>;
  extern __shared__ char smem_raw[];
  auto& s = aligned_smem<StateSmem<I, KD, kW, kOut>>(smem_raw);
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
  // The output's tiles; without kOut, views of W's and sV's (never read or written).
  E* out_q = s.w;
  E* out_k = s.w;
  E* out_v = s.v;
  E* out_p = s.v;
  if constexpr (kOut) {
    out_q = s.out.q;
    out_k = s.out.k;
    out_v = kGated ? s.out.v : s.v;  // v_new unscaled: without a decay, sV itself
    out_p = s.out.p;
  }
  Tensor sQ = make_tensor(make_smem_ptr(out_q), typename L::LayoutW{});   // (C, KD, 2)
  Tensor sKr = make_tensor(make_smem_ptr(out_k), typename L::LayoutW{});  // (C, KD, 2)
  Tensor sVo = make_tensor(make_smem_ptr(out_v), typename L::LayoutV{});  // (BV, C)
  Tensor sP = make_tensor(make_smem_ptr(out_p), typename L::LayoutP{});   // (C, C)

  typename L::MmaV mma_v;
  typename L::MmaS mma_s;
  typename L::MmaP mma_p;
  auto thr_v = mma_v.get_thread_slice(tid);
  auto thr_s = mma_s.get_thread_slice(tid);
  auto thr_p = mma_p.get_thread_slice(tid);
  Tensor tVrW = thr_v.make_fragment_A(thr_v.partition_A(sW));  // (MMA, 1, KD/16, 2) descriptors
  Tensor tVrH = thr_v.make_fragment_B(thr_v.partition_B(sH));  // (MMA, 1, KD/16)
  Tensor tSrK = thr_s.make_fragment_A(thr_s.partition_A(sK));  // (MMA, KD/64, C/16, 2)
  Tensor tSrV = thr_s.make_fragment_B(thr_s.partition_B(sV));  // (MMA, 1, C/16)
  Tensor accV = partition_fragment_C(mma_v, Shape<Int<kC>, Int<kBV>>{});  // v = W S, (token, column)
  Tensor accS = partition_fragment_C(mma_s, Shape<Int<KD>, Int<kBV>>{});  // S, (feature, column)
  Tensor tPrQ = thr_p.make_fragment_A(thr_p.partition_A(sQ));    // (MMA, 1, KD/16, 2)
  Tensor tPrK = thr_p.make_fragment_B(thr_p.partition_B(sKr));   // (MMA, 1, KD/16, 2)
  Tensor tOrQ = thr_v.make_fragment_A(thr_v.partition_A(sQ));    // (MMA, 1, KD/16, 2)
  Tensor tOrP = thr_v.make_fragment_A(thr_v.partition_A(sP));    // (MMA, 1, C/16)
  Tensor tOrV = thr_v.make_fragment_B(thr_v.partition_B(sVo));   // (MMA, 1, C/16)
  // Each accumulator's (row, column) in its tile, for the initial and final states (once a block; the chunk loop
  // addresses by the closed-form layout instead, tiles.h).
  Tensor cS = thr_s.partition_C(make_identity_tensor(Shape<Int<KD>, Int<kBV>>{}));
  static_assert(std::is_same_v<typename L::LayoutH, decltype(tile_to_shape(GMMA::Layout_MN_SW128_Atom<E>{}, Shape<Int<kBV>, Int<KD>>{}))> &&
                    std::is_same_v<typename L::LayoutV, decltype(tile_to_shape(GMMA::Layout_MN_SW128_Atom<E>{}, Shape<Int<kBV>, Int<kC>>{}))> &&
                    std::is_same_v<typename L::LayoutP, KMajorTile<E, kC, kC>>,
                "sH, sV and sP as mn_major_at and k_major_at address them");

  // The initial state. This loop and the final state's stay written out here: the same loops in a helper of
  // common.cuh took this kernel from 168-243 to 224-252 registers at K 128 (cuobjdump -res-usage, 2026-12-05).
  CUTE_UNROLL
  for (int i = 0; i < size(accS); ++i) {
    const int f = get<0>(cS(i)), c = get<1>(cS(i));
    accS(i) = p.h0 ? p.h0[((n * H + head) * p.K + f) * V + col0 + c] : 0.0f;
  }

  const E* w = static_cast<const E*>(p.w);
  const TU* u = static_cast<const TU*>(p.u);
  const I* k = static_cast<const I*>(p.k);
  const I* q = static_cast<const I*>(p.q);
  // Requests chunk ci's W, K and U (and Q, K K-major for the output) into buffer b: 16 bytes a copy, rows past
  // the sequence zero-filled.
  auto request = [&](int ci, int b) {
    const int64_t t0 = t_begin + int64_t(ci) * kC;
    constexpr int kPieces = KD / 8;  // 16-byte pieces of a row of K features
    for (int i = tid; i < kC * kPieces; i += kThreads) {
      const int r = i / kPieces, f = (i % kPieces) * 8;
      const bool valid = t0 + r < t_end;
      const int64_t row = valid ? (t0 + r) * H + head : 0;
      if constexpr (kW) copy16_zfill(&sW(r, f, b), w + row * KD + f, valid);
      copy16_zfill(&sK(f, r, b), k + row * KD + f, valid);
      if constexpr (kOut) {
        copy16_zfill(&sQ(r, f, b), q + row * KD + f, valid);
        copy16_zfill(&sKr(r, f, b), k + row * KD + f, valid);
      }
    }
    constexpr int kUPieces = kBV / 8;
    for (int i = tid; u != nullptr && i < kC * kUPieces; i += kThreads) {
      const int r = i / kUPieces, c = (i % kUPieces) * 8;
      const bool valid = t0 + r < t_end;
      const int64_t row = valid ? (t0 + r) * H + head : 0;
      copy16_zfill(&s.u[b][r * kLdU + c], u + row * V + col0 + c, valid);
    }
    if constexpr (kGated) {
      if (tid < 32) request_chunk_g(s.graw[b], p.g + t0 * H + head, H, t_end - t0 < kC ? static_cast<int>(t_end - t0) : kC);
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
    // The thread's first accumulator row and column (tiles.h): a value's place is one of them plus a constant of
    // its index. From `opaque_tid` each chunk, so that the compiler forms the few offsets again here rather than
    // keep them across the loop.
    const int me = opaque_tid();
    const int arow = acc_row(me), acol = acc_col(me);
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
      store_shared(s.h + mn_major_at<kBV>(acol + acc_col_of<KD>(i), arow + acc_row_of<KD>(i)), pack(accS(i), accS(i + 1)));
    }
    float G_last = 0.0f;
    // Chunk ci's copies landed (this thread's; the newest group is chunk ci + 1's); its K made Inner in place
    // by the thread that copied each piece, then every thread's made visible. The chunk's cumulative log decay
    // by the first warp, from the g its lanes copied.
    wait<1>();
    if constexpr (kGated) {
      if (tid < 32) chunk_cumsum_landed(s.graw[b], s.G);
    }
    if constexpr (!std::is_same_v<I, E>) {
      for (int i = tid; i < kC * (KD / 8); i += kThreads) {
        const int r = i / (KD / 8), f = (i % (KD / 8)) * 8;
        to_inner_in_place<I>(&sK(f, r, b));
        if constexpr (kOut) {
          to_inner_in_place<I>(&sQ(r, f, b));
          to_inner_in_place<I>(&sKr(r, f, b));
        }
      }
    }
    landed_for_wgmma<1>();
    if constexpr (kGated) G_last = s.G[valid_rows - 1];

    // 2. v = W S (and the output's P = Q K^T and O = Q S), and h out while the products run (all read sH).
    Tensor accP = partition_fragment_C(mma_p, Shape<Int<kC>, Int<kC>>{});   // (query, key)
    Tensor accO = partition_fragment_C(mma_v, Shape<Int<kC>, Int<kBV>>{});  // (token, column)
    if constexpr (kW || kOut) {
      if constexpr (kW) {
        clear(accV);
        warpgroup_fence_operand(accV);
      }
      if constexpr (kOut) {
        clear(accP);
        clear(accO);
        warpgroup_fence_operand(accP);
        warpgroup_fence_operand(accO);
      }
      warpgroup_arrive();
      if constexpr (kW) gemm(mma_v, tVrW(_, _, _, b), tVrH, accV);
      if constexpr (kOut) {
        gemm(mma_p, tPrQ(_, _, _, b), tPrK(_, _, _, b), accP);
        gemm(mma_v, tOrQ(_, _, _, b), tVrH, accO);
      }
      warpgroup_commit_batch();
    }
    if (!kOut && h_out != nullptr) {
      // h[chunk0 + ci, head] [KD x V], this block's 64 columns: 16 bytes (8 columns) a copy from sH,
      // where a feature's 8 columns are contiguous.
      E* dst = h_out + ((chunk0 + ci) * H + head) * KD * V + col0;
      for (int i = tid; i < KD * (kBV / 8); i += kThreads) {
        const int f = i / (kBV / 8), c = (i % (kBV / 8)) * 8;
        *reinterpret_cast<uint4*>(dst + int64_t(f) * V + c) = *reinterpret_cast<const uint4*>(&sH(c, f));
      }
    }
    if constexpr (kW || kOut) {
      warpgroup_wait<0>();
      if constexpr (kW) warpgroup_fence_operand(accV);
      if constexpr (kOut) {
        warpgroup_fence_operand(accP);
        warpgroup_fence_operand(accO);
      }
    }
    // v_new = U - v: out unscaled; into sV scaled by exp(G_last - G) and rounded. The thread's values lie in two
    // rows (arow and arow + 8): two exps, taken once.
    float decay0 = 1.0f, decay8 = 1.0f;
    if constexpr (kGated) {
      decay0 = __expf(G_last - s.G[arow]);
      decay8 = __expf(G_last - s.G[arow + 8]);
    }
    CUTE_UNROLL
    for (int i = 0; i < size(accV); i += 2) {
      const int r = arow + acc_row_of(i), c = acol + acc_col_of(i);
      float x0 = u ? float(s.u[b][r * kLdU + c]) : 0.0f, x1 = u ? float(s.u[b][r * kLdU + c + 1]) : 0.0f;
      if constexpr (kW) {
        x0 -= accV(i);
        x1 -= accV(i + 1);
      }
      if constexpr (kOut && kGated) store_pair_shared(out_v + mn_major_at<kBV>(c, r), x0, x1);  // unscaled, for P v_new
      if (r < valid_rows) {
        // v_new over the U this thread has just read, for step 3's whole-row stores.
        if (!kOut && v_out != nullptr) store_shared(&s.u[b][r * kLdU + c], pack(x0, x1));
        if constexpr (kGated) {
          const float scale = acc_upper(i) ? decay8 : decay0;
          x0 *= scale;
          x1 *= scale;
        }
      }
      store_pair_shared(s.v + mn_major_at<kBV>(c, r), x0, x1);  // zero past the sequence: U and W were zero-filled there
    }
    if constexpr (kGated) {
      const float gamma = __expf(G_last);
      CUTE_UNROLL
      for (int i = 0; i < size(accS); ++i) accS(i) *= gamma;
    }
    if constexpr (kOut) {
      // 3'. P masked (key c <= query r) and scaled into sP (the exps taken for every value, the masked ones dropped
      //     by a select: one that overflows is never kept); O's rows scaled.
      const float scale = p.scale;
      CUTE_UNROLL
      for (int i = 0; i < size(accP); i += 2) {
        const int r = arow + acc_row_of(i), c = acol + acc_col_of(i);
        float a = accP(i) * scale, d = accP(i + 1) * scale;
        if constexpr (kGated) {
          a *= __expf(s.G[r] - s.G[c]);
          d *= __expf(s.G[r] - s.G[c + 1]);
        }
        store_pair_shared(out_p + k_major_at<kC>(r, c), c <= r ? a : 0.0f, c + 1 <= r ? d : 0.0f);
      }
      scale_acc_rows(accO, kGated ? scale * __expf(s.G[arow]) : scale, kGated ? scale * __expf(s.G[arow + 8]) : scale);
    }
    cutlass::arch::fence_view_async_shared();
    __syncthreads();
    // 3. S += K^T v_new (and 4'. O += P v_new, in the same batch).
    if constexpr (kOut) {
      warpgroup_fence_operand(accS);
      warpgroup_fence_operand(accO);
      warpgroup_arrive();
      gemm(mma_s, tSrK(_, _, _, b), tSrV, accS);
      gemm(mma_v, tOrP, tOrV, accO);
      warpgroup_commit_batch();
      warpgroup_wait<0>();
      warpgroup_fence_operand(accS);
      warpgroup_fence_operand(accO);
      // O rounded over U's buffer (read by the epilogue before the last barrier, refilled only after the next
      // chunk's first), then out in 16-byte pieces of the sequence's rows.
      CUTE_UNROLL
      for (int i = 0; i < size(accO); i += 2) {
        store_shared(&s.u[b][(arow + acc_row_of(i)) * kLdU + acol + acc_col_of(i)], pack_as<I>(accO(i), accO(i + 1)));
      }
      __syncthreads();
      I* o = static_cast<I*>(p.o) + (t0 * H + head) * V + col0;
      for (int i = tid; i < valid_rows * (kBV / 8); i += kThreads) {
        const int r = i / (kBV / 8), c = (i % (kBV / 8)) * 8;
        store_global_16(o + r * H * V + c, load_shared_16(&s.u[b][r * kLdU + c]));
      }
    } else {
      warpgroup_fence_operand(accS);
      warpgroup_arrive();
      gemm(mma_s, tSrK(_, _, _, b), tSrV, accS);
      warpgroup_commit_batch();
      // v_new out while the product runs: the sequence's rows of U's buffer, which now holds v_new, 16 bytes (8
      // columns) a store.
      if (v_out != nullptr) {
        E* dst = v_out + (t0 * H + head) * V + col0;
        for (int i = tid; i < valid_rows * (kBV / 8); i += kThreads) {
          const int r = i / (kBV / 8), c = (i % (kBV / 8)) * 8;
          store_global_16(dst + r * H * V + c, load_shared_16(&s.u[b][r * kLdU + c]));
        }
      }
      warpgroup_wait<0>();
      warpgroup_fence_operand(accS);
    }
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

template <class I, int KD, bool kW, bool kGated, bool kOut>
void launch(const StateFwdParams& p, cudaStream_t stream) {
  launch_warpgroup<StateSmem<I, KD, kW, kOut>>("sm90::chunk_state_forward", state_forward_kernel<I, KD, kW, kGated, kOut>,
                                dim3(static_cast<unsigned>(p.V / kBV), static_cast<unsigned>(p.N * p.H)), stream, p);
}

template <class E, int KD, bool kOut>
void dispatch_rule(const StateFwdParams& p, cudaStream_t stream) {
  const bool has_w = p.w != nullptr, gated = p.g != nullptr;
  if (has_w && gated) return launch<E, KD, true, true, kOut>(p, stream);
  if (has_w) return launch<E, KD, true, false, kOut>(p, stream);
  if (gated) return launch<E, KD, false, true, kOut>(p, stream);
  return launch<E, KD, false, false, kOut>(p, stream);
}

template <class E>
void dispatch_k(const StateFwdParams& p, cudaStream_t stream) {
  if (p.o != nullptr) {
    if (p.K == 64) return dispatch_rule<E, 64, true>(p, stream);
    return dispatch_rule<E, 128, true>(p, stream);
  }
  if (p.K == 64) return dispatch_rule<E, 64, false>(p, stream);
  if (p.K == 256) return dispatch_rule<E, 256, false>(p, stream);
  return dispatch_rule<E, 128, false>(p, stream);
}

}  // namespace

bool chunk_state_forward_supports(int64_t K, int64_t V) {
  return (K == 64 || K == 128 || K == 256) && V > 0 && V % kStateColumns == 0;
}

void chunk_state_forward(const StateFwdParams& p, void* stream) {
  detail::CallShape shape{p.dtype, p.N, p.T, p.H, p.K, p.V, p.seq_starts, p.chunk_starts};
  shape.max_K = 256;
  if (p.o != nullptr && p.K == 256) {
    // S [256 x 64] in the warpgroup's accumulators (128 registers a thread) leaves no room for O's and P's.
    throw std::invalid_argument("sm90::chunk_state_forward: the output fused into the state pass takes K 64 or 128 "
                                "(got K 256): run the output kernel after the pass (chunk_output_forward)");
  }
  if (p.o != nullptr) {
    detail::check_call("sm90::chunk_state_forward", shape, {{"u", p.u}, {"k", p.k}, {"q", p.q}, {"o", p.o}}, {{"w", p.w}});
  } else {
    detail::check_call("sm90::chunk_state_forward", shape, {{"k", p.k}}, {{"w", p.w}, {"u", p.u}, {"h", p.h}, {"v_new", p.v_new}});
    if ((p.h == nullptr) != (p.v_new == nullptr)) {
      throw std::invalid_argument("sm90::chunk_state_forward: h and v_new go together (one of them is null)");
    }
    if (p.h == nullptr && p.ht == nullptr) {
      throw std::invalid_argument("sm90::chunk_state_forward: without o, h and v_new or ht must be set (all null)");
    }
  }
  if (p.u == nullptr && (p.o != nullptr || p.h != nullptr)) {
    throw std::invalid_argument("sm90::chunk_state_forward: u may be null only in a pass for the final states alone");
  }
  if (p.N * p.H > 65535) {
    throw std::invalid_argument("sm90::chunk_state_forward: N H must be at most 65535, a block row each (got " +
                                std::to_string(p.N * p.H) + ")");
  }
  const auto s = static_cast<cudaStream_t>(stream);
  if (p.dtype == Dtype::kBF16) return dispatch_k<cutlass::bfloat16_t>(p, s);
  return dispatch_k<cutlass::half_t>(p, s);
}

}  // namespace deltabench::cuda::sm90
