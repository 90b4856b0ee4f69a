// The short convolution of the delta-rule layers on CUDA: a causal depthwise convolution over time
// with an optional SiLU, forward and backward, for x [B, T, C] channels-last (the projections' own
// layout: no transposes, no padded copy). See kernels/common/causal_conv1d.h.
//
// Forward: one thread per channel walks kConvTile time steps, the last K - 1 inputs in registers: each
// input is read once (plus K - 1 halo rows per tile) and each output written once; the pre-activation
// is not saved, the backward recomputes it. Backward: the same walk recomputes the pre-activation and
// the gradient at it (da = dy silu'(a)) for the tile and K - 1 rows past it, and writes
//   dx[s] = sum_j w[j] da[s + K - 1 - j],  and per tile  dw_part[j] = sum_t da[t] x[t - K + 1 + j]
// in fp32; the caller sums dw's parts over tiles (a fixed order: deterministic, no atomics).

#include "kernels/common/causal_conv1d.h"
#include "kernels/common/cuda_common.cuh"

namespace deltabench::cuda {
namespace {

template <typename E, int K>
__global__ void __launch_bounds__(kConvThreads) causal_conv1d_forward_kernel(const E* __restrict__ x,
                                                                           const float* __restrict__ w, E* __restrict__ y,
                                                                           int64_t T, int64_t C, bool use_silu) {
  const int64_t c = int64_t{blockIdx.x} * kConvThreads + threadIdx.x;
  if (c >= C) return;
  const int64_t b = blockIdx.z, t0 = int64_t{blockIdx.y} * kConvTile;
  const int64_t t1 = t0 + kConvTile < T ? t0 + kConvTile : T;
  const E* xb = x + b * T * C + c;
  E* yb = y + b * T * C + c;
  float wc[K];
#pragma unroll
  for (int j = 0; j < K; ++j) wc[j] = w[c * K + j];
  float win[K];  // win[j] = x[t - K + 1 + j]; win[K - 1] is the current step's
#pragma unroll
  for (int j = 0; j < K - 1; ++j) {
    const int64_t t = t0 - (K - 1) + j;
    win[j] = t >= 0 ? to_float(xb[t * C]) : 0.0f;
  }
  for (int64_t t = t0; t < t1; ++t) {
    win[K - 1] = to_float(xb[t * C]);
    float a = 0.0f;
#pragma unroll
    for (int j = 0; j < K; ++j) a = fmaf(wc[j], win[j], a);
    yb[t * C] = from_float<E>(use_silu ? silu(a) : a);
#pragma unroll
    for (int j = 0; j < K - 1; ++j) win[j] = win[j + 1];
  }
}

template <typename E, int K>
__global__ void __launch_bounds__(kConvThreads) causal_conv1d_backward_kernel(
    const E* __restrict__ x, const float* __restrict__ w, const E* __restrict__ dy, E* __restrict__ dx,
    float* __restrict__ dw_parts, int64_t T, int64_t C, bool use_silu) {
  const int64_t c = int64_t{blockIdx.x} * kConvThreads + threadIdx.x;
  if (c >= C) return;
  const int64_t b = blockIdx.z, tile = blockIdx.y, t0 = tile * kConvTile;
  const int64_t t1 = t0 + kConvTile < T ? t0 + kConvTile : T;  // this tile's outputs: dx[t0, t1)
  const E* xb = x + b * T * C + c;
  const E* dyb = dy + b * T * C + c;
  E* dxb = dx + b * T * C + c;
  float wc[K];
#pragma unroll
  for (int j = 0; j < K; ++j) wc[j] = w[c * K + j];
  float win[K];  // x[t - K + 1 .. t]
#pragma unroll
  for (int j = 0; j < K - 1; ++j) {
    const int64_t t = t0 - (K - 1) + j;
    win[j] = t >= 0 ? to_float(xb[t * C]) : 0.0f;
  }
  float da[K];  // da[j] = the gradient at the pre-activation of step t - K + 1 + j
#pragma unroll
  for (int j = 0; j < K; ++j) da[j] = 0.0f;
  float dw[K];
#pragma unroll
  for (int j = 0; j < K; ++j) dw[j] = 0.0f;
  // Steps t0 .. t1 + K - 2: dx[s] for s = t - K + 1 needs da up to t; steps past T have da = 0.
  const int64_t t_end = t1 + K - 1;
  for (int64_t t = t0; t < t_end; ++t) {
    float g = 0.0f;
    if (t < T) {
      win[K - 1] = to_float(xb[t * C]);
      g = to_float(dyb[t * C]);
      if (use_silu) {
        float a = 0.0f;
#pragma unroll
        for (int j = 0; j < K; ++j) a = fmaf(wc[j], win[j], a);
        g *= silu_grad(a);
      }
      if (t < t1) {  // dw over this tile's own steps only
#pragma unroll
        for (int j = 0; j < K; ++j) dw[j] = fmaf(g, win[j], dw[j]);
      }
#pragma unroll
      for (int j = 0; j < K - 1; ++j) win[j] = win[j + 1];
    }
#pragma unroll
    for (int j = 0; j < K - 1; ++j) da[j] = da[j + 1];
    da[K - 1] = g;
    const int64_t s = t - (K - 1);
    if (s >= t0) {  // dx[s] = sum_j w[j] da(s + K - 1 - j) = sum_j w[j] da[K - 1 - j]
      float acc = 0.0f;
#pragma unroll
      for (int j = 0; j < K; ++j) acc = fmaf(wc[j], da[K - 1 - j], acc);
      dxb[s * C] = from_float<E>(acc);
    }
  }
  // This tile's part of dw: dw_parts[(b, tile), c, j].
  float* part = dw_parts + ((b * gridDim.y + tile) * C + c) * K;
#pragma unroll
  for (int j = 0; j < K; ++j) part[j] = dw[j];
}

template <int K, typename F>
void with_dtype(Dtype dtype, F&& f) {
  dispatch_dtype(dtype, [&](auto tag) { f(tag, std::integral_constant<int, K>{}); });
}

// Calls f(TypeTag<E>, integral_constant<K>) for the runtime dtype and taps.
template <typename F>
void dispatch_conv(Dtype dtype, int64_t K, F&& f) {
  switch (K) {
    case 2: return with_dtype<2>(dtype, f);
    case 3: return with_dtype<3>(dtype, f);
    case 4: return with_dtype<4>(dtype, f);
    default: throw std::runtime_error("causal_conv1d: kernel size " + std::to_string(K) + " (the kernel takes 2 to 4)");
  }
}

dim3 grid_of(const CausalConvParams& p) {
  return dim3(static_cast<unsigned>((p.C + kConvThreads - 1) / kConvThreads),
              static_cast<unsigned>(causal_conv1d_tiles(p.T)), static_cast<unsigned>(p.B));
}

void check(const CausalConvParams& p, const char* what) {
  if (p.B <= 0 || p.T <= 0 || p.C <= 0) {
    throw std::runtime_error(std::string(what) + ": B, T and C must be positive, got " + std::to_string(p.B) + ", " +
                             std::to_string(p.T) + ", " + std::to_string(p.C));
  }
  if (p.B > 65535 || causal_conv1d_tiles(p.T) > 65535) {
    throw std::runtime_error(std::string(what) + ": B (" + std::to_string(p.B) + ") and T / " +
                             std::to_string(kConvTile) + " must be at most 65535");
  }
}

}  // namespace

int64_t causal_conv1d_tiles(int64_t T) { return (T + kConvTile - 1) / kConvTile; }

bool causal_conv1d_supports(int64_t K) { return K >= 2 && K <= 4; }

void causal_conv1d_forward(const CausalConvParams& p, void* stream) {
  check(p, "causal_conv1d_forward");
  dispatch_conv(p.dtype, p.K, [&](auto tag, auto k) {
    using E = typename decltype(tag)::type;
    causal_conv1d_forward_kernel<E, decltype(k)::value><<<grid_of(p), kConvThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<const E*>(p.x), p.w, static_cast<E*>(p.y), p.T, p.C, p.silu);
  });
  check_launch("causal_conv1d_forward");
}

void causal_conv1d_backward(const CausalConvParams& p, void* stream) {
  check(p, "causal_conv1d_backward");
  dispatch_conv(p.dtype, p.K, [&](auto tag, auto k) {
    using E = typename decltype(tag)::type;
    causal_conv1d_backward_kernel<E, decltype(k)::value><<<grid_of(p), kConvThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<const E*>(p.x), p.w, static_cast<const E*>(p.dy), static_cast<E*>(p.dx), p.dw_parts, p.T, p.C,
        p.silu);
  });
  check_launch("causal_conv1d_backward");
}

}  // namespace deltabench::cuda
