// The fused chunked forward on the SIMT cores in fp32, version 1 of kernels/common/cuda_kernels.h's
// chunk_forward, kept for fp32 inputs (the tensor-core version 2 in chunk_fwd.cuh takes bf16 and
// fp16). One thread block per (sequence, head, 64-wide slice of V) walks the sequence's chunks of 64 tokens in order
// and keeps everything of a chunk on chip: the state slice S [K x 64] fp32, the chunk's q, k, v, the
// UT-transform matrix A, the attention block P, w and u / v_new, all in shared memory. Nothing but
// q, k, v, beta, g in and o (and the final state) out touches global memory; FLA's five kernels
// write and re-read A, w, u, v_new and the per-chunk states.
//
// Per chunk (G: the chunk's cumulative log decay, 0 without g):
//   A = strict_lower(diag(beta) K K^T * exp(G_i - G_j))      P = lower(Q K^T * exp(G_i - G_j))
//   (I + A) W = diag(beta exp(G)) K,  (I + A) U = diag(beta) V   (forward substitution, delta rule)
//   v_new = U - W S                      (linear attention: v_new = V)
//   O = diag(exp(G)) Q S + P v_new
//   S = exp(G_last) S + K^T diag(exp(G_last - G)) v_new
// See kernels/delta_rule/NOTES.md for its speed.

#include "kernels/common/cuda_common.cuh"

namespace deltabench::cuda {
namespace {

constexpr int kChunk = 64;
constexpr int kTileV = 64;
constexpr int kThreads = 256;

template <int KD>
struct Smem {
  static constexpr int kRowK = KD + 1;       // padded rows: threads reading one column of many rows hit
  static constexpr int kRowV = kTileV + 1;   // different banks
  static constexpr int kRowC = kChunk + 1;
  static constexpr int S = 0;                             // [KD][kTileV]
  static constexpr int Kc = S + KD * kTileV;              // [C][kRowK]
  static constexpr int Qc = Kc + kChunk * kRowK;          // [C][kRowK], scaled
  static constexpr int W = Qc + kChunk * kRowK;           // [C][kRowK]
  static constexpr int U = W + kChunk * kRowK;            // [C][kRowV]: v, then u, then v_new
  static constexpr int A = U + kChunk * kRowV;            // [C][kRowC]
  static constexpr int P = A + kChunk * kRowC;            // [C][kRowC]
  static constexpr int G = P + kChunk * kRowC;            // [C] cumulative log decay
  static constexpr int Beta = G + kChunk;                 // [C]
  static constexpr int Tail = Beta + kChunk;              // [C] exp(G_last - G_j)
  static constexpr int kFloats = Tail + kChunk;
  static constexpr size_t kBytes = sizeof(float) * kFloats;
};

template <int KD, bool kDelta, bool kGated, typename T>
__global__ void __launch_bounds__(kThreads) chunk_forward_kernel(ChunkParams p) {
  using L = Smem<KD>;
  extern __shared__ float smem[];
  float* sS = smem + L::S;
  float* sK = smem + L::Kc;
  float* sQ = smem + L::Qc;
  float* sW = smem + L::W;
  float* sU = smem + L::U;
  float* sA = smem + L::A;
  float* sP = smem + L::P;
  float* sG = smem + L::G;
  float* sBeta = smem + L::Beta;
  float* sTail = smem + L::Tail;

  const int tid = threadIdx.x;
  const int v0 = blockIdx.x * kTileV;
  const int64_t h = blockIdx.y, n = blockIdx.z, H = p.H, V = p.V;
  const int64_t start = p.seq_starts[n], length = p.seq_starts[n + 1] - start;
  const T* q = static_cast<const T*>(p.q);
  const T* k = static_cast<const T*>(p.k);
  const T* v = static_cast<const T*>(p.v);
  const float* beta = p.beta;
  const float* g = p.g;
  T* o = static_cast<T*>(p.o);
  const int64_t state_offset = (n * H + h) * KD * V;

  for (int idx = tid; idx < KD * kTileV; idx += kThreads) {
    const int r = idx / kTileV, c = idx % kTileV;
    sS[idx] = p.h0 ? p.h0[state_offset + int64_t{r} * V + v0 + c] : 0.0f;
  }

  for (int64_t t0 = 0; t0 < length; t0 += kChunk) {
    const int rows = static_cast<int>(length - t0 < kChunk ? length - t0 : kChunk);
    const int64_t tok0 = start + t0;
    __syncthreads();  // the previous chunk is done with every buffer
    for (int idx = tid; idx < kChunk * KD; idx += kThreads) {
      const int i = idx / KD, c = idx % KD;
      float kv = 0.0f, qv = 0.0f;
      if (i < rows) {
        const int64_t at = ((tok0 + i) * H + h) * KD + c;
        kv = to_float(k[at]);
        qv = to_float(q[at]) * p.scale;
      }
      sK[i * L::kRowK + c] = kv;
      sQ[i * L::kRowK + c] = qv;
    }
    for (int idx = tid; idx < kChunk * kTileV; idx += kThreads) {
      const int i = idx / kTileV, c = idx % kTileV;
      sU[i * L::kRowV + c] = i < rows ? to_float(v[((tok0 + i) * H + h) * V + v0 + c]) : 0.0f;
    }
    if (tid < kChunk) {
      const bool in = tid < rows;
      sBeta[tid] = kDelta && in ? beta[(tok0 + tid) * H + h] : 0.0f;
      sG[tid] = kGated && in ? g[(tok0 + tid) * H + h] : 0.0f;
    }
    __syncthreads();
    if constexpr (kGated) {
      if (tid < 32) {  // inclusive scan of 64 values by one warp, two per lane
        float a = sG[2 * tid], b = sG[2 * tid + 1];
        b += a;
        float x = b;
        for (int off = 1; off < 32; off <<= 1) {
          const float y = __shfl_up_sync(0xffffffffu, x, off);
          if (tid >= off) x += y;
        }
        const float before = x - b;
        sG[2 * tid] = a + before;
        sG[2 * tid + 1] = x;
      }
      __syncthreads();
    }
    const float g_last = kGated ? sG[rows - 1] : 0.0f;
    if (tid < kChunk) sTail[tid] = tid < rows ? (kGated ? expf(g_last - sG[tid]) : 1.0f) : 0.0f;

    // A and P: one entry per (i, j), dot products over K.
    for (int idx = tid; idx < kChunk * kChunk; idx += kThreads) {
      const int i = idx / kChunk, j = idx % kChunk;
      float a = 0.0f, pp = 0.0f;
      if (j <= i && i < rows) {
        const float* ki = sK + i * L::kRowK;
        const float* qi = sQ + i * L::kRowK;
        const float* kj = sK + j * L::kRowK;
        float dkk = 0.0f, dqk = 0.0f;
#pragma unroll 8
        for (int c = 0; c < KD; ++c) {
          dkk = fmaf(ki[c], kj[c], dkk);
          dqk = fmaf(qi[c], kj[c], dqk);
        }
        const float decay = kGated ? expf(sG[i] - sG[j]) : 1.0f;
        pp = dqk * decay;
        if (kDelta && j < i) a = sBeta[i] * dkk * decay;
      }
      sA[i * L::kRowC + j] = a;
      sP[i * L::kRowC + j] = pp;
    }
    __syncthreads();

    if constexpr (kDelta) {
      // Right-hand sides in place, then forward substitution: one thread per column of W or U,
      // rows in order, no synchronisation inside.
      for (int idx = tid; idx < kChunk * KD; idx += kThreads) {
        const int i = idx / KD, c = idx % KD;
        const float f = sBeta[i] * (kGated ? expf(sG[i]) : 1.0f);
        sW[i * L::kRowK + c] = f * sK[i * L::kRowK + c];
      }
      for (int idx = tid; idx < kChunk * kTileV; idx += kThreads) {
        const int i = idx / kTileV, c = idx % kTileV;
        sU[i * L::kRowV + c] *= sBeta[i];
      }
      __syncthreads();
      if (tid < KD + kTileV) {
        float* x = tid < KD ? sW + tid : sU + (tid - KD);
        const int stride = tid < KD ? L::kRowK : L::kRowV;
        for (int i = 1; i < rows; ++i) {
          const float* a = sA + i * L::kRowC;
          float acc = x[i * stride];
          for (int j = 0; j < i; ++j) acc = fmaf(-a[j], x[j * stride], acc);
          x[i * stride] = acc;
        }
      }
      __syncthreads();
      // v_new = U - W S
      for (int idx = tid; idx < kChunk * kTileV; idx += kThreads) {
        const int i = idx / kTileV, c = idx % kTileV;
        const float* w = sW + i * L::kRowK;
        float acc = 0.0f;
#pragma unroll 8
        for (int r = 0; r < KD; ++r) acc = fmaf(w[r], sS[r * kTileV + c], acc);
        sU[i * L::kRowV + c] -= acc;
      }
      __syncthreads();
    }

    // O = diag(exp(G)) Q S + P v_new
    for (int idx = tid; idx < kChunk * kTileV; idx += kThreads) {
      const int i = idx / kTileV, c = idx % kTileV;
      if (i >= rows) continue;
      const float* qi = sQ + i * L::kRowK;
      float inter = 0.0f;
#pragma unroll 8
      for (int r = 0; r < KD; ++r) inter = fmaf(qi[r], sS[r * kTileV + c], inter);
      if (kGated) inter *= expf(sG[i]);
      const float* pi = sP + i * L::kRowC;
      float intra = 0.0f;
      for (int j = 0; j <= i; ++j) intra = fmaf(pi[j], sU[j * L::kRowV + c], intra);
      o[((tok0 + i) * H + h) * V + v0 + c] = from_float<T>(inter + intra);
    }
    __syncthreads();

    // S = exp(G_last) S + K^T diag(exp(G_last - G)) v_new
    const float carry = kGated ? expf(g_last) : 1.0f;
    for (int idx = tid; idx < KD * kTileV; idx += kThreads) {
      const int r = idx / kTileV, c = idx % kTileV;
      float acc = sS[idx] * carry;
      for (int j = 0; j < rows; ++j) acc = fmaf(sK[j * L::kRowK + r] * sTail[j], sU[j * L::kRowV + c], acc);
      sS[idx] = acc;
    }
  }
  if (p.ht) {
    __syncthreads();
    for (int idx = tid; idx < KD * kTileV; idx += kThreads) {
      const int r = idx / kTileV, c = idx % kTileV;
      p.ht[state_offset + int64_t{r} * V + v0 + c] = sS[idx];
    }
  }
}

template <int KD, bool kDelta, bool kGated, typename T>
void launch_chunk(const ChunkParams& p, cudaStream_t stream) {
  auto kernel = chunk_forward_kernel<KD, kDelta, kGated, T>;
  constexpr size_t bytes = Smem<KD>::kBytes;
  static const bool reserved = (reserve_shared_memory(kernel, bytes, "chunk_forward (SIMT)"), true);
  (void)reserved;
  const dim3 grid(static_cast<unsigned>(p.V / kTileV), static_cast<unsigned>(p.H), static_cast<unsigned>(p.N));
  kernel<<<grid, kThreads, bytes, stream>>>(p);
  check_launch("chunk_forward (SIMT)");
}

}  // namespace

void chunk_forward_simt(const ChunkParams& p, cudaStream_t stream) {
  dispatch_family(p.family, p.g != nullptr, p.dtype, [&](auto delta, auto gated, auto type) {
    using E = typename decltype(type)::type;
    p.K == 64 ? launch_chunk<64, decltype(delta)::value, decltype(gated)::value, E>(p, stream)
              : launch_chunk<128, decltype(delta)::value, decltype(gated)::value, E>(p, stream);
  });
}

}  // namespace deltabench::cuda
