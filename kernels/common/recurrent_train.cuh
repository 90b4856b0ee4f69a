#pragma once
// The recurrent forward and backward for training (kernels/common/cuda_kernels.h): version 1 of the
// backward kernels, step by step over each sequence with the fp32 state in registers.
//
// Mapping (as recurrent_decode.cuh): one block per (sequence, head, 32 columns of V); each of its 8
// warps holds K/8 rows of that 32-column slice of the state S [K, V] (lane = column). Columns of S
// evolve independently, so the forward needs only reductions over K (through shared memory across
// the 8 warps). The backward's gradients of q, k, beta and g are sums over V: each block writes its
// slice's partial sums (summed over the slices by the caller), so no atomics and the same bits on
// every run.
//
// Per step t, with alpha = exp(g_t) (1 without decay) and q~ = scale q_t:
//   S' = alpha S;  w = S'^T k_t;  u = beta_t (v_t - w)  (linear attention: u = v_t);
//   S_t = S' + k_t u^T;  o_t = S_t^T q~.
// Backward, t from last to first, dS the gradient of S_t (dS = dht at the end):
//   dS += q~ do_t^T;  dq_t = scale S_t do_t;  du = dS^T k_t;
//   delta rule: dv_t = beta du;  dbeta_t = du . (v_t - w);  dw = -beta du;
//               dk_t = dS u + S' dw;  dS' = dS + k_t dw^T;
//   linear:     dv_t = du;  dk_t = dS v_t;  dS' = dS;
//   dg_t = <dS', S'>;  dS = alpha dS'.  dh0 = dS after the first step.
// The forward saves S every kSegment steps; the backward recomputes each segment's states from its
// checkpoint (kept per thread in local memory) and walks the segment in reverse. Version 1b: every
// pass loads a step's inputs one step ahead of their use (StepInputs).

#include "kernels/common/cuda_common.cuh"
#include "kernels/common/recurrent_block.cuh"

namespace deltabench::cuda {
namespace {


template <typename T>
__device__ __forceinline__ const T* typed(const void* p) {
  return static_cast<const T*>(p);
}

// What one step reads, for this thread's rows and column, kept as loaded (raw T, raw g): the loads
// are issued one step ahead of their use, and a thread waits for a load only where its value is first
// used, so their latency overlaps the step before (version 1 waited for them at every step).
template <int kRows, typename T>
struct StepInputs {
  T k[kRows], q[kRows];
  T v, dout;
  float beta, g;
};

template <int KD, bool kDelta, bool kGated, bool kDout, typename T>
__device__ __forceinline__ StepInputs<KD / kWarps, T> load_step(const RecurrentTrainParams& p, int64_t token, int row0,
                                                                int64_t col) {
  constexpr int kRows = KD / kWarps;
  StepInputs<kRows, T> in;
  const T* kt = typed<T>(p.k) + token * KD + row0;
  const T* qt = typed<T>(p.q) + token * KD + row0;
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    in.k[r] = kt[r];
    in.q[r] = qt[r];
  }
  in.v = typed<T>(p.v)[token * p.V + col];
  if constexpr (kDout) in.dout = typed<T>(p.dout)[token * p.V + col];
  in.beta = kDelta ? p.beta[token] : 1.0f;
  in.g = kGated ? p.g[token] : 0.0f;
  return in;
}

template <int KD, bool kDelta, bool kGated, typename T>
__global__ void __launch_bounds__(kWarps * 32) recurrent_train_forward_kernel(RecurrentTrainParams p) {
  constexpr int kRows = KD / kWarps;
  __shared__ float partial[2][kWarps][kCols];
  const int lane = threadIdx.x, warp = threadIdx.y;
  const int64_t H = p.H, V = p.V, n = blockIdx.z, h = blockIdx.y;
  const int64_t col = int64_t{blockIdx.x} * kCols + lane;
  const int row0 = warp * kRows;
  const int64_t start = p.seq_starts[n], steps = p.seq_starts[n + 1] - start;
  T* o = static_cast<T*>(p.o);
  const int64_t state_offset = ((n * H + h) * KD + row0) * V + col;
  // No checkpoints: a forward without a backward (the no-gradient path for shapes the chunk kernel does not take).
  float* checkpoints =
      p.checkpoints ? p.checkpoints + (n * H + h) * p.max_segments * KD * V + int64_t{row0} * V + col : nullptr;

  float s[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) s[r] = p.h0 ? p.h0[state_offset + int64_t{r} * V] : 0.0f;

  StepInputs<kRows, T> next;
  if (steps > 0) next = load_step<KD, kDelta, kGated, false, T>(p, start * H + h, row0, col);
  for (int64_t t = 0; t < steps; ++t) {
    if (checkpoints && t % kRecurrentSegment == 0) {
      float* c = checkpoints + (t / kRecurrentSegment) * KD * V;
#pragma unroll
      for (int r = 0; r < kRows; ++r) c[int64_t{r} * V] = s[r];
    }
    const int64_t token = (start + t) * H + h;
    const StepInputs<kRows, T> in = next;
    if (t + 1 < steps) next = load_step<KD, kDelta, kGated, false, T>(p, token + H, row0, col);
    if constexpr (kGated) {
      const float decay = expf(in.g);
#pragma unroll
      for (int r = 0; r < kRows; ++r) s[r] *= decay;
    }
    float kr[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) kr[r] = to_float(in.k[r]);
    float update = to_float(in.v);
    if constexpr (kDelta) {
      float recalled = 0.0f;
#pragma unroll
      for (int r = 0; r < kRows; ++r) recalled = fmaf(kr[r], s[r], recalled);
      partial[0][warp][lane] = recalled;
      __syncthreads();
      recalled = 0.0f;
#pragma unroll
      for (int w = 0; w < kWarps; ++w) recalled += partial[0][w][lane];
      update = in.beta * (update - recalled);
    }
    float out = 0.0f;
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      s[r] = fmaf(kr[r], update, s[r]);
      out = fmaf(to_float(in.q[r]), s[r], out);
    }
    partial[1][warp][lane] = out;
    __syncthreads();
    if (warp == 0) {
      float sum = 0.0f;
#pragma unroll
      for (int w = 0; w < kWarps; ++w) sum += partial[1][w][lane];
      o[token * V + col] = from_float<T>(sum * p.scale);
    }
    __syncthreads();  // partial[] is reused by the next step
  }
  if (p.ht) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) p.ht[state_offset + int64_t{r} * V] = s[r];
  }
}

template <int KD, bool kDelta, bool kGated, typename T>
__global__ void __launch_bounds__(kWarps * 32) recurrent_train_backward_kernel(RecurrentTrainParams p) {
  constexpr int kRows = KD / kWarps;
  __shared__ float partial[2][kWarps][kCols];
  const int lane = threadIdx.x, warp = threadIdx.y;
  const int64_t H = p.H, V = p.V, n = blockIdx.z, h = blockIdx.y, slice = blockIdx.x;
  const int64_t col = slice * kCols + lane;
  const int row0 = warp * kRows;
  const int64_t start = p.seq_starts[n], steps = p.seq_starts[n + 1] - start;
  const int64_t tokens_h = p.tokens * H;  // one slice's partial sums: [tokens, H, ...]
  const int64_t state_offset = ((n * H + h) * KD + row0) * V + col;
  const float* checkpoints = p.checkpoints + (n * H + h) * p.max_segments * KD * V + int64_t{row0} * V + col;

  float ds[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) ds[r] = p.dht ? p.dht[state_offset + int64_t{r} * V] : 0.0f;

  float pre[kRecurrentSegment][kRows];  // S before each step of the segment (before its decay)
  float recalled[kRecurrentSegment];    // w = S'^T k of each step (delta rule)
  const int64_t segments = (steps + kRecurrentSegment - 1) / kRecurrentSegment;
  for (int64_t seg = segments - 1; seg >= 0; --seg) {
    const int64_t first = seg * kRecurrentSegment;
    const int64_t left = steps - first;
    const int count = left < kRecurrentSegment ? static_cast<int>(left) : kRecurrentSegment;
    float s[kRows];
    const float* c = checkpoints + seg * KD * V;
#pragma unroll
    for (int r = 0; r < kRows; ++r) s[r] = c[int64_t{r} * V];
    // The segment's forward again, keeping what the reverse walk needs; each step's inputs loaded one
    // step ahead (StepInputs).
    const int64_t first_token = (start + first) * H + h;
    StepInputs<kRows, T> next = load_step<KD, kDelta, kGated, false, T>(p, first_token, row0, col);
    for (int i = 0; i < count; ++i) {
      const StepInputs<kRows, T> in = next;
      if (i + 1 < count) next = load_step<KD, kDelta, kGated, false, T>(p, first_token + (i + 1) * H, row0, col);
#pragma unroll
      for (int r = 0; r < kRows; ++r) pre[i][r] = s[r];
      if constexpr (kGated) {
        const float decay = expf(in.g);
#pragma unroll
        for (int r = 0; r < kRows; ++r) s[r] *= decay;
      }
      float kr[kRows];
#pragma unroll
      for (int r = 0; r < kRows; ++r) kr[r] = to_float(in.k[r]);
      float update = to_float(in.v);
      if constexpr (kDelta) {
        float w = 0.0f;
#pragma unroll
        for (int r = 0; r < kRows; ++r) w = fmaf(kr[r], s[r], w);
        partial[i & 1][warp][lane] = w;
        __syncthreads();
        w = 0.0f;
#pragma unroll
        for (int x = 0; x < kWarps; ++x) w += partial[i & 1][x][lane];
        recalled[i] = w;
        update = in.beta * (update - w);
      }
#pragma unroll
      for (int r = 0; r < kRows; ++r) s[r] = fmaf(kr[r], update, s[r]);
    }
    __syncthreads();  // the reverse walk reuses partial[]
    // The segment in reverse, each step's inputs (with do) loaded one step ahead.
    next = load_step<KD, kDelta, kGated, true, T>(p, first_token + (count - 1) * H, row0, col);
    for (int i = count - 1; i >= 0; --i) {
      const int64_t token = first_token + i * H;
      const StepInputs<kRows, T> in = next;
      if (i > 0) next = load_step<KD, kDelta, kGated, true, T>(p, token - H, row0, col);
      const float decay = kGated ? expf(in.g) : 1.0f;
      const float beta = in.beta;
      const float vj = to_float(in.v);
      const float doj = to_float(in.dout);
      const float w = kDelta ? recalled[i] : 0.0f;
      const float u = kDelta ? beta * (vj - w) : vj;
      float kr[kRows], sp[kRows];
      float du = 0.0f;
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        kr[r] = to_float(in.k[r]);
        sp[r] = pre[i][r] * decay;                          // S'
        const float st = fmaf(kr[r], u, sp[r]);             // S_t
        const float qs = to_float(in.q[r]) * p.scale;
        ds[r] = fmaf(qs, doj, ds[r]);                       // dS += q~ do^T
        const float dq = warp_sum(st * doj);                // (S_t do)_row over this slice's columns
        if (lane == 0) p.dq_partial[(slice * tokens_h + token) * KD + row0 + r] = dq * p.scale;
        du = fmaf(ds[r], kr[r], du);
      }
      partial[i & 1][warp][lane] = du;
      __syncthreads();
      du = 0.0f;
#pragma unroll
      for (int x = 0; x < kWarps; ++x) du += partial[i & 1][x][lane];
      const float dw = kDelta ? -beta * du : 0.0f;
      if (warp == 0) {
        p.dv[token * V + col] = kDelta ? beta * du : du;
        if constexpr (kDelta) {
          const float dbeta = warp_sum(du * (vj - w));
          if (lane == 0) p.dbeta_partial[slice * tokens_h + token] = dbeta;
        }
      }
      float dg = 0.0f;
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        const float dk = warp_sum(fmaf(ds[r], u, sp[r] * dw));  // (dS u + S' dw)_row
        if (lane == 0) p.dk_partial[(slice * tokens_h + token) * KD + row0 + r] = dk;
        ds[r] = fmaf(kr[r], dw, ds[r]);                         // dS'
        if constexpr (kGated) dg = fmaf(ds[r], sp[r], dg);
        ds[r] *= decay;                                         // the gradient of S_{t-1}
      }
      if constexpr (kGated) {
        dg = warp_sum(dg);
        if (lane == 0) p.dg_partial[(slice * kWarps + warp) * tokens_h + token] = dg;
      }
    }
    __syncthreads();  // the next segment's recomputation reuses partial[]
  }
  if (p.dh0) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) p.dh0[state_offset + int64_t{r} * V] = ds[r];
  }
}

template <int KD, bool kDelta, bool kGated, typename T>
void launch(const RecurrentTrainParams& p, bool backward, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(p.V / kCols), static_cast<unsigned>(p.H), static_cast<unsigned>(p.N));
  if (backward) {
    recurrent_train_backward_kernel<KD, kDelta, kGated, T><<<grid, dim3(32, kWarps), 0, stream>>>(p);
    check_launch("recurrent_train_backward");
  } else {
    recurrent_train_forward_kernel<KD, kDelta, kGated, T><<<grid, dim3(32, kWarps), 0, stream>>>(p);
    check_launch("recurrent_train_forward");
  }
}

// The training pair with one family's switches, every dtype and head dim (the entry has checked p): what
// kernels/<family>/recurrent.cu instantiates.
template <bool kDelta, bool kGated>
void recurrent_train_family(const RecurrentTrainParams& p, bool backward, cudaStream_t stream) {
  dispatch_dtype(p.dtype, [&](auto type) {
    using E = typename decltype(type)::type;
    switch (p.K) {
      case 32: launch<32, kDelta, kGated, E>(p, backward, stream); break;
      case 64: launch<64, kDelta, kGated, E>(p, backward, stream); break;
      case 128: launch<128, kDelta, kGated, E>(p, backward, stream); break;
      default: launch<256, kDelta, kGated, E>(p, backward, stream); break;
    }
  });
}

}  // namespace
}  // namespace deltabench::cuda
