// The backward's state pass on Hopper's warpgroup products (wgmma), version 1: the forward state pass's
// mirror (chunk_state_fwd.cu); sm90_kernels.h says what it computes, kernels/delta_rule/NOTES.md ("Hopper
// version 1") why.
//
// One block (one warpgroup, 128 threads) a (sequence, head, 64 columns of V), walking the chunks from the last
// to the first. dS [K x 64], the gradient of the current chunk's end state, stays in fp32 accumulators. Per
// chunk of 64 tokens:
//   1. dS, rounded to fp16, goes to shared memory (sD), and from there to dh in device memory;
//   2. x = K dS on wgmma (A = K, K-major as it sits; B = sD, N-major), then dv_new = dv_local +
//      exp(G_last - G) x in registers, negated and rounded to fp16 into sV;
//   3. dS = exp(G_last) dS + Q^T (scale e^G dO) + W^T (-dv_new) on wgmma, one batch (A = Q^T and W^T,
//      M-major as they sit; B = the scaled dO and -dv_new, N-major), and dv_new out from sV while it runs.
// The previous chunk's Q, K, W, dO and dv_local (and the gated rule's g, with K) come by cp.async into the
// other of two buffers while this chunk's products run; q, k and dO become fp16 in place (dO scaled by scale e^G on the way) by the thread
// that copied each piece.
//
// Three pipelines (StateBwdParams::buffers): 2, the above; 1, Q, W, dO and dv_local in single buffers, refilled for
// the previous chunk right after this chunk's last product batch and waited for only before the dv_new epilogue,
// so that their copies overlap the next chunk's dS store, K dS and dh; K keeps two buffers. At K 128 that is
// 106 KB of shared memory against 155: two blocks an SM instead of one (kernels/delta_rule/NOTES.md, "Next for the
// backward state pass"). 3, the same single buffers, each refilled as soon as this chunk is done with it, so that
// more of a chunk's copies are in flight for longer: Q^T dO moves into step 2's batch (it does not need dv_new),
// as its own wgmma group, after which Q and dO are free; dv_local is free after the epilogue, W after step 3.
// Every pipeline computes the same sums in the same order: their outputs are equal bit for bit.
//
// The segment-parallel pass (forward.cpp) runs it in two more forms, both for dh0 alone (dh and dv_new null,
// nothing written a chunk): from zero, a segment's start gradient L; and without dO and dv_local (null: their
// tiles and Q's zero-filled, nothing read, so that the Q^T dO product adds zero) from identity columns (dht = I,
// V = K), the segment's transition M. The products run unconditionally: a branch around one of a batch made
// ptxas fence the accumulators (its warning C7519) in every form.

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
constexpr int kLdD = kBV + 8;  // dv_local's rows, padded by 16 bytes

// kBuf: the buffers of Q, W, dO and dv_local (2 or 1); K has two.
template <int KD, int kBuf>
struct Tiles {
  using E = Inner;
  using LayoutKm = decltype(tile_to_shape(GMMA::Layout_K_SW128_Atom<E>{}, Shape<Int<kC>, Int<KD>, _2>{}));   // K: A of K dS
  using LayoutT = decltype(tile_to_shape(GMMA::Layout_MN_SW128_Atom<E>{}, Shape<Int<KD>, Int<kC>, Int<kBuf>>{}));  // Q^T, W^T
  using LayoutD = decltype(tile_to_shape(GMMA::Layout_MN_SW128_Atom<E>{}, Shape<Int<kBV>, Int<KD>>{}));      // dS as B
  using LayoutO = decltype(tile_to_shape(GMMA::Layout_MN_SW128_Atom<E>{}, Shape<Int<kBV>, Int<kC>, Int<kBuf>>{}));  // dO as B
  using LayoutV = decltype(tile_to_shape(GMMA::Layout_MN_SW128_Atom<E>{}, Shape<Int<kBV>, Int<kC>>{}));      // -dv_new as B
  using MmaX = MmaKNOf<E>;
  using MmaS = MmaNNOf<E>;
};

template <int KD, int kBuf>
struct alignas(1024) Smem {
  using L = Tiles<KD, kBuf>;
  alignas(1024) Inner k[cosize_v<typename L::LayoutKm>];
  alignas(1024) Inner q[cosize_v<typename L::LayoutT>];
  alignas(1024) Inner w[cosize_v<typename L::LayoutT>];
  alignas(1024) Inner dout[cosize_v<typename L::LayoutO>];
  alignas(1024) Inner d[cosize_v<typename L::LayoutD>];
  alignas(1024) Inner v[cosize_v<typename L::LayoutV>];
  alignas(16) Inner dv_local[kBuf][kC * kLdD];
  float G[kC];       // the chunk's cumulative log decay
  float graw[2][kC];  // its g, copied a chunk ahead with K (gated)
};

// I: the inputs' dtype (q, k, dout); w, dv_local, dh and dv_new are Inner. kPipe: StateBwdParams::buffers (1, 2
// or 3, the file's comment says how each goes).
template <class I, int KD, bool kW, bool kGated, int kPipe>
__global__ void __launch_bounds__(kThreads) state_backward_kernel(const StateBwdParams p) {
#if defined(__CUDA_ARCH__) && defined(CUTE_ARCH_MMA_SM90A_ENABLED)
  constexpr int kBuf = kPipe == 2 ? 2 : 1;  // the buffers of Q, W, dO and dv_local
  using E = Inner;
  using L = Tiles<KD, kBuf>;
  extern __shared__ char smem_raw[];
  auto& s = aligned_smem<Smem<KD, kBuf>>(smem_raw);
  const int tid = threadIdx.x;
  const int64_t H = p.H, V = p.V;
  const SequenceSpan seq = locate_sequence(p.seq_starts, p.chunk_starts, p.T, H);
  const int64_t n = seq.n, head = seq.head, t_begin = seq.t_begin, t_end = seq.t_end, chunk0 = seq.chunk0;
  const int chunks = seq.chunks;
  const int64_t col0 = int64_t(blockIdx.x) * kBV;
  const float dscale = p.dout_scale != nullptr ? *p.dout_scale : 1.0f;  // dO's factor where it is rounded to fp16

  Tensor sK = make_tensor(make_smem_ptr(s.k), typename L::LayoutKm{});   // (C, KD, 2)
  Tensor sQ = make_tensor(make_smem_ptr(s.q), typename L::LayoutT{});    // (KD, C, kBuf)
  Tensor sW = make_tensor(make_smem_ptr(s.w), typename L::LayoutT{});    // (KD, C, kBuf)
  Tensor sO = make_tensor(make_smem_ptr(s.dout), typename L::LayoutO{}); // (BV, C, kBuf)
  Tensor sD = make_tensor(make_smem_ptr(s.d), typename L::LayoutD{});    // (BV, KD)
  Tensor sV = make_tensor(make_smem_ptr(s.v), typename L::LayoutV{});    // (BV, C)

  typename L::MmaX mma_x;
  typename L::MmaS mma_s;
  auto thr_x = mma_x.get_thread_slice(tid);
  auto thr_s = mma_s.get_thread_slice(tid);
  Tensor tXrK = thr_x.make_fragment_A(thr_x.partition_A(sK));
  Tensor tXrD = thr_x.make_fragment_B(thr_x.partition_B(sD));
  Tensor tSrQ = thr_s.make_fragment_A(thr_s.partition_A(sQ));
  Tensor tSrW = thr_s.make_fragment_A(thr_s.partition_A(sW));
  Tensor tSrO = thr_s.make_fragment_B(thr_s.partition_B(sO));
  Tensor tSrV = thr_s.make_fragment_B(thr_s.partition_B(sV));
  Tensor accX = partition_fragment_C(mma_x, Shape<Int<kC>, Int<kBV>>{});  // K dS, (token, column)
  Tensor accD = partition_fragment_C(mma_s, Shape<Int<KD>, Int<kBV>>{});  // dS, (feature, column)
  Tensor cD = thr_s.partition_C(make_identity_tensor(Shape<Int<KD>, Int<kBV>>{}));  // for dht and dh0, once a block
  static_assert(std::is_same_v<typename L::LayoutD, decltype(tile_to_shape(GMMA::Layout_MN_SW128_Atom<E>{}, Shape<Int<kBV>, Int<KD>>{}))> &&
                    std::is_same_v<typename L::LayoutV, decltype(tile_to_shape(GMMA::Layout_MN_SW128_Atom<E>{}, Shape<Int<kBV>, Int<kC>>{}))>,
                "sD and sV as mn_major_at addresses them");

  // dS at the sequence's end: dht, or zeros. Written out, as chunk_state_fwd.cu's initial state (a helper took
  // this kernel from 168-173 to 224-242 registers at K 128).
  CUTE_UNROLL
  for (int i = 0; i < size(accD); ++i) {
    const int f = get<0>(cD(i)), c = get<1>(cD(i));
    accD(i) = p.dht ? p.dht[((n * H + head) * p.K + f) * V + col0 + c] : 0.0f;
  }

  const I* q = static_cast<const I*>(p.q);
  const I* k = static_cast<const I*>(p.k);
  const E* w = static_cast<const E*>(p.w);
  const I* dout = static_cast<const I*>(p.dout);
  const E* dv_local = static_cast<const E*>(p.dv_local);
  const bool affine = dout != nullptr;  // else a transition: Q, dO and dv_local zero-filled
  constexpr int kPieces = KD / 8, kColPieces = kBV / 8;
  // Requests chunk ci's K into buffer b and, with `late`, its Q, W, dO and dv_local into buffer lb (rows past the
  // sequence zero-filled), as one group; pipeline 1 requests the two parts as two groups.
  auto request = [&](int ci, int b, bool early, bool late, int lb) {
    const int64_t t0 = t_begin + int64_t(ci) * kC;
    for (int i = tid; i < kC * kPieces; i += kThreads) {
      const int r = i / kPieces, f = (i % kPieces) * 8;
      const bool valid = t0 + r < t_end;
      const int64_t row = valid ? (t0 + r) * H + head : 0;
      if (early) copy16_zfill(&sK(r, f, b), k + row * KD + f, valid);
      if (late) {
        // Without dO (a transition) zero-filled from k's address, which is never read.
        copy16_zfill(&sQ(f, r, lb), affine ? q + row * KD + f : k, valid && affine);
        if constexpr (kW) copy16_zfill(&sW(f, r, lb), w + row * KD + f, valid);
      }
    }
    for (int i = tid; late && i < kC * kColPieces; i += kThreads) {
      const int r = i / kColPieces, c = (i % kColPieces) * 8;
      const bool valid = affine && t0 + r < t_end;
      const int64_t at = valid ? ((t0 + r) * H + head) * V + col0 + c : 0;
      copy16_zfill(&sO(c, r, lb), valid ? static_cast<const void*>(dout + at) : k, valid);
      copy16_zfill(&s.dv_local[lb][r * kLdD + c], valid ? static_cast<const void*>(dv_local + at) : k, valid);
    }
    if constexpr (kGated) {
      if (early && tid < 32) request_chunk_g(s.graw[b], p.g + t0 * H + head, H, t_end - t0 < kC ? static_cast<int>(t_end - t0) : kC);
    }
    commit();
  };
  // Pipeline 3's requests of chunk ci's single-buffered tiles, each part its own group: Q and dO, W, or dv_local.
  enum Part { kQO, kWPart, kDvl };
  auto request_part = [&](int ci, Part part) {
    const int64_t t0 = t_begin + int64_t(ci) * kC;
    if (part != kDvl) {
      for (int i = tid; i < kC * kPieces; i += kThreads) {
        const int r = i / kPieces, f = (i % kPieces) * 8;
        const bool valid = t0 + r < t_end;
        const int64_t row = valid ? (t0 + r) * H + head : 0;
        if (part == kQO) copy16_zfill(&sQ(f, r, 0), affine ? q + row * KD + f : k, valid && affine);
        if constexpr (kW) {
          if (part == kWPart) copy16_zfill(&sW(f, r, 0), w + row * KD + f, valid);
        }
      }
    }
    if (part != kWPart) {
      for (int i = tid; i < kC * kColPieces; i += kThreads) {
        const int r = i / kColPieces, c = (i % kColPieces) * 8;
        const bool valid = affine && t0 + r < t_end;
        const int64_t at = valid ? ((t0 + r) * H + head) * V + col0 + c : 0;
        if (part == kQO) copy16_zfill(&sO(c, r, 0), valid ? static_cast<const void*>(dout + at) : k, valid);
        if (part == kDvl) copy16_zfill(&s.dv_local[0][r * kLdD + c], valid ? static_cast<const void*>(dv_local + at) : k, valid);
      }
    }
    commit();
  };
  // This thread's pieces of chunk ci's q (buffer lb) and dO made fp16, dO scaled by scale e^G of its row.
  auto late_to_inner = [&](int lb) {
    for (int i = tid; i < kC * kPieces; i += kThreads) {
      const int r = i / kPieces, f = (i % kPieces) * 8;
      to_inner_in_place<I>(&sQ(f, r, lb));
    }
    for (int i = tid; i < kC * kColPieces; i += kThreads) {
      const int r = i / kColPieces, c = (i % kColPieces) * 8;
      scaled_to_inner_in_place<I>(&sO(c, r, lb), (kGated ? p.scale * __expf(s.G[r]) : p.scale) * dscale);
    }
  };

  E* dh_out = static_cast<E*>(p.dh);
  E* dv_out = static_cast<E*>(p.dv_new);
  // The groups in flight, oldest first, when chunk ci begins (before it requests chunk ci - 1's K): pipeline 2,
  // chunk ci's; 1, its K and its rest; 3, its K, dv_local, Q and dO, and W. Each chunk requests the same again for
  // the chunk before it (an empty group where there is none), so that every wait below counts the same groups.
  if (chunks > 0) {
    if constexpr (kPipe == 2) {
      request(chunks - 1, (chunks - 1) & 1, true, true, (chunks - 1) & 1);
    } else {
      request(chunks - 1, (chunks - 1) & 1, true, false, 0);
      if constexpr (kPipe == 1) {
        request(chunks - 1, 0, false, true, 0);
      } else {
        request_part(chunks - 1, kDvl);
        request_part(chunks - 1, kQO);
        request_part(chunks - 1, kWPart);
      }
    }
  }
  for (int ci = chunks - 1; ci >= 0; --ci) {
    const int b = ci & 1;
    const int lb = kBuf == 2 ? b : 0;  // the buffer of Q, W, dO and dv_local
    // The thread's first accumulator row and column (tiles.h): a value's place is one of them plus a constant of
    // its index. From `opaque_tid` each chunk, so that the compiler forms the few offsets again here rather than
    // keep them across the loop.
    const int me = opaque_tid();
    const int arow = acc_row(me), acol = acc_col(me);
    const int64_t t0 = t_begin + int64_t(ci) * kC;
    const int rows = t_end - t0 < kC ? static_cast<int>(t_end - t0) : kC;
    __syncthreads();  // every thread is past the last chunk's products (buffer b ^ 1, sD, sV)
    if (ci > 0) {
      request(ci - 1, b ^ 1, true, kPipe == 2, b ^ 1);
    } else {
      commit();  // an empty group: the waits below count the same groups in every iteration
    }
    // 1. dS, rounded, into sD.
    CUTE_UNROLL
    for (int i = 0; i < size(accD); i += 2) {
      store_shared(s.d + mn_major_at<kBV>(acol + acc_col_of<KD>(i), arow + acc_row_of<KD>(i)), pack_as<E>(accD(i), accD(i + 1)));
    }
    // Chunk ci's K and g (2: and the rest; 3: and its dv_local, Q and dO), the newer groups pending: chunk ci - 1's
    // K (1: and ci's rest; 3: and ci's W). The chunk's cumulative log decay by the first warp, from the g its lanes
    // copied.
    constexpr int kNewer = kPipe == 2 ? 1 : 2;
    wait<kNewer>();
    if constexpr (kGated) {
      if (tid < 32) chunk_cumsum_landed(s.graw[b], s.G);
    }
    __syncthreads();  // G for the scaling below
    // This thread's pieces of k made fp16 (2 and 3: q and dO too).
    for (int i = tid; i < kC * kPieces; i += kThreads) {
      const int r = i / kPieces, f = (i % kPieces) * 8;
      to_inner_in_place<I>(&sK(r, f, b));
      if constexpr (kPipe == 2) to_inner_in_place<I>(&sQ(f, r, b));
      if constexpr (kPipe == 3) to_inner_in_place<I>(&sQ(f, r, 0));
    }
    if constexpr (kPipe != 1) {
      for (int i = tid; i < kC * kColPieces; i += kThreads) {
        const int r = i / kColPieces, c = (i % kColPieces) * 8;
        scaled_to_inner_in_place<I>(&sO(c, r, kPipe == 2 ? b : lb), (kGated ? p.scale * __expf(s.G[r]) : p.scale) * dscale);
      }
    }
    landed_for_wgmma<kNewer>();
    const float G_last = kGated ? s.G[rows - 1] : 0.0f;

    // 2. x = K dS, and dh out while the product runs (both read sD). Pipeline 3: dS scaled by exp(G_last) and
    //    Q^T (scale e^G dO) added to it in the same batch, as a second wgmma group (step 3's first product, in its
    //    order), after which Q and dO are free.
    if constexpr (kPipe == 3 && kGated) {
      const float gamma = __expf(G_last);
      CUTE_UNROLL
      for (int i = 0; i < size(accD); ++i) accD(i) *= gamma;
    }
    clear(accX);
    warpgroup_fence_operand(accX);
    if constexpr (kPipe == 3) warpgroup_fence_operand(accD);
    warpgroup_arrive();
    gemm(mma_x, tXrK(_, _, _, b), tXrD, accX);
    warpgroup_commit_batch();
    if constexpr (kPipe == 3) {
      gemm(mma_s, tSrQ(_, _, _, lb), tSrO(_, _, _, lb), accD);
      warpgroup_commit_batch();
    }
    if (dh_out != nullptr) {
      E* dst = dh_out + ((chunk0 + ci) * H + head) * KD * V + col0;
      for (int i = tid; i < KD * kColPieces; i += kThreads) {
        const int f = i / kColPieces, c = (i % kColPieces) * 8;
        *reinterpret_cast<uint4*>(dst + int64_t(f) * V + c) = *reinterpret_cast<const uint4*>(&sD(c, f));
      }
    }
    warpgroup_wait<kPipe == 3 ? 1 : 0>();  // 3: K dS done, Q^T dO may still run
    warpgroup_fence_operand(accX);
    if constexpr (kPipe == 1) {  // chunk ci's late group landed: q and dO made fp16, and every thread's seen
      wait<1>();
      late_to_inner(lb);
      cutlass::arch::fence_view_async_shared();
      __syncthreads();
    }
    // dv_new = dv_local + exp(G_last - G) x: out, and negated into sV. The thread's values lie in two rows (arow
    // and arow + 8): two exps, taken once.
    float decay0 = 1.0f, decay8 = 1.0f;
    if constexpr (kGated) {
      if (arow < rows) decay0 = __expf(G_last - s.G[arow]);
      if (arow + 8 < rows) decay8 = __expf(G_last - s.G[arow + 8]);
    }
    CUTE_UNROLL
    for (int i = 0; i < size(accX); i += 2) {
      const int r = arow + acc_row_of(i), c = acol + acc_col_of(i);
      const float decay = acc_upper(i) ? decay8 : decay0;
      const float x0 = float(s.dv_local[lb][r * kLdD + c]) + decay * accX(i);
      const float x1 = float(s.dv_local[lb][r * kLdD + c + 1]) + decay * accX(i + 1);
      store_shared(s.v + mn_major_at<kBV>(c, r), pack_as<E>(-x0, -x1));  // zero past the sequence: K and dv_local zero-filled there
    }
    if constexpr (kGated && kPipe != 3) {
      const float gamma = __expf(G_last);
      CUTE_UNROLL
      for (int i = 0; i < size(accD); ++i) accD(i) *= gamma;
    }
    // 3: chunk ci's W landed (the newer groups: chunk ci - 1's K), seen by every thread after the barrier below.
    if constexpr (kPipe == 3) wait<1>();
    cutlass::arch::fence_view_async_shared();
    __syncthreads();
    // 3: every thread is past the epilogue: dv_local's buffer takes chunk ci - 1's.
    if constexpr (kPipe == 3) {
      if (ci > 0) {
        request_part(ci - 1, kDvl);
      } else {
        commit();
      }
    }
    // 3. dS += Q^T (scale e^G dO) + W^T (-dv_new), one batch (3: the first product ran in step 2's).
    warpgroup_fence_operand(accD);
    warpgroup_arrive();
    if constexpr (kPipe != 3) gemm(mma_s, tSrQ(_, _, _, lb), tSrO(_, _, _, lb), accD);
    if constexpr (kW) gemm(mma_s, tSrW(_, _, _, lb), tSrV, accD);
    warpgroup_commit_batch();
    // dv_new out while the products run, from sV: -dv_new rounded, a row's 64 columns in 16-byte pieces of 8. Its
    // sign bits flipped are dv_new's bits (rounding to nearest is symmetric in sign).
    if (dv_out != nullptr) {
      E* dst = dv_out + (t0 * H + head) * V + col0;
      for (int i = tid; i < rows * kColPieces; i += kThreads) {
        const int r = i / kColPieces, c = (i % kColPieces) * 8;
        const uint4 x = load_shared_16(&sV(c, r));
        store_global_16(dst + r * H * V + c, make_uint4(x.x ^ 0x80008000u, x.y ^ 0x80008000u, x.z ^ 0x80008000u, x.w ^ 0x80008000u));
      }
    }
    if constexpr (kPipe == 3) {  // Q^T dO done in every thread: Q and dO free for chunk ci - 1's
      warpgroup_wait<1>();
      __syncthreads();
      if (ci > 0) {
        request_part(ci - 1, kQO);
      } else {
        commit();
      }
    }
    warpgroup_wait<0>();
    warpgroup_fence_operand(accD);
    if constexpr (kPipe == 1) {  // Q, W, dO and dv_local free: the previous chunk's into them
      if (ci > 0) {
        __syncthreads();
        request(ci - 1, 0, false, true, 0);
      }
    }
    if constexpr (kPipe == 3) {  // W free: chunk ci - 1's into it
      __syncthreads();
      if (ci > 0) {
        request_part(ci - 1, kWPart);
      } else {
        commit();
      }
    }
  }
  if (p.dh0) {
    CUTE_UNROLL
    for (int i = 0; i < size(accD); ++i) {
      const int f = get<0>(cD(i)), c = get<1>(cD(i));
      p.dh0[((n * H + head) * p.K + f) * V + col0 + c] = accD(i);
    }
  }
#endif
}

template <class I, int KD, bool kW, bool kGated>
void launch(const StateBwdParams& p, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(p.V / kBV), static_cast<unsigned>(p.N * p.H));
  if (p.buffers == 1) {
    launch_warpgroup<Smem<KD, 1>>("sm90::chunk_state_backward", state_backward_kernel<I, KD, kW, kGated, 1>, grid, stream, p);
  } else if (p.buffers == 3) {
    launch_warpgroup<Smem<KD, 1>>("sm90::chunk_state_backward", state_backward_kernel<I, KD, kW, kGated, 3>, grid, stream, p);
  } else {
    launch_warpgroup<Smem<KD, 2>>("sm90::chunk_state_backward", state_backward_kernel<I, KD, kW, kGated, 2>, grid, stream, p);
  }
}

template <class I, int KD>
void dispatch_rule(const StateBwdParams& p, cudaStream_t stream) {
  const bool has_w = p.w != nullptr, gated = p.g != nullptr;
  if (has_w && gated) return launch<I, KD, true, true>(p, stream);
  if (has_w) return launch<I, KD, true, false>(p, stream);
  if (gated) return launch<I, KD, false, true>(p, stream);
  return launch<I, KD, false, false>(p, stream);
}

template <class I>
void dispatch_k(const StateBwdParams& p, cudaStream_t stream) {
  if (p.K == 64) return dispatch_rule<I, 64>(p, stream);
  return dispatch_rule<I, 128>(p, stream);
}

}  // namespace

void chunk_state_backward(const StateBwdParams& p, void* stream) {
  detail::CallShape shape{p.dtype, p.N, p.T, p.H, p.K, p.V, p.seq_starts, p.chunk_starts};
  detail::check_call("sm90::chunk_state_backward", shape, {{"k", p.k}},
                     {{"q", p.q}, {"w", p.w}, {"dout", p.dout}, {"dv_local", p.dv_local}, {"dh", p.dh}, {"dv_new", p.dv_new}});
  const auto refuse = [](const std::string& what) {
    throw std::invalid_argument("sm90::chunk_state_backward: " + what);
  };
  if ((p.dout == nullptr) != (p.dv_local == nullptr) || (p.dout != nullptr && p.q == nullptr)) {
    refuse("q, dout and dv_local go together: all set, or dout and dv_local null for a segment's transition (got q " +
           std::string(p.q ? "set" : "null") + ", dout " + (p.dout ? "set" : "null") + ", dv_local " +
           (p.dv_local ? "set" : "null") + ")");
  }
  if ((p.dh == nullptr) != (p.dv_new == nullptr)) {
    refuse(std::string("dh and dv_new go together: both set, or both null for a pass that writes dh0 alone (got dh ") +
           (p.dh ? "set" : "null") + ", dv_new " + (p.dv_new ? "set" : "null") + ")");
  }
  if (p.dh == nullptr && p.dh0 == nullptr) refuse("with dh and dv_new null the pass writes nothing: dh0 must be set");
  if (p.dout == nullptr && p.dh != nullptr) {
    refuse("a transition (dout null) writes dh0 alone: dh and dv_new must be null");
  }
  if (p.buffers < 0 || p.buffers > 3) {
    refuse("buffers must be 0 (chosen for the grid), 1, 2 or 3 (got " + std::to_string(p.buffers) + ")");
  }
  if (p.N * p.H > 65535) {
    throw std::invalid_argument("sm90::chunk_state_backward: N H must be at most 65535, a block row each (got " +
                                std::to_string(p.N * p.H) + ")");
  }
  StateBwdParams call = p;
  if (call.buffers == 0) {
    int device = 0, sms = 0;
    cudaGetDevice(&device);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    call.buffers = state_backward_buffers(p.V / kBV * p.N * p.H, p.K, sms);
  }
  const auto s = static_cast<cudaStream_t>(stream);
  if (p.dtype == Dtype::kBF16) return dispatch_k<cutlass::bfloat16_t>(call, s);
  return dispatch_k<cutlass::half_t>(call, s);
}

}  // namespace deltabench::cuda::sm90
