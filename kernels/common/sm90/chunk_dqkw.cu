// The backward's chunk-parallel gradients of q, k, W and G on Hopper's warpgroup products (wgmma), version 1
// (FLA's chunk_bwd_dqkwg): sm90_kernels.h says what it computes, kernels/delta_rule/NOTES.md ("Hopper
// version 1") why.
//
// One block (one warpgroup, 128 threads) a (chunk, head). dO, v_new and dv_new [64 x V], the chunk's h and dh
// [K x V] and q, k [64 x K] come by cp.async into 128-byte-swizzled tiles (dO, q, k made fp16 in place), and
// the products run one accumulator at a time, so that at most one [64 x K] fp32 tile lives in registers, in
// the order A, B, D, C, dv_new and dh loaded into dO's and h's tiles once those have been read:
//   A. dA = dO v_new^T (contraction over V), masked to j <= i, times scale exp(G_i - G_j), rounded into a
//      K-major tile, which read M-major is also dA^T;
//   B. dq = scale e^G (dO h^T) + dA k;
//   C. dk = exp(G_last - G) (v_new dh^T) + dA^T q;
//   D. dW = -(dv_new h^T) (the delta rules);
//   with a decay, dG = rowsum(dq q) - rowsum(dk k), the last row of the chunk adding the state update's terms,
//   rowsum over the chunk of (exp(G_last - G) v_new dh^T) k, and exp(G_last) sum(h dh).
// h^T and dh^T are K-major B operands as h and dh sit in memory ([K][V], V contiguous); q and k are N-major
// B operands as they sit ([tokens][K]). dq is written fp32 or in the inputs' dtype, dk fp32, dW fp16.

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
constexpr int kThreads = kWarpgroupThreads;

template <int KD, int VD>
struct Tiles {
  using E = Inner;
  using LayoutTV = decltype(tile_to_shape(GMMA::Layout_K_SW128_Atom<E>{}, Shape<Int<kC>, Int<VD>>{}));   // dO, v_new, dv_new
  using LayoutFV = decltype(tile_to_shape(GMMA::Layout_K_SW128_Atom<E>{}, Shape<Int<KD>, Int<VD>>{}));   // h^T, dh^T as B
  using LayoutFT = decltype(tile_to_shape(GMMA::Layout_MN_SW128_Atom<E>{}, Shape<Int<KD>, Int<kC>>{}));  // q, k as B
  using LayoutA = decltype(tile_to_shape(GMMA::Layout_K_SW128_Atom<E>{}, Shape<Int<kC>, Int<kC>>{}));    // dA as A
  // dA^T as A: a 64 x 64 K-major tile is one atom wide, so the same bytes read as an M-major tile of the
  // transposed shape are its transpose (element (i, j) at the same offset as element (j, i) of this one).
  using LayoutAt = decltype(tile_to_shape(GMMA::Layout_MN_SW128_Atom<E>{}, Shape<Int<kC>, Int<kC>>{}));
  using MmaKK = MmaKKOf<E>;
  using MmaKN = MmaKNOf<E>;
  using MmaNN = MmaNNOf<E>;
};

// dv_new is loaded into dO's tile once dq's products have read dO, and dh into h's once dW's have read h; the
// products run A, B, D, C: 104 KB at K = V = 128 (152 with every tile apart), two blocks an SM, one block's loads
// hidden behind the other's products. With a decay, sum(h dh) is taken as dh replaces h (dh_into_h).
template <int KD, int VD>
struct alignas(1024) Smem {
  using L = Tiles<KD, VD>;
  alignas(1024) Inner dout[cosize_v<typename L::LayoutTV>];  // dO, then dv_new
  alignas(1024) Inner vn[cosize_v<typename L::LayoutTV>];
  alignas(1024) Inner h[cosize_v<typename L::LayoutFV>];     // h, then dh
  alignas(1024) Inner q[cosize_v<typename L::LayoutFT>];
  alignas(1024) Inner k[cosize_v<typename L::LayoutFT>];
  alignas(1024) Inner a[cosize_v<typename L::LayoutA>];
  float G[kC], rowq[kC], rowk[kC], rowend[kC], hdh[kThreads / 32];
};

// Two blocks an SM at K = V = 128: each block's storage, its alignment slack (launch_warpgroup's
// 1 KB) and the 1 KB an SM reserves a block within half of the SM's 228 KB.
static_assert(sizeof(Smem<128, 128>) + 1024 + 1024 <= 228 * 1024 / 2, "dq/dk/dW: two blocks an SM");

// I: the inputs' dtype (q, k, dO); v_new, dv_new, h and dh are Inner.
template <class I, int KD, int VD, bool kW, bool kGated>
__global__ void __launch_bounds__(kThreads) dqkw_kernel(const DqkwParams p) {
#if defined(__CUDA_ARCH__) && defined(CUTE_ARCH_MMA_SM90A_ENABLED)
  using E = Inner;
  using L = Tiles<KD, VD>;
  extern __shared__ char smem_raw[];
  auto& s = aligned_smem<Smem<KD, VD>>(smem_raw);
  const int tid = threadIdx.x;
  const int64_t H = p.H;
  const int64_t chunk = blockIdx.x, head = blockIdx.y;
  const ChunkSpan span = locate_chunk(chunk, p.chunk_starts, p.seq_starts, p.N, p.T);
  const int64_t t0 = span.t0;
  const int rows = span.rows;

  Tensor sO = make_tensor(make_smem_ptr(s.dout), typename L::LayoutTV{});  // (C, V)
  Tensor sVn = make_tensor(make_smem_ptr(s.vn), typename L::LayoutTV{});
  Tensor sDvn = make_tensor(make_smem_ptr(s.dout), typename L::LayoutTV{});  // dO's tile, after B
  Tensor sHt = make_tensor(make_smem_ptr(s.h), typename L::LayoutFV{});    // (KD, V): h^T as B
  Tensor sDht = make_tensor(make_smem_ptr(s.h), typename L::LayoutFV{});      // h's tile, after D
  Tensor sQ = make_tensor(make_smem_ptr(s.q), typename L::LayoutFT{});     // (KD, C): q as B
  Tensor sK = make_tensor(make_smem_ptr(s.k), typename L::LayoutFT{});
  Tensor sA = make_tensor(make_smem_ptr(s.a), typename L::LayoutA{});      // (C, C): dA
  Tensor sAt = make_tensor(make_smem_ptr(s.a), typename L::LayoutAt{});    // (C, C): dA^T

  const I* q = static_cast<const I*>(p.q);
  const I* k = static_cast<const I*>(p.k);
  const I* dout = static_cast<const I*>(p.dout);
  const E* vn = static_cast<const E*>(p.v_new);
  const E* dvn = static_cast<const E*>(p.dv_new);
  const E* h = static_cast<const E*>(p.h) + (chunk * H + head) * KD * VD;
  const E* dh = static_cast<const E*>(p.dh) + (chunk * H + head) * KD * VD;
  constexpr int kVPieces = VD / 8, kKPieces = KD / 8;
  auto load_dvn = [&] {
    for (int i = tid; i < kC * kVPieces; i += kThreads) {
      const int r = i / kVPieces, c = (i % kVPieces) * 8;
      const bool valid = r < rows;
      copy16_zfill(&sDvn(r, c), dvn + (valid ? ((t0 + r) * H + head) * VD + c : 0), valid);
    }
  };
  auto load_dh = [&] {
    for (int i = tid; i < KD * kVPieces; i += kThreads) {
      const int f = i / kVPieces, c = (i % kVPieces) * 8;
      copy16_zfill(&sDht(f, c), dh + int64_t(f) * VD + c, true);
    }
  };
  // With a decay, dh into h's tile through registers once every warp is past its last read of h: each thread its
  // pieces (load_dh's), h's piece read from shared memory and dh's from device memory, their products summed 8
  // elements a piece in two chains (this thread's part of sum(h dh), returned), dh's piece stored where h's was.
  auto dh_into_h = [&] {
    constexpr int kPieces = KD * kVPieces / kThreads, kRound = kPieces < 8 ? kPieces : 8;
    static_assert(KD * kVPieces % kThreads == 0 && kPieces % kRound == 0, "whole rounds of pieces a thread");
    float even = 0.0f, odd = 0.0f;
    CUTE_UNROLL
    for (int round = 0; round < kPieces; round += kRound) {
      uint4 d[kRound];  // every load of a round before its first shared store (whose memory clobber would order them)
      CUTE_UNROLL
      for (int j = 0; j < kRound; ++j) {
        const int i = tid + (round + j) * kThreads, f = i / kVPieces, c = (i % kVPieces) * 8;
        d[j] = *reinterpret_cast<const uint4*>(dh + int64_t(f) * VD + c);
      }
      CUTE_UNROLL
      for (int j = 0; j < kRound; ++j) {
        const int i = tid + (round + j) * kThreads, f = i / kVPieces, c = (i % kVPieces) * 8;
        const auto at = static_cast<unsigned>(__cvta_generic_to_shared(&sHt(f, c)));
        const uint4 w = load_shared_16(at);
        const auto* x = reinterpret_cast<const E*>(&w);
        const auto* y = reinterpret_cast<const E*>(&d[j]);
        CUTE_UNROLL
        for (int e = 0; e < 8; e += 2) {
          even += float(x[e]) * float(y[e]);
          odd += float(x[e + 1]) * float(y[e + 1]);
        }
        store_shared_16(at, d[j]);
      }
    }
    return even + odd;
  };
  for (int i = tid; i < kC * kVPieces; i += kThreads) {
    const int r = i / kVPieces, c = (i % kVPieces) * 8;
    const bool valid = r < rows;
    const int64_t at = valid ? ((t0 + r) * H + head) * VD + c : 0;
    copy16_zfill(&sO(r, c), dout + at, valid);
    copy16_zfill(&sVn(r, c), vn + at, valid);
  }
  for (int i = tid; i < KD * kVPieces; i += kThreads) {
    const int f = i / kVPieces, c = (i % kVPieces) * 8;
    copy16_zfill(&sHt(f, c), h + int64_t(f) * VD + c, true);
  }
  for (int i = tid; i < kC * kKPieces; i += kThreads) {
    const int r = i / kKPieces, f = (i % kKPieces) * 8;
    const bool valid = r < rows;
    const int64_t at = valid ? ((t0 + r) * H + head) * KD + f : 0;
    copy16_zfill(&sQ(f, r), q + at, valid);
    copy16_zfill(&sK(f, r), k + at, valid);
  }
  commit();
  if constexpr (kGated) {
    if (tid < 32) chunk_cumsum(p.g + t0 * H + head, H, rows, s.G);
  }
  wait<0>();
  // dO, q and k made fp16 by the thread that copied each piece, dO times its factor where one is given.
  const float dscale = p.dout_scale != nullptr ? *p.dout_scale : 1.0f;
  if (!std::is_same_v<I, E> || p.dout_scale != nullptr) {
    for (int i = tid; i < kC * kVPieces; i += kThreads) {
      scaled_to_inner_in_place<I>(&sO(i / kVPieces, (i % kVPieces) * 8), dscale);
    }
  }
  if constexpr (!std::is_same_v<I, E>) {
    for (int i = tid; i < kC * kKPieces; i += kThreads) {
      to_inner_in_place<I>(&sQ((i % kKPieces) * 8, i / kKPieces));
      to_inner_in_place<I>(&sK((i % kKPieces) * 8, i / kKPieces));
    }
  }
  landed_for_wgmma<0>();
  const float scale = p.scale;
  const float G_last = kGated ? s.G[rows - 1] : 0.0f;

  typename L::MmaKK mma_kk;
  typename L::MmaKN mma_kn;
  typename L::MmaNN mma_nn;
  auto thr_kk = mma_kk.get_thread_slice(tid);
  auto thr_kn = mma_kn.get_thread_slice(tid);
  auto thr_nn = mma_nn.get_thread_slice(tid);
  // The thread's accumulator rows (row0 and row0 + 8) and first column (tiles.h, acc_row): every value's place is
  // one of those plus a constant of its index, so the unrolled loops below address from a few registers.
  const int row0 = acc_row(tid), col0 = acc_col(tid);
  static_assert(std::is_same_v<typename L::LayoutA, KMajorTile<E, kC, kC>>, "sA as k_major_at addresses it");
  static_assert(std::is_same_v<typename L::LayoutFT, decltype(tile_to_shape(GMMA::Layout_MN_SW128_Atom<E>{},
                                                                             Shape<Int<KD>, Int<kC>>{}))>,
                "q and k as mn_major_at addresses them");

  // A. dA = dO v_new^T, masked, scaled, rounded into sA. The exps are taken for every value and the masked ones
  //    dropped by a select (one that overflows is never used), so that no branch a pair splits the code.
  {
    Tensor acc = partition_fragment_C(mma_kk, Shape<Int<kC>, Int<kC>>{});
    clear(acc);
    product(mma_kk, thr_kk.make_fragment_A(thr_kk.partition_A(sO)), thr_kk.make_fragment_B(thr_kk.partition_B(sVn)), acc);
    CUTE_UNROLL
    for (int i = 0; i < size(acc); i += 2) {
      const int r = row0 + acc_row_of(i), c = col0 + acc_col_of(i);
      float a = acc(i) * scale, b = acc(i + 1) * scale;
      if constexpr (kGated) {
        a *= __expf(s.G[r] - s.G[c]);
        b *= __expf(s.G[r] - s.G[c + 1]);
      }
      store_shared(s.a + k_major_at<kC>(r, c), pack_as<E>(c <= r ? a : 0.0f, c + 1 <= r ? b : 0.0f));
    }
  }
  cutlass::arch::fence_view_async_shared();
  __syncthreads();

  Tensor acc = partition_fragment_C(mma_kk, Shape<Int<kC>, Int<KD>>{});  // dq, dk, dW in turn
  // acc times factor, the sequence's rows in pairs of columns, in the given form: into dst (fp32) or dst16 (bf16
  // or fp16: dq's final values in the inputs' dtype, sm90::chunk_train's; dW in fp16). Two row offsets, each
  // pair at a constant past one of them.
  auto out = [&](auto form, float* dst, void* dst16, float factor) {
    constexpr OutForm kForm = decltype(form)::value;
    const int64_t at0 = ((t0 + row0) * H + head) * KD + col0, at8 = at0 + 8 * H * KD;
    const bool in0 = row0 < rows, in8 = row0 + 8 < rows;
    CUTE_UNROLL
    for (int i = 0; i < size(acc); i += 2) {
      if (acc_upper(i) ? in8 : in0) {
        store_pair<kForm>(dst, dst16, (acc_upper(i) ? at8 : at0) + acc_col_of(i), factor * acc(i), factor * acc(i + 1));
      }
    }
  };
  // sum += x_i q(r, c) + x_i+1 q(r, c + 1), r and c value i's, q read as it sits (an MN-major tile); likewise k.
  auto times = [&](const Inner* tile) {
    return [=](int i, float x0, float x1, float& sum) {
      const float2 y = load_shared_pair(tile + mn_major_at<KD>(col0 + acc_col_of(i), row0 + acc_row_of(i)));
      sum += x0 * y.x;
      sum += x1 * y.y;
    };
  };
  const OutFormConstant<OutForm::kF32> f32;
  const OutFormConstant<OutForm::kF16> f16;
  // The three [64 x K] accumulators share one layout: MmaKN's and MmaNN's C partition equals MmaKK's (the
  // same 64 x 64 atom, the same thread layout), so `acc` serves each product.
  // B. dq = scale e^G (dO h^T) + dA k.
  clear(acc);
  product(mma_kk, thr_kk.make_fragment_A(thr_kk.partition_A(sO)), thr_kk.make_fragment_B(thr_kk.partition_B(sHt)), acc);
  scale_acc_rows(acc, kGated ? scale * __expf(s.G[row0]) : scale, kGated ? scale * __expf(s.G[row0 + 8]) : scale);
  product(mma_kn, thr_kn.make_fragment_A(thr_kn.partition_A(sA)), thr_kn.make_fragment_B(thr_kn.partition_B(sK)), acc);
  // Every warp past its products, dO's tile takes dv_new (h's takes dh where there is neither dW nor a decay), the
  // copies in flight while dq is stored.
  __syncthreads();
  if constexpr (kW) {
    load_dvn();
    commit();
  } else if constexpr (!kGated) {
    load_dh();
    commit();
  }
  // dq scaled back where written final.
  with_out_form(p.dq_out, std::is_same_v<I, cutlass::bfloat16_t>,
                [&](auto form) { out(form, p.dq, p.dq_out, p.dq_out != nullptr ? *p.grad_scale : 1.0f); });
  if constexpr (kGated) acc_row_sums(acc, times(s.q), s.rowq, tid);
  // D. dW = -(dv_new h^T), before C: h's tile then takes dh (by cp.async, in flight while dW is stored; with a decay
  // through registers, sum(h dh) taken on the way).
  if constexpr (kW) {
    landed_for_wgmma<0>();
    clear(acc);
    product(mma_kk, thr_kk.make_fragment_A(thr_kk.partition_A(sDvn)), thr_kk.make_fragment_B(thr_kk.partition_B(sHt)), acc);
    __syncthreads();
    if constexpr (!kGated) {
      load_dh();
      commit();
    }
    out(f16, nullptr, p.dw, -1.0f);  // fp16, the UT backward's operand as it reads it
  }
  float my_hdh = 0.0f;  // this thread's part of sum(h dh)
  if constexpr (kGated) {
    my_hdh = dh_into_h();
    cutlass::arch::fence_view_async_shared();
    __syncthreads();
  } else {
    landed_for_wgmma<0>();
  }
  // C. dk = exp(G_last - G) (v_new dh^T) + dA^T q.
  clear(acc);
  product(mma_kk, thr_kk.make_fragment_A(thr_kk.partition_A(sVn)), thr_kk.make_fragment_B(thr_kk.partition_B(sDht)), acc);
  if constexpr (kGated) {
    scale_acc_rows(acc, row0 < rows ? __expf(G_last - s.G[row0]) : 0.0f, row0 + 8 < rows ? __expf(G_last - s.G[row0 + 8]) : 0.0f);
    acc_row_sums(acc, times(s.k), s.rowend, tid);
  }
  product(mma_nn, thr_nn.make_fragment_A(thr_nn.partition_A(sAt)), thr_nn.make_fragment_B(thr_nn.partition_B(sQ)), acc);
  out(f32, p.dk, nullptr, 1.0f);
  if constexpr (kGated) acc_row_sums(acc, times(s.k), s.rowk, tid);
  if constexpr (kGated) {
    // sum(h dh) over the chunk's state slice, in a fixed order: each thread its pieces (dh_into_h), then the warps.
    float part = my_hdh;
    for (int d = 16; d > 0; d /= 2) part += __shfl_xor_sync(0xffffffffu, part, d);
    if (tid % 32 == 0) s.hdh[tid / 32] = part;
    __syncthreads();
    if (tid < rows) {
      float dg = s.rowq[tid] - s.rowk[tid];
      if (tid == rows - 1) {
        float end = 0.0f, hdh = 0.0f;
        for (int r = 0; r < kC; ++r) end += s.rowend[r];
        for (int w = 0; w < kThreads / 32; ++w) hdh += s.hdh[w];
        dg += end + __expf(G_last) * hdh;
      }
      p.dg[(t0 + tid) * H + head] = dg;
    }
  }
#endif
}

template <class I, int KD, int VD, bool kW, bool kGated>
void launch(const DqkwParams& p, int64_t chunks, cudaStream_t stream) {
  launch_warpgroup<Smem<KD, VD>>("sm90::chunk_dqkw", dqkw_kernel<I, KD, VD, kW, kGated>,
                                 dim3(static_cast<unsigned>(chunks), static_cast<unsigned>(p.H)), stream, p);
}

template <class I, int KD, int VD>
void dispatch_rule(const DqkwParams& p, int64_t chunks, cudaStream_t stream) {
  const bool has_w = p.dw != nullptr, gated = p.g != nullptr;
  if (has_w && gated) return launch<I, KD, VD, true, true>(p, chunks, stream);
  if (has_w) return launch<I, KD, VD, true, false>(p, chunks, stream);
  if (gated) return launch<I, KD, VD, false, true>(p, chunks, stream);
  return launch<I, KD, VD, false, false>(p, chunks, stream);
}

template <class I>
void dispatch(const DqkwParams& p, int64_t chunks, cudaStream_t stream) {
  if (p.K == 64) return p.V == 64 ? dispatch_rule<I, 64, 64>(p, chunks, stream) : dispatch_rule<I, 64, 128>(p, chunks, stream);
  return p.V == 64 ? dispatch_rule<I, 128, 64>(p, chunks, stream) : dispatch_rule<I, 128, 128>(p, chunks, stream);
}

}  // namespace

void chunk_dqkw(const DqkwParams& p, void* stream) {
  detail::CallShape shape{p.dtype, p.N, p.T, p.H, p.K, p.V, p.seq_starts, p.chunk_starts, p.chunks, 128, true};
  const int64_t chunks = detail::check_call("sm90::chunk_dqkw", shape,
                                            {{"q", p.q}, {"k", p.k}, {"dout", p.dout}, {"v_new", p.v_new}, {"h", p.h},
                                             {"dh", p.dh}, {"dk", p.dk}},
                                            {{"dv_new", p.dv_new}, {"dw", p.dw}, {"dq", p.dq}, {"dq_out", p.dq_out}});
  if ((p.dq == nullptr) == (p.dq_out == nullptr)) {
    throw std::invalid_argument("sm90::chunk_dqkw: exactly one of dq (fp32) and dq_out (the inputs' dtype) is taken (got " +
                                std::string(p.dq == nullptr ? "neither" : "both") + ")");
  }
  if (p.dq_out != nullptr && p.grad_scale == nullptr) {
    throw std::invalid_argument("sm90::chunk_dqkw: dq_out needs grad_scale (null)");
  }
  if ((p.g == nullptr) != (p.dg == nullptr)) {
    throw std::invalid_argument("sm90::chunk_dqkw: g and dg go together (one of them is null)");
  }
  if ((p.dw == nullptr) != (p.dv_new == nullptr)) {
    throw std::invalid_argument("sm90::chunk_dqkw: dw and dv_new go together (the delta rules' W term; one of them is null)");
  }
  if (chunks <= 0) return;
  const auto s = static_cast<cudaStream_t>(stream);
  if (p.dtype == Dtype::kBF16) return dispatch<cutlass::bfloat16_t>(p, chunks, s);
  return dispatch<cutlass::half_t>(p, chunks, s);
}

}  // namespace deltabench::cuda::sm90
