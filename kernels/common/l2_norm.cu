// The L2 normalisation of q and k on CUDA (kernels/common/l2_norm.h): one warp a row. The forward sums
// x^2 over the row's D elements (lanes stride over the row; a shuffle reduction), writes y = x r and r;
// the backward sums dy . x, then writes dx = r (dy - y (dy . y)) with y = x r recomputed in fp32, so the
// saved y's rounding never enters the gradient.

#include "kernels/common/l2_norm.h"
#include "kernels/common/cuda_common.cuh"

namespace deltabench::cuda {
namespace {

constexpr int kWarps = 8;  // rows a block

template <typename E>
__global__ void __launch_bounds__(kWarps * 32) l2_norm_forward_kernel(const E* __restrict__ x, E* __restrict__ y,
                                                                      float* __restrict__ rstd, int64_t rows,
                                                                      int64_t D, float eps) {
  const int64_t row = int64_t{blockIdx.x} * kWarps + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = threadIdx.x % 32;
  const E* xr = x + row * D;
  float ss = 0.0f;
  for (int64_t d = lane; d < D; d += 32) {
    const float v = to_float(xr[d]);
    ss = fmaf(v, v, ss);
  }
  const float r = rsqrtf(warp_sum(ss) + eps);
  E* yr = y + row * D;
  for (int64_t d = lane; d < D; d += 32) yr[d] = from_float<E>(to_float(xr[d]) * r);
  if (lane == 0) rstd[row] = r;
}

template <typename E>
__global__ void __launch_bounds__(kWarps * 32) l2_norm_backward_kernel(const E* __restrict__ x,
                                                                       const float* __restrict__ rstd,
                                                                       const E* __restrict__ dy, E* __restrict__ dx,
                                                                       int64_t rows, int64_t D) {
  const int64_t row = int64_t{blockIdx.x} * kWarps + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = threadIdx.x % 32;
  const E* xr = x + row * D;
  const E* gr = dy + row * D;
  const float r = rstd[row];
  float dot = 0.0f;  // dy . y = r (dy . x)
  for (int64_t d = lane; d < D; d += 32) dot = fmaf(to_float(gr[d]), to_float(xr[d]), dot);
  dot = warp_sum(dot) * r;
  E* out = dx + row * D;
  for (int64_t d = lane; d < D; d += 32) {
    const float yv = to_float(xr[d]) * r;
    out[d] = from_float<E>(r * (to_float(gr[d]) - yv * dot));
  }
}

unsigned blocks_of(const L2NormParams& p, const char* what) {
  if (p.rows < 0 || p.D <= 0) {
    throw std::runtime_error(std::string(what) + ": rows must be at least 0 and D positive, got " +
                             std::to_string(p.rows) + " and " + std::to_string(p.D));
  }
  const int64_t blocks = (p.rows + kWarps - 1) / kWarps;
  if (blocks > 2147483647) throw std::runtime_error(std::string(what) + ": too many rows: " + std::to_string(p.rows));
  return static_cast<unsigned>(blocks);
}

}  // namespace

void l2_norm_forward(const L2NormParams& p, void* stream) {
  const unsigned blocks = blocks_of(p, "l2_norm_forward");
  if (blocks == 0) return;
  dispatch_dtype(p.dtype, [&](auto tag) {
    using E = typename decltype(tag)::type;
    l2_norm_forward_kernel<E><<<blocks, kWarps * 32, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<const E*>(p.x), static_cast<E*>(p.y), p.rstd, p.rows, p.D, p.eps);
  });
  check_launch("l2_norm_forward");
}

void l2_norm_backward(const L2NormParams& p, void* stream) {
  const unsigned blocks = blocks_of(p, "l2_norm_backward");
  if (blocks == 0) return;
  dispatch_dtype(p.dtype, [&](auto tag) {
    using E = typename decltype(tag)::type;
    l2_norm_backward_kernel<E><<<blocks, kWarps * 32, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<const E*>(p.x), p.rstd, static_cast<const E*>(p.dy), static_cast<E*>(p.dx), p.rows, p.D);
  });
  check_launch("l2_norm_backward");
}

}  // namespace deltabench::cuda
