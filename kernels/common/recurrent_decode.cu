// Recurrent decode (kernels/common/cuda_kernels.h): T steps for B sequences, fp32 state updated in
// place. One thread block per (sequence, head, 32 columns of V); each of its 8 warps holds K/8 rows
// of that 32-column slice in registers (lane = column), so a warp reads and writes whole 128-byte
// rows. Per step: S *= exp(g); r = S^T k; S += k (beta (v - r))^T (delta rule) or S += k v^T;
// o = S^T q * scale. The two reductions over K go through shared memory across the 8 warps.
// The state is read once and written once however many steps run; decode is bound by that traffic.

#include "kernels/common/cuda_kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace deltabench::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kCols = 32;

__device__ __forceinline__ float load(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ float load(const __half* p) { return __half2float(*p); }
__device__ __forceinline__ float load(const float* p) { return *p; }
__device__ __forceinline__ void store(__nv_bfloat16* p, float x) { *p = __float2bfloat16(x); }
__device__ __forceinline__ void store(__half* p, float x) { *p = __float2half(x); }
__device__ __forceinline__ void store(float* p, float x) { *p = x; }

template <int KD, bool kDelta, bool kGated, typename T>
__global__ void __launch_bounds__(kWarps * 32) recurrent_decode_kernel(DecodeParams p) {
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
    for (int r = 0; r < kRows; ++r) kr[r] = load(kt + r);
    float update = load(v + token * V + col);
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
      out = fmaf(load(qt + r), s[r], out);
    }
    partial[1][warp][lane] = out;
    __syncthreads();
    if (warp == 0) {
      float sum = 0.0f;
#pragma unroll
      for (int w = 0; w < kWarps; ++w) sum += partial[1][w][lane];
      store(o + token * V + col, sum * p.scale);
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
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw std::runtime_error(std::string("recurrent_decode: launch failed: ") + cudaGetErrorString(err));
}

template <int KD, typename T>
void decode_rule(const DecodeParams& p, cudaStream_t s) {
  const bool gated = p.g != nullptr;
  if (p.rule == Rule::kDelta) {
    gated ? launch_decode<KD, true, true, T>(p, s) : launch_decode<KD, true, false, T>(p, s);
  } else {
    gated ? launch_decode<KD, false, true, T>(p, s) : launch_decode<KD, false, false, T>(p, s);
  }
}

template <int KD>
void decode_dtype(const DecodeParams& p, cudaStream_t s) {
  switch (p.dtype) {
    case Dtype::kBF16: return decode_rule<KD, __nv_bfloat16>(p, s);
    case Dtype::kFP16: return decode_rule<KD, __half>(p, s);
    case Dtype::kFP32: return decode_rule<KD, float>(p, s);
  }
}

}  // namespace

bool recurrent_decode_supports(int64_t K, int64_t V) { return (K == 64 || K == 128) && V % kCols == 0 && V > 0; }

void recurrent_decode(const DecodeParams& p, void* stream) {
  if (!recurrent_decode_supports(p.K, p.V)) {
    throw std::runtime_error("recurrent_decode: K must be 64 or 128 and V a multiple of 32, got K=" +
                             std::to_string(p.K) + " V=" + std::to_string(p.V));
  }
  if (p.B == 0 || p.T == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  p.K == 64 ? decode_dtype<64>(p, s) : decode_dtype<128>(p, s);
}

}  // namespace deltabench::cuda
