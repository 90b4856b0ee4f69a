#pragma once
// Recurrent decode (kernels/common/cuda_kernels.h): T steps for B sequences, fp32 state updated in
// place. One thread block per (sequence, head, 32 columns of V); each of its 8 warps holds K/8 rows
// of that 32-column slice in registers (lane = column), so a warp reads and writes whole 128-byte
// rows. Per step: S *= exp(g); r = S^T k; S += k (beta (v - r))^T (delta rule) or S += k v^T;
// o = S^T q * scale. The two reductions over K go through shared memory across the 8 warps.
// The state is read once and written once however many steps run; decode is bound by that traffic.

#include "kernels/common/cuda_common.cuh"
#include "kernels/common/recurrent_block.cuh"

namespace deltabench::cuda {
namespace {

// Four blocks an SM: 64 registers a thread, no spills (sm_90a). At 80 registers three fit, and the B = 64
// step reached 58% of DRAM bandwidth with 35% occupancy (Nsight Compute, H100): too few state loads in
// flight. Five or more blocks spill the state.
constexpr int kMinBlocks = 4;

template <int KD, bool kDelta, bool kGated, typename T>
__global__ void __launch_bounds__(kWarps * 32, kMinBlocks) recurrent_decode_kernel(DecodeParams p) {
  constexpr int kRows = KD / kWarps;
  __shared__ float partial[2][kWarps][kCols];
  const int lane = threadIdx.x, warp = threadIdx.y;
  const int64_t H = p.H, V = p.V, steps = p.T;
  const int64_t b = blockIdx.z, h = blockIdx.y;
  const int64_t col = int64_t{blockIdx.x} * kCols + lane;
  const int row0 = warp * kRows;
  float* state = p.state + ((b * H + h) * KD + row0) * V + col;
  const T* q = static_cast<const T*>(p.q);
  const T* k = static_cast<const T*>(p.k);
  const T* v = static_cast<const T*>(p.v);
  const float* beta = p.beta;
  const float* g = p.g;
  T* o = static_cast<T*>(p.o);

  float s[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) s[r] = state[int64_t{r} * V];

  for (int64_t t = 0; t < steps; ++t) {
    const int64_t token = (b * steps + t) * H + h;
    const T* kt = k + token * KD + row0;
    const T* qt = q + token * KD + row0;
    if constexpr (kGated) {
      const float decay = expf(g[token]);
#pragma unroll
      for (int r = 0; r < kRows; ++r) s[r] *= decay;
    }
    float kr[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) kr[r] = to_float(kt[r]);
    float update = to_float(v[token * V + col]);
    if constexpr (kDelta) {
      float recalled = 0.0f;
#pragma unroll
      for (int r = 0; r < kRows; ++r) recalled = fmaf(kr[r], s[r], recalled);
      partial[0][warp][lane] = recalled;
      __syncthreads();
      recalled = 0.0f;
#pragma unroll
      for (int w = 0; w < kWarps; ++w) recalled += partial[0][w][lane];
      update = beta[token] * (update - recalled);
    }
    float out = 0.0f;
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      s[r] = fmaf(kr[r], update, s[r]);
      out = fmaf(to_float(qt[r]), s[r], out);
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
#pragma unroll
  for (int r = 0; r < kRows; ++r) state[int64_t{r} * V] = s[r];
}

template <int KD, bool kDelta, bool kGated, typename T>
void launch_decode(const DecodeParams& p, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(p.V / kCols), static_cast<unsigned>(p.H), static_cast<unsigned>(p.B));
  recurrent_decode_kernel<KD, kDelta, kGated, T><<<grid, dim3(32, kWarps), 0, stream>>>(p);
  check_launch("recurrent_decode");
}

// The decode steps with one family's switches, every dtype and head dim (the entry has checked p): what
// kernels/<family>/recurrent.cu instantiates.
template <bool kDelta, bool kGated>
void recurrent_decode_family(const DecodeParams& p, cudaStream_t stream) {
  dispatch_dtype(p.dtype, [&](auto type) {
    using E = typename decltype(type)::type;
    p.K == 64 ? launch_decode<64, kDelta, kGated, E>(p, stream) : launch_decode<128, kDelta, kGated, E>(p, stream);
  });
}

}  // namespace
}  // namespace deltabench::cuda
