// The output norm on CUDA (kernels/common/rms_norm.h). One warp a row, rows taken in a grid-stride loop
// by a fixed number of blocks, so that the backward's dw has one part per block: each lane keeps its
// columns' sums in registers over the rows it visits, the block's warps add theirs in shared memory in
// a fixed order, and the caller sums the parts over blocks (deterministic, no atomics).

#include "kernels/common/rms_norm.h"
#include "kernels/common/cuda_common.cuh"

namespace deltabench::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kPerLane = static_cast<int>(kRmsNormMaxD / 32);  // columns a lane holds
constexpr int64_t kMaxBlocks = 1024;

template <typename E, bool kGate>
__global__ void __launch_bounds__(kWarps * 32) rms_norm_forward_kernel(RmsNormParams p) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const E* x = static_cast<const E*>(p.x);
  const E* g = static_cast<const E*>(p.gate);
  E* z = static_cast<E*>(p.z);
  const int64_t D = p.D;
  for (int64_t row = int64_t{blockIdx.x} * kWarps + warp; row < p.rows; row += int64_t{gridDim.x} * kWarps) {
    const E* xr = x + row * D;
    float xv[kPerLane];
    float ss = 0.0f;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int64_t d = lane + 32 * i;
      xv[i] = d < D ? to_float(xr[d]) : 0.0f;
      ss = fmaf(xv[i], xv[i], ss);
    }
    const float r = rsqrtf(warp_sum(ss) / static_cast<float>(D) + p.eps);
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int64_t d = lane + 32 * i;
      if (d >= D) continue;
      float out = xv[i] * r * p.w[d];
      if constexpr (kGate) {
        const float gv = to_float(g[row * D + d]);
        out *= silu(gv);
      }
      z[row * D + d] = from_float<E>(out);
    }
    if (lane == 0) p.rstd[row] = r;
  }
}

template <typename E, bool kGate>
__global__ void __launch_bounds__(kWarps * 32) rms_norm_backward_kernel(RmsNormParams p) {
  __shared__ float parts[kWarps][kRmsNormMaxD];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const E* x = static_cast<const E*>(p.x);
  const E* g = static_cast<const E*>(p.gate);
  const E* dz = static_cast<const E*>(p.dz);
  E* dx = static_cast<E*>(p.dx);
  E* dg = static_cast<E*>(p.dgate);
  const int64_t D = p.D;
  float dw[kPerLane];
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) dw[i] = 0.0f;
  for (int64_t row = int64_t{blockIdx.x} * kWarps + warp; row < p.rows; row += int64_t{gridDim.x} * kWarps) {
    const float r = p.rstd[row];
    float xh[kPerLane], a[kPerLane];
    float dot = 0.0f;  // sum over the row of a x r
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int64_t d = lane + 32 * i;
      xh[i] = a[i] = 0.0f;
      if (d >= D) continue;
      const int64_t at = row * D + d;
      xh[i] = to_float(x[at]) * r;
      float dn = to_float(dz[at]);
      if constexpr (kGate) {
        const float gv = to_float(g[at]);
        dg[at] = from_float<E>(dn * xh[i] * p.w[d] * silu_grad(gv));
        dn *= silu(gv);
      }
      dw[i] = fmaf(dn, xh[i], dw[i]);
      a[i] = dn * p.w[d];
      dot = fmaf(a[i], xh[i], dot);
    }
    const float mean = warp_sum(dot) / static_cast<float>(D);
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int64_t d = lane + 32 * i;
      if (d < D) dx[row * D + d] = from_float<E>(r * (a[i] - xh[i] * mean));
    }
  }
  // This block's part of dw: its warps' sums added in warp order.
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int64_t d = lane + 32 * i;
    if (d < D) parts[warp][d] = dw[i];
  }
  __syncthreads();
  for (int64_t d = threadIdx.x; d < D; d += kWarps * 32) {
    float sum = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) sum += parts[w][d];
    p.dw_parts[int64_t{blockIdx.x} * D + d] = sum;
  }
}

void check(const RmsNormParams& p, const char* what) {
  if (!rms_norm_supports(p.D) || p.rows < 0) {
    throw std::runtime_error(std::string(what) + ": D must be 1 to " + std::to_string(kRmsNormMaxD) +
                             " and rows at least 0, got D=" + std::to_string(p.D) + " rows=" + std::to_string(p.rows));
  }
}

template <typename F>
void dispatch(const RmsNormParams& p, F&& f) {
  dispatch_dtype(p.dtype, [&](auto tag) {
    p.gate ? f(tag, std::true_type{}) : f(tag, std::false_type{});
  });
}

}  // namespace

bool rms_norm_supports(int64_t D) { return D >= 1 && D <= kRmsNormMaxD; }

int64_t rms_norm_blocks(int64_t rows) {
  const int64_t blocks = (rows + kWarps - 1) / kWarps;
  return blocks < 1 ? 1 : (blocks < kMaxBlocks ? blocks : kMaxBlocks);
}

void rms_norm_forward(const RmsNormParams& p, void* stream) {
  check(p, "rms_norm_forward");
  if (p.rows == 0) return;
  const auto blocks = static_cast<unsigned>(rms_norm_blocks(p.rows));
  dispatch(p, [&](auto tag, auto gate) {
    using E = typename decltype(tag)::type;
    rms_norm_forward_kernel<E, decltype(gate)::value><<<blocks, kWarps * 32, 0, static_cast<cudaStream_t>(stream)>>>(p);
  });
  check_launch("rms_norm_forward");
}

void rms_norm_backward(const RmsNormParams& p, void* stream) {
  check(p, "rms_norm_backward");
  const auto blocks = static_cast<unsigned>(rms_norm_blocks(p.rows));  // rows = 0: one block writes zero parts
  dispatch(p, [&](auto tag, auto gate) {
    using E = typename decltype(tag)::type;
    rms_norm_backward_kernel<E, decltype(gate)::value><<<blocks, kWarps * 32, 0, static_cast<cudaStream_t>(stream)>>>(p);
  });
  check_launch("rms_norm_backward");
}

}  // namespace deltabench::cuda
