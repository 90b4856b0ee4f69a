// The delta rules' UT transform on Hopper's warpgroup products (wgmma), version 1: see sm90_kernels.h for
// what it computes, kernels/delta_rule/NOTES.md ("Hopper version 1") for the design.
//
// One block (one warpgroup, 128 threads) a (chunk, head). The chunk's K comes by cp.async into the K-major tile
// of K K^T (both operands), whose 64-column blocks are also the N-major tiles of W = T' K (the same bytes:
// sm90/tiles.h), and V into 64-column N-major tiles for U = T'' V (zero-filled past the sequence's end). V's tiles
// end the shared memory, and a call asks for as many as its V has: at K = V = 128 that is 66 KB, three blocks an
// SM (97 KB and two before K's second copy went and V's tiles were sized by the call). Then:
//   1. K K^T on wgmma; A = beta_i (K K^T)_ij exp(G_i - G_j) below the diagonal, fp32 in shared memory;
//   2. T = (I + A)^-1 in place by blocks (common.cuh's unit_lower_inverse_blocked: 16 x 16 diagonal blocks by
//      substitution, joined by products on all 128 threads; version 3i), or by version 3f's forward
//      substitution, a column a thread on 64 threads (UtFwdParams::column_inverse, for the comparison row);
//   3. column j of T scaled by beta_j e^(G_j) (T' = T diag(beta e^G)) and by beta_j (T'' = T diag(beta)),
//      both rounded into K-major tiles, and T itself out where asked;
//   4. W and U a 64-column tile at a time on wgmma, each staged in shared memory and out in 16-byte pieces of
//      its rows.

#include "kernels/common/sm90/checks.h"
#include "kernels/common/sm90/common.cuh"
#include "kernels/common/sm90/sm90_kernels.h"
#include "kernels/common/sm90/tiles.h"

#include <cuda_runtime.h>

#include <cstddef>
#include <stdexcept>
#include <string>

namespace deltabench::cuda::sm90 {
namespace {

using namespace cute;
using namespace sm90::detail;

constexpr int kC = kStateChunk;
constexpr int kThreads = kWarpgroupThreads;
constexpr int kMaxV = 256;
constexpr int kLdA = kC + 1;  // A's fp32 rows, padded

template <class E, int KD>
struct Tiles {
  using LayoutK = KMajorTile<E, kC, KD>;        // K K^T
  using LayoutT = KMajorTile<E, kC, kC>;        // T', T'' as A
  using LayoutN = TransposedView<E, kC, 64>;    // a B tile (64 columns, C): V's, and each 64 columns of LayoutK's
  using MmaKK = MmaKKOf<E>;
  using MmaKN = MmaKNOf<E>;
  static constexpr int kTile = cosize_v<LayoutN>;  // elements of one 64-column B tile
};

template <class E, int KD>
struct alignas(1024) Smem {
  using L = Tiles<E, KD>;
  alignas(1024) E k[cosize_v<typename L::LayoutK>];  // 64-column block j is K's B tile j (s.k + j kTile)
  alignas(1024) E tw[cosize_v<typename L::LayoutT>];
  alignas(1024) E tu[cosize_v<typename L::LayoutT>];
  float a[kC * kLdA];
  float G[kC], beta[kC];
  alignas(1024) E vn[kMaxV / 64][L::kTile];  // last: a call asks only for the tiles of its V
};

// I: the inputs' dtype (k, v), made Inner in shared memory; W and U are written Inner.
template <class I, int KD, bool kGated>
__global__ void __launch_bounds__(kThreads) ut_forward_kernel(const UtFwdParams p) {
#if defined(__CUDA_ARCH__) && defined(CUTE_ARCH_MMA_SM90A_ENABLED)
  using E = Inner;
  using L = Tiles<E, KD>;
  extern __shared__ char smem_raw[];
  auto& s = aligned_smem<Smem<E, KD>>(smem_raw);
  const int tid = threadIdx.x;
  const int64_t H = p.H, V = p.V;
  const int64_t chunk = blockIdx.x, head = blockIdx.y;
  const ChunkSpan span = locate_chunk(chunk, p.chunk_starts, p.seq_starts, p.N, p.T);
  const int64_t t0 = span.t0;
  const int rows = span.rows;
  const int vtiles = static_cast<int>(V / 64);

  Tensor sK = make_tensor(make_smem_ptr(s.k), typename L::LayoutK{});    // (C, KD)
  Tensor sTw = make_tensor(make_smem_ptr(s.tw), typename L::LayoutT{});  // (C, C)
  Tensor sTu = make_tensor(make_smem_ptr(s.tu), typename L::LayoutT{});
  auto tile = [](E* base) { return make_tensor(make_smem_ptr(base), typename L::LayoutN{}); };  // (64 columns, C)

  const I* k = static_cast<const I*>(p.k);
  const I* v = static_cast<const I*>(p.v);
  constexpr int kPieces = KD / 8;
  for (int i = tid; i < kC * kPieces; i += kThreads) {
    const int r = i / kPieces, f = (i % kPieces) * 8;
    const bool valid = r < rows;
    const I* src = k + (valid ? ((t0 + r) * H + head) * KD + f : 0);
    copy16_zfill(&sK(r, f), src, valid);
  }
  for (int i = tid; i < kC * (vtiles * 8); i += kThreads) {
    const int r = i / (vtiles * 8), c = (i % (vtiles * 8)) * 8;
    const bool valid = r < rows;
    copy16_zfill(&tile(s.vn[c / 64])(c % 64, r), v + (valid ? ((t0 + r) * H + head) * V + c : 0), valid);
  }
  commit();
  if (tid < kC) s.beta[tid] = tid < rows ? p.beta[(t0 + tid) * H + head] : 0.0f;
  if constexpr (kGated) {
    if (tid < 32) chunk_cumsum(p.g + t0 * H + head, H, rows, s.G);
  }
  wait<0>();
  if constexpr (!std::is_same_v<I, E>) {  // K and V made Inner by the thread that copied each piece
    for (int i = tid; i < kC * kPieces; i += kThreads) to_inner_in_place<I>(&sK(i / kPieces, (i % kPieces) * 8));
    for (int i = tid; i < kC * (vtiles * 8); i += kThreads) {
      const int r = i / (vtiles * 8), c = (i % (vtiles * 8)) * 8;
      to_inner_in_place<I>(&tile(s.vn[c / 64])(c % 64, r));
    }
  }
  landed_for_wgmma<0>();

  // 1. K K^T, then A below the diagonal (zero elsewhere: the substitution reads only below it).
  typename L::MmaKK mma_a;
  typename L::MmaKN mma_n;
  {
    auto thr = mma_a.get_thread_slice(tid);
    Tensor acc = partition_fragment_C(mma_a, Shape<Int<kC>, Int<kC>>{});
    clear(acc);
    product(mma_a, thr.make_fragment_A(thr.partition_A(sK)), thr.make_fragment_B(thr.partition_B(sK)), acc);
    CUTE_UNROLL
    for (int i = 0; i < size(acc); ++i) {
      const int r = acc_row(tid) + acc_row_of(i), c = acc_col(tid) + acc_col_of(i);  // tiles.h
      float x = s.beta[r] * acc(i);
      if constexpr (kGated) x *= __expf(s.G[r] - s.G[c]);  // above the diagonal it may overflow: never kept
      s.a[r * kLdA + c] = c < r ? x : 0.0f;
    }
  }
  __syncthreads();

  // 2. T = (I + A)^-1 in s.a: by blocks (common.cuh), or, for stage_bench's comparison row, by version 3f's
  //    substitution, a column a thread, x_i = [i == j] - sum_{m < i} A_im x_m, written back over A.
  if (p.column_inverse) {
    float x[kC];
    if (tid < kC) unit_lower_inverse_column(s.a, kLdA, tid, x);
    __syncthreads();  // every column's thread has read A
    if (tid < kC) {
      CUTE_UNROLL
      for (int i = 0; i < kC; ++i) s.a[i * kLdA + tid] = x[i];
    }
    __syncthreads();
  } else {
    unit_lower_inverse_blocked(s.a, kLdA, tid);
  }
  // 3. Column j of T (the same column for each of a thread's elements: 128 is a multiple of 64) scaled by
  //    beta_j e^(G_j) (T' = T diag(beta e^G)) and by beta_j (T'' = T diag(beta)), both rounded into K-major
  //    tiles; T itself, rounded as the UT backward rounds it, for the backward to read, a row at a time.
  {
    const int j = tid % kC;
    const float bw = kGated ? s.beta[j] * __expf(s.G[j]) : s.beta[j], bu = s.beta[j];
    for (int i = tid / kC; i < kC; i += kThreads / kC) {
      const float x = s.a[i * kLdA + j];
      store_shared_u16(&sTw(i, j), E(x * bw).raw());
      store_shared_u16(&sTu(i, j), E(x * bu).raw());
    }
    // T [64 x 64], row-major and contiguous a (chunk, head): 8 elements of a row rounded a 16-byte store.
    if (p.t != nullptr) {
      auto* t = static_cast<E*>(p.t) + (chunk * H + head) * kC * kC;
      for (int i = tid; i < kC * kC / 8; i += kThreads) {
        const int r = i / (kC / 8), c = (i % (kC / 8)) * 8;
        const float* x = &s.a[r * kLdA + c];
        store_global_16(t + r * kC + c, make_uint4(pack_as<E>(x[0], x[1]), pack_as<E>(x[2], x[3]), pack_as<E>(x[4], x[5]),
                                                   pack_as<E>(x[6], x[7])));
      }
    }
  }
  cutlass::arch::fence_view_async_shared();
  __syncthreads();

  // 4. W = T' K and U = T'' V, a 64-column tile at a time: each tile rounded into a [64 x 64] staging tile over A's
  //    storage (free since step 3's barrier; two of them, used in turn, so that one barrier a tile separates its
  //    writes from its reads and the reads from the writes two tiles later), then out in 16-byte pieces of rows.
  static_assert(2 * kC * 64 * sizeof(E) <= sizeof(s.a), "two 64 x 64 staging tiles over A's storage");
  auto thr = mma_n.get_thread_slice(tid);
  Tensor acc = partition_fragment_C(mma_n, Shape<Int<kC>, _64>{});
  int staged = 0;  // the tiles staged so far
  auto out = [&](E* dst, int64_t width, int col0) {
    auto* stage = reinterpret_cast<uint16_t*>(s.a) + (staged++ & 1) * kC * 64;
    CUTE_UNROLL
    for (int i = 0; i < size(acc); i += 2) {
      store_shared(stage + staged_at<64>(acc_row(tid) + acc_row_of(i), acc_col(tid) + acc_col_of(i)), pack_as<E>(acc(i), acc(i + 1)));
    }
    __syncthreads();
    store_staged_rows<64, kThreads>(stage, rows, reinterpret_cast<uint16_t*>(dst) + (t0 * H + head) * width + col0,
                                    H * width, tid);
  };
  Tensor tTw = thr.make_fragment_A(thr.partition_A(sTw));
  Tensor tTu = thr.make_fragment_A(thr.partition_A(sTu));
  for (int jt = 0; jt < KD / 64; ++jt) {
    clear(acc);
    product(mma_n, tTw, thr.make_fragment_B(thr.partition_B(tile(s.k + jt * L::kTile))), acc);
    out(static_cast<E*>(p.w), KD, jt * 64);
  }
  for (int jt = 0; jt < vtiles; ++jt) {
    clear(acc);
    product(mma_n, tTu, thr.make_fragment_B(thr.partition_B(tile(s.vn[jt]))), acc);
    out(static_cast<E*>(p.u), V, jt * 64);
  }
#endif
}

template <class I, int KD, bool kGated>
void launch(const UtFwdParams& p, int64_t chunks, cudaStream_t stream) {
  using S = Smem<Inner, KD>;
  const size_t used = offsetof(S, vn) + static_cast<size_t>(p.V / 64) * sizeof(S::vn[0]);  // V's tiles alone
  launch_warpgroup<S>("sm90::chunk_ut_forward", ut_forward_kernel<I, KD, kGated>,
                      dim3(static_cast<unsigned>(chunks), static_cast<unsigned>(p.H)), stream, p, used);
}

template <class E>
void dispatch(const UtFwdParams& p, int64_t chunks, cudaStream_t stream) {
  if (p.K == 64) return p.g ? launch<E, 64, true>(p, chunks, stream) : launch<E, 64, false>(p, chunks, stream);
  if (p.K == 256) return p.g ? launch<E, 256, true>(p, chunks, stream) : launch<E, 256, false>(p, chunks, stream);
  return p.g ? launch<E, 128, true>(p, chunks, stream) : launch<E, 128, false>(p, chunks, stream);
}

}  // namespace

void chunk_ut_forward(const UtFwdParams& p, void* stream) {
  detail::CallShape shape{p.dtype, p.N, p.T, p.H, p.K, p.V, p.seq_starts, p.chunk_starts, p.chunks, kMaxV, true, 256};
  const int64_t chunks = detail::check_call("sm90::chunk_ut_forward", shape,
                                            {{"k", p.k}, {"v", p.v}, {"w", p.w}, {"u", p.u}}, {{"t", p.t}});
  if (p.beta == nullptr) throw std::invalid_argument("sm90::chunk_ut_forward: beta is required (got null)");
  if (chunks <= 0) return;
  const auto s = static_cast<cudaStream_t>(stream);
  if (p.dtype == Dtype::kBF16) return dispatch<cutlass::bfloat16_t>(p, chunks, s);
  return dispatch<cutlass::half_t>(p, chunks, s);
}

}  // namespace deltabench::cuda::sm90
