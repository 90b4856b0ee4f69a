// The delta rules' UT transform backward on Hopper's warpgroup products (wgmma), version 1 (FLA's
// prepare_wy_repr_bwd): sm90_kernels.h says what it computes, kernels/delta_rule/NOTES.md ("Hopper version 1")
// why.
//
// One block (one warpgroup, 128 threads) a (chunk, head). With S = K K^T, A = strict_lower(diag(beta) S * Gamma),
// T = (I + A)^-1 (read from the forward's t where given, else recomputed as the forward computes it: the same
// bits either way), Kb = diag(beta e^G) K and Vb = diag(beta) V:
//   1. S on wgmma, A in fp32, T by blocks (common.cuh's unit_lower_inverse_blocked, as the forward), rounded into a K-major tile;
//   2. dT = (dW K^T) diag(beta e^G) + (dU V^T) diag(beta), rounded into a tile;
//   3. X = dT T^T, rounded; Y = T^T X, so dA = -Y below the diagonal; E = dA * Gamma; dS = diag(beta) E rounded
//      into a tile; dbeta gets rowsum(E * S), dG rowsum(dA * A) - colsum(dA * A) (through an fp32 tile);
//   4. dKb = T^T dW: dbeta and dG get its rows' sums against e^G K and beta e^G K; dk += beta e^G dKb + dS K + dS^T K;
//   5. dVb = T^T dU: dbeta gets rowsum(dVb * V); dv = beta dVb;
//   then, with dg_out, g's gradient: dG summed within the chunk from its end, scaled back.
// T^T, X^T and dS^T are read from the K-major 64 x 64 tiles of T, X and dS as M- or N-major ones (one atom wide,
// the same bytes); K, dW and dU likewise from their K-major tiles, whose atoms the MN-major layout takes tokens
// first so that the bytes are the same at K or V 128 too. dW comes fp16 (chunk_dqkw writes it so), by cp.async as
// dU does. S = K K^T is computed twice (steps 1 and 3) rather than kept in an fp32 tile. Shared memory at
// K = V = 128: 105 KB, two blocks an SM (it was 170 KB with K, dW and dU copied twice and S kept; at K = V = 64
// 75 KB against 115).

#include "kernels/common/sm90/checks.h"
#include "kernels/common/sm90/common.cuh"
#include "kernels/common/sm90/sm90_kernels.h"
#include "kernels/common/sm90/tiles.h"

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace deltabench::cuda::sm90 {
namespace {

using namespace cute;
using namespace sm90::detail;

constexpr int kC = kStateChunk;
constexpr int kThreads = kWarpgroupThreads;
constexpr int kLd = kC + 1;  // the fp32 64 x 64 tiles' rows, padded

template <int KD, int VD>
struct Tiles {
  using E = Inner;
  using TK = KMajorTile<E, kC, KD>;      // K, dW: (tokens, K)
  using TV = KMajorTile<E, kC, VD>;      // V, dU: (tokens, V)
  using NK = TransposedView<E, kC, KD>;  // K, dW read as B: (K, tokens), the same bytes
  using NV = TransposedView<E, kC, VD>;  // dU read as B: (V, tokens), the same bytes
  using T64 = decltype(tile_to_shape(GMMA::Layout_K_SW128_Atom<E>{}, Shape<Int<kC>, Int<kC>>{}));   // T, dT / X, dS
  using T64t = decltype(tile_to_shape(GMMA::Layout_MN_SW128_Atom<E>{}, Shape<Int<kC>, Int<kC>>{})); // their transposes
  using MmaKK = MmaKKOf<E>;
  using MmaKN = MmaKNOf<E>;
  using MmaNN = MmaNNOf<E>;
};

template <int KD, int VD>
struct alignas(1024) Smem {
  using L = Tiles<KD, VD>;
  alignas(1024) Inner k[cosize_v<typename L::TK>];   // K, read as NK too
  alignas(1024) Inner v[cosize_v<typename L::TV>];
  alignas(1024) Inner dw[cosize_v<typename L::TK>];  // dW, read as NK too
  alignas(1024) Inner du[cosize_v<typename L::TV>];  // dU, read as NV too
  alignas(1024) Inner t[cosize_v<typename L::T64>];
  alignas(1024) Inner x[cosize_v<typename L::T64>];
  alignas(1024) Inner ds[cosize_v<typename L::T64>];
  float f[kC * kLd];  // A, then F = dA * A
  float G[kC], beta[kC], dbeta[kC], rowf[kC], dg[kC];
};

// k and v in p.dtype (bf16 ones made Inner in shared memory: a runtime branch, so that the 8 instantiations
// serve both dtypes and the file, the build's longest, compiles in half the time); dU (dv_new) and dW are Inner;
// dk (added to), dv, dbeta and dg (added to) fp32, or dk and dv in the inputs' dtype (dk_out, dv_out), the stores'
// form chosen once a block (with_out_form).
template <int KD, int VD, bool kGated>
__global__ void __launch_bounds__(kThreads) ut_backward_kernel(const UtBwdParams p) {
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

  Tensor sK = make_tensor(make_smem_ptr(s.k), typename L::TK{});
  Tensor sKn = make_tensor(make_smem_ptr(s.k), typename L::NK{});
  Tensor sV = make_tensor(make_smem_ptr(s.v), typename L::TV{});
  Tensor sDw = make_tensor(make_smem_ptr(s.dw), typename L::TK{});
  Tensor sDwn = make_tensor(make_smem_ptr(s.dw), typename L::NK{});
  Tensor sDu = make_tensor(make_smem_ptr(s.du), typename L::TV{});
  Tensor sDun = make_tensor(make_smem_ptr(s.du), typename L::NV{});
  Tensor sT = make_tensor(make_smem_ptr(s.t), typename L::T64{});
  Tensor sTt = make_tensor(make_smem_ptr(s.t), typename L::T64t{});
  Tensor sX = make_tensor(make_smem_ptr(s.x), typename L::T64{});
  Tensor sXt = make_tensor(make_smem_ptr(s.x), typename L::T64t{});
  Tensor sDs = make_tensor(make_smem_ptr(s.ds), typename L::T64{});
  Tensor sDst = make_tensor(make_smem_ptr(s.ds), typename L::T64t{});

  // Copies: k and v (the inputs' dtype), dU and dW (fp16) into their tiles.
  const E* k = static_cast<const E*>(p.k);  // 16-bit elements of either dtype: only copied here
  const E* v = static_cast<const E*>(p.v);
  const E* du = static_cast<const E*>(p.du);
  const E* dw = static_cast<const E*>(p.dw);
  constexpr int kKPieces = KD / 8, kVPieces = VD / 8;
  for (int i = tid; i < kC * kKPieces; i += kThreads) {
    const int r = i / kKPieces, f = (i % kKPieces) * 8;
    const bool valid = r < rows;
    const int64_t at = valid ? ((t0 + r) * H + head) * KD + f : 0;
    copy16_zfill(&sK(r, f), k + at, valid);
    copy16_zfill(&sDw(r, f), dw + at, valid);
  }
  for (int i = tid; i < kC * kVPieces; i += kThreads) {
    const int r = i / kVPieces, c = (i % kVPieces) * 8;
    const bool valid = r < rows;
    const int64_t at = valid ? ((t0 + r) * H + head) * VD + c : 0;
    copy16_zfill(&sV(r, c), v + at, valid);
    copy16_zfill(&sDu(r, c), du + at, valid);
  }
  if (p.t != nullptr) {  // T from the forward: 64 rows of 8 pieces of 8 columns
    const E* t = static_cast<const E*>(p.t) + (chunk * H + head) * kC * kC;
    for (int i = tid; i < kC * (kC / 8); i += kThreads) {
      const int r = i / (kC / 8), c = (i % (kC / 8)) * 8;
      copy16_zfill(&sT(r, c), t + r * kC + c, true);
    }
  }
  commit();
  if (tid < kC) {
    s.beta[tid] = tid < rows ? p.beta[(t0 + tid) * H + head] : 0.0f;
    s.dbeta[tid] = 0.0f;
    s.dg[tid] = 0.0f;
  }
  if constexpr (kGated) {
    if (tid < 32) chunk_cumsum(p.g + t0 * H + head, H, rows, s.G);
  } else {
    if (tid < kC) s.G[tid] = 0.0f;
  }
  wait<0>();
  if (p.dtype == Dtype::kBF16) {  // k and v made fp16 by the thread that copied each piece
    using B = cutlass::bfloat16_t;
    for (int i = tid; i < kC * kKPieces; i += kThreads) to_inner_in_place<B>(&sK(i / kKPieces, (i % kKPieces) * 8));
    for (int i = tid; i < kC * kVPieces; i += kThreads) to_inner_in_place<B>(&sV(i / kVPieces, (i % kVPieces) * 8));
  }
  landed_for_wgmma<0>();

  typename L::MmaKK mma_kk;
  typename L::MmaKN mma_kn;
  typename L::MmaNN mma_nn;
  auto thr_kk = mma_kk.get_thread_slice(tid);
  auto thr_kn = mma_kn.get_thread_slice(tid);
  auto thr_nn = mma_nn.get_thread_slice(tid);
  // The thread's accumulator rows (row0 and row0 + 8) and first column (tiles.h, acc_row): every value's place is
  // one of those plus a constant of its index.
  const int row0 = acc_row(tid), col0 = acc_col(tid);
  static_assert(std::is_same_v<typename L::TK, KMajorTile<E, kC, KD>> && std::is_same_v<typename L::TV, KMajorTile<E, kC, VD>> &&
                    std::is_same_v<typename L::T64, KMajorTile<E, kC, kC>>,
                "the tiles as k_major_at addresses them");
  auto row_of = [&](int i) { return row0 + acc_row_of(i); };
  auto col_of = [&](int i) { return col0 + acc_col_of(i); };
  Tensor acc = partition_fragment_C(mma_kk, Shape<Int<kC>, Int<kC>>{});  // the 64 x 64 products in turn
  auto gamma = [&](int r, int c) { return kGated ? __expf(s.G[r] - s.G[c]) : 1.0f; };

  // 1. Without the forward's T: S = K K^T; A below the diagonal into s.f (for now); T by blocks, rounded into
  //    sT. (A branch around this product, alone in its batch, leaves ptxas without warning C7519 and the
  //    registers as they were.)
  if (p.t == nullptr) {
    clear(acc);
    product(mma_kk, thr_kk.make_fragment_A(thr_kk.partition_A(sK)), thr_kk.make_fragment_B(thr_kk.partition_B(sK)), acc);
    CUTE_UNROLL
    for (int i = 0; i < size(acc); ++i) {
      const int r = row_of(i), c = col_of(i);
      const float x = s.beta[r] * acc(i) * gamma(r, c);  // the forward's product, in its order (one above the
      s.f[r * kLd + c] = c < r ? x : 0.0f;               // diagonal may overflow: never kept)
    }
    __syncthreads();
    unit_lower_inverse_blocked(s.f, kLd, tid);  // the forward's way, so the same bits as its T
    for (int i = tid / kC; i < kC; i += kThreads / kC) store_shared_u16(&sT(i, tid % kC), E(s.f[i * kLd + tid % kC]).raw());
  }
  __syncthreads();  // the warpgroup together again before its next product
  // 2. dT = (dW K^T) diag(beta e^G) + (dU V^T) diag(beta), into sX.
  clear(acc);
  product(mma_kk, thr_kk.make_fragment_A(thr_kk.partition_A(sDw)), thr_kk.make_fragment_B(thr_kk.partition_B(sK)), acc);
  CUTE_UNROLL
  for (int i = 0; i < size(acc); ++i) {
    const int c = col_of(i);
    acc(i) *= s.beta[c] * (kGated ? __expf(s.G[c]) : 1.0f);
  }
  {
    Tensor acc2 = partition_fragment_C(mma_kk, Shape<Int<kC>, Int<kC>>{});
    clear(acc2);
    product(mma_kk, thr_kk.make_fragment_A(thr_kk.partition_A(sDu)), thr_kk.make_fragment_B(thr_kk.partition_B(sV)), acc2);
    CUTE_UNROLL
    for (int i = 0; i < size(acc); ++i) acc(i) += acc2(i) * s.beta[col_of(i)];
  }
  CUTE_UNROLL
  for (int i = 0; i < size(acc); i += 2) store_shared(s.x + k_major_at<kC>(row_of(i), col_of(i)), pack_as<E>(acc(i), acc(i + 1)));
  cutlass::arch::fence_view_async_shared();
  __syncthreads();
  // 3. X = dT T^T (B = T as it sits), back into sX once every thread has it; Y = T^T X (A = T read M-major,
  //    B = X read N-major).
  clear(acc);
  product(mma_kk, thr_kk.make_fragment_A(thr_kk.partition_A(sX)), thr_kk.make_fragment_B(thr_kk.partition_B(sT)), acc);
  __syncthreads();  // every thread's product has read sX
  CUTE_UNROLL
  for (int i = 0; i < size(acc); i += 2) store_shared(s.x + k_major_at<kC>(row_of(i), col_of(i)), pack_as<E>(acc(i), acc(i + 1)));
  cutlass::arch::fence_view_async_shared();
  __syncthreads();
  clear(acc);
  product(mma_nn, thr_nn.make_fragment_A(thr_nn.partition_A(sTt)), thr_nn.make_fragment_B(thr_nn.partition_B(sXt)), acc);
  // S = K K^T again, into registers laid out as Y's: the same product of the same tiles, so the same bits as step
  // 1's, where an fp32 tile kept from step 1 would cost 16 KB of shared memory.
  Tensor accs = partition_fragment_C(mma_kk, Shape<Int<kC>, Int<kC>>{});
  clear(accs);
  product(mma_kk, thr_kk.make_fragment_A(thr_kk.partition_A(sK)), thr_kk.make_fragment_B(thr_kk.partition_B(sK)), accs);
  // dA = -Y below the diagonal; E = dA Gamma; dS = diag(beta) E rounded; F = dA A and E S in fp32.
  CUTE_UNROLL
  for (int i = 0; i < size(acc); i += 2) {
    float e[2];
    for (int h = 0; h < 2; ++h) {
      const int r = row_of(i + h), c = col_of(i + h);
      const float dA = c < r ? -acc(i + h) : 0.0f;
      const float gm = gamma(r, c), g = c < r ? gm : 0.0f;  // one above the diagonal may overflow: never kept
      const float S = accs(i + h);
      e[h] = dA * g;
      s.f[r * kLd + c] = dA * s.beta[r] * S * g;  // dA * A
      acc(i + h) = e[h] * S;                      // E * S, summed by rows below
    }
    const int r = row_of(i);
    store_shared(s.ds + k_major_at<kC>(r, col_of(i)), pack_as<E>(s.beta[r] * e[0], s.beta[r] * e[1]));
  }
  acc_row_sums(acc, [](int, float x0, float x1, float& sum) { sum += x0; sum += x1; }, s.rowf, tid);
  cutlass::arch::fence_view_async_shared();
  __syncthreads();
  if (tid < kC) {
    s.dbeta[tid] += s.rowf[tid];
    if constexpr (kGated) {
      float row = 0.0f, col = 0.0f;
      for (int m = 0; m < kC; ++m) {
        row += s.f[tid * kLd + m];
        col += s.f[m * kLd + tid];
      }
      s.dg[tid] += row - col;
    }
  }
  // 4. dKb = T^T dW; dk += beta e^G dKb + dS K + dS^T K.
  Tensor acck = partition_fragment_C(mma_kk, Shape<Int<kC>, Int<KD>>{});
  // The thread's two rows of dk and of dv (row0 and row0 + 8, the latter at + 8 H KD or + 8 H VD), each pair at a
  // constant past one of them.
  const bool in0 = row0 < rows, in8 = row0 + 8 < rows;
  const int64_t row_k = ((t0 + row0) * H + head) * KD + col0, row_v = ((t0 + row0) * H + head) * VD + col0;
  // dk's sums so far (fp32, chunk_dqkw's), into registers before step 4's products, so that their loads from
  // device memory run under the products rather than after them (zeros past the sequence, never stored).
  float2 dk_was[size(decltype(acck){}) / 2];
  CUTE_UNROLL
  for (int i = 0; i < size(acck); i += 2) {
    dk_was[i / 2] = (acc_upper(i) ? in8 : in0)
                        ? *reinterpret_cast<const float2*>(p.dk + row_k + acc_upper(i) * 8 * H * KD + acc_col_of(i))
                        : make_float2(0.0f, 0.0f);
  }
  // sum += x_i t(r, c) + x_i+1 t(r, c + 1), r and c value i's, t a K-major tile of 64 rows (K or V).
  auto times = [&](const Inner* tile) {
    return [=, &row_of, &col_of](int i, float x0, float x1, float& sum) {
      const float2 y = load_shared_pair(tile + k_major_at<kC>(row_of(i), col_of(i)));
      sum += x0 * y.x;
      sum += x1 * y.y;
    };
  };
  clear(acck);
  product(mma_nn, thr_nn.make_fragment_A(thr_nn.partition_A(sTt)), thr_nn.make_fragment_B(thr_nn.partition_B(sDwn)), acck);
  __syncthreads();  // rowf is free again
  acc_row_sums(acck, times(s.k), s.rowf, tid);
  __syncthreads();
  if (tid < kC) {
    const float eG = kGated ? __expf(s.G[tid]) : 1.0f;
    s.dbeta[tid] += eG * s.rowf[tid];
    if constexpr (kGated) s.dg[tid] += s.beta[tid] * eG * s.rowf[tid];
  }
  scale_acc_rows(acck, s.beta[row0] * (kGated ? __expf(s.G[row0]) : 1.0f),
                 s.beta[row0 + 8] * (kGated ? __expf(s.G[row0 + 8]) : 1.0f));
  product(mma_kn, thr_kn.make_fragment_A(thr_kn.partition_A(sDs)), thr_kn.make_fragment_B(thr_kn.partition_B(sKn)), acck);
  product(mma_nn, thr_nn.make_fragment_A(thr_nn.partition_A(sDst)), thr_nn.make_fragment_B(thr_nn.partition_B(sKn)), acck);
  // dk += acck, from the sums loaded before the products.
  // Where dk_out is set, the sums go there in the inputs' dtype, scaled back (sm90::chunk_train), and dv to dv_out
  // (the two go together), each staged in a tile no product reads any more (dW's, then dU's) and stored in whole
  // rows.
  const bool bf16 = p.dtype == Dtype::kBF16;
  const float back = p.grad_scale != nullptr ? *p.grad_scale : 1.0f;
  auto* const stage_k = reinterpret_cast<uint16_t*>(s.dw);  // free since step 4's first product (a barrier after it)
  auto* const stage_v = reinterpret_cast<uint16_t*>(s.du);  // free since step 5's product (likewise)
  with_out_form(p.dk_out, bf16, [&](auto form) {
    constexpr OutForm kForm = decltype(form)::value;
    CUTE_UNROLL
    for (int i = 0; i < size(acck); i += 2) {
      acck(i) += dk_was[i / 2].x;
      acck(i + 1) += dk_was[i / 2].y;
      if constexpr (kForm == OutForm::kF32) {
        if (acc_upper(i) ? in8 : in0) {
          store_pair<kForm>(p.dk, nullptr, row_k + acc_upper(i) * 8 * H * KD + acc_col_of(i), acck(i), acck(i + 1));
        }
      } else {
        store_shared(stage_k + staged_at<KD>(row_of(i), col_of(i)), pack_as<OutType<kForm>>(acck(i) * back, acck(i + 1) * back));
      }
    }
    if constexpr (kForm != OutForm::kF32) {
      __syncthreads();
      store_staged_rows<KD, kThreads>(stage_k, rows, static_cast<uint16_t*>(p.dk_out) + (t0 * H + head) * KD, H * KD, tid);
    }
  });
  // 5. dVb = T^T dU; dbeta gets rowsum(dVb V); dv = beta dVb.
  Tensor accv = partition_fragment_C(mma_kk, Shape<Int<kC>, Int<VD>>{});
  clear(accv);
  product(mma_nn, thr_nn.make_fragment_A(thr_nn.partition_A(sTt)), thr_nn.make_fragment_B(thr_nn.partition_B(sDun)), accv);
  __syncthreads();  // rowf is free again
  acc_row_sums(accv, times(s.v), s.rowf, tid);
  const float beta0 = s.beta[row0], beta8 = s.beta[row0 + 8];
  with_out_form(p.dv_out, bf16, [&](auto form) {
    constexpr OutForm kForm = decltype(form)::value;
    CUTE_UNROLL
    for (int i = 0; i < size(accv); i += 2) {
      const float beta = acc_upper(i) ? beta8 : beta0;
      const float a = beta * accv(i), b = beta * accv(i + 1);
      if constexpr (kForm == OutForm::kF32) {
        if (acc_upper(i) ? in8 : in0) store_pair<kForm>(p.dv, nullptr, row_v + acc_upper(i) * 8 * H * VD + acc_col_of(i), a, b);
      } else {
        store_shared(stage_v + staged_at<VD>(row_of(i), col_of(i)), pack_as<OutType<kForm>>(a * back, b * back));
      }
    }
    if constexpr (kForm != OutForm::kF32) {
      __syncthreads();
      store_staged_rows<VD, kThreads>(stage_v, rows, static_cast<uint16_t*>(p.dv_out) + (t0 * H + head) * VD, H * VD, tid);
    }
  });
  __syncthreads();
  if (tid < rows) {
    p.dbeta[(t0 + tid) * H + head] = s.dbeta[tid] + s.rowf[tid];
    if constexpr (kGated) {
      if (p.dg_out == nullptr) p.dg[(t0 + tid) * H + head] += s.dg[tid];
    }
  }
  if constexpr (kGated) {
    // g's gradient: dG's rows (the caller's plus this kernel's, rounded to fp32 as the sum in dg would be) summed
    // from the chunk's end, in fp64, by the first warp (two rows a lane, a scan over the lanes from the last),
    // rounded and scaled back as the op's other gradients are.
    if (p.dg_out != nullptr && tid < 32) {
      const int r0 = 2 * tid, r1 = r0 + 1;
      const int64_t at0 = (t0 + r0) * H + head, at1 = (t0 + r1) * H + head;
      const double x0 = r0 < rows ? double(p.dg[at0] + s.dg[r0]) : 0.0, x1 = r1 < rows ? double(p.dg[at1] + s.dg[r1]) : 0.0;
      double from = x0 + x1;  // the pairs from this lane's to the last lane's
      for (int d = 1; d < 32; d *= 2) {
        const double o = __shfl_down_sync(0xffffffffu, from, d);
        if (tid + d < 32) from += o;
      }
      const double next = __shfl_down_sync(0xffffffffu, from, 1);
      const double after = tid < 31 ? next : 0.0;  // the pairs after this lane's
      const float scale = *p.grad_scale;
      const double s1 = after + x1, s0 = s1 + x0;
      if (r0 < rows) p.dg_out[at0] = float(s0) * scale;
      if (r1 < rows) p.dg_out[at1] = float(s1) * scale;
    }
  }
#endif
}

template <int KD, int VD, bool kGated>
void launch(const UtBwdParams& p, int64_t chunks, cudaStream_t stream) {
  launch_warpgroup<Smem<KD, VD>>("sm90::chunk_ut_backward", ut_backward_kernel<KD, VD, kGated>,
                                 dim3(static_cast<unsigned>(chunks), static_cast<unsigned>(p.H)), stream, p);
}

void dispatch(const UtBwdParams& p, int64_t chunks, cudaStream_t stream) {
  const bool g = p.g != nullptr;
  if (p.K == 64) {
    if (p.V == 64) return g ? launch<64, 64, true>(p, chunks, stream) : launch<64, 64, false>(p, chunks, stream);
    return g ? launch<64, 128, true>(p, chunks, stream) : launch<64, 128, false>(p, chunks, stream);
  }
  if (p.V == 64) return g ? launch<128, 64, true>(p, chunks, stream) : launch<128, 64, false>(p, chunks, stream);
  return g ? launch<128, 128, true>(p, chunks, stream) : launch<128, 128, false>(p, chunks, stream);
}

}  // namespace

void chunk_ut_backward(const UtBwdParams& p, void* stream) {
  detail::CallShape shape{p.dtype, p.N, p.T, p.H, p.K, p.V, p.seq_starts, p.chunk_starts, p.chunks, 128, true};
  const int64_t chunks = detail::check_call("sm90::chunk_ut_backward", shape,
                                            {{"k", p.k}, {"v", p.v}, {"du", p.du}, {"dw", p.dw}, {"dk", p.dk}},
                                            {{"t", p.t}, {"dv", p.dv}, {"dk_out", p.dk_out}, {"dv_out", p.dv_out}});
  if ((p.dv == nullptr) == (p.dv_out == nullptr)) {
    throw std::invalid_argument("sm90::chunk_ut_backward: exactly one of dv (fp32) and dv_out (the inputs' dtype) is taken (got " +
                                std::string(p.dv == nullptr ? "neither" : "both") + ")");
  }
  if ((p.dk_out == nullptr) != (p.dv_out == nullptr)) {
    throw std::invalid_argument(std::string("sm90::chunk_ut_backward: dk_out and dv_out go together (got only ") +
                                (p.dk_out != nullptr ? "dk_out" : "dv_out") + ")");
  }
  if ((p.dk_out != nullptr || p.dv_out != nullptr) && p.grad_scale == nullptr) {
    throw std::invalid_argument("sm90::chunk_ut_backward: dk_out and dv_out need grad_scale (null)");
  }
  if (p.beta == nullptr || p.dbeta == nullptr) {
    throw std::invalid_argument("sm90::chunk_ut_backward: beta and dbeta are required (got null)");
  }
  if ((p.g == nullptr) != (p.dg == nullptr)) {
    throw std::invalid_argument("sm90::chunk_ut_backward: g and dg go together (one of them is null)");
  }
  if (p.dg_out != nullptr && (p.g == nullptr || p.grad_scale == nullptr)) {
    throw std::invalid_argument(std::string("sm90::chunk_ut_backward: dg_out needs g and grad_scale (got ") +
                                (p.g == nullptr ? "no g" : "no grad_scale") + ")");
  }
  if (chunks <= 0) return;
  dispatch(p, chunks, static_cast<cudaStream_t>(stream));
}

}  // namespace deltabench::cuda::sm90
