// The layers' norms on CUDA (kernels/common/row_norm.h): RMSNorm and LayerNorm are one kernel pair,
// templated on whether the row is centred (LayerNorm: its mean taken out, a bias added, db's parts). One
// warp a row, rows taken in a grid-stride loop by a fixed number of blocks, so that the backward's dw
// (and db) has one part per block: each lane keeps its columns' sums in registers over the rows it
// visits, the block's warps add theirs in shared memory in a fixed order, and the caller sums the parts
// over blocks (deterministic, no atomics).

#include "kernels/common/row_norm.h"
#include "kernels/common/cuda_common.cuh"

namespace deltabench::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int64_t kMaxBlocks = 1024;

// Both norms' pointers; the RMSNorm's mean, bias and db are null, the LayerNorm's gate is.
struct RowNorm {
  const void* x = nullptr;
  const float* w = nullptr;
  const float* b = nullptr;
  const void* gate = nullptr;
  void* z = nullptr;
  float* mean = nullptr;
  float* rstd = nullptr;
  const void* dz = nullptr;
  void* dx = nullptr;
  void* dgate = nullptr;
  float* dw_parts = nullptr;
  float* db_parts = nullptr;
  int64_t rows = 0, D = 0;
  float eps = 0.0f;
};

// kPerLane: the columns a lane holds (the largest D over 32). kCentred: LayerNorm. kGate: RMSNorm's gate.
template <typename E, int kPerLane, bool kCentred, bool kGate>
__global__ void __launch_bounds__(kWarps * 32) row_norm_forward_kernel(RowNorm p) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const E* x = static_cast<const E*>(p.x);
  const E* g = static_cast<const E*>(p.gate);
  E* z = static_cast<E*>(p.z);
  const int64_t D = p.D;
  for (int64_t row = int64_t{blockIdx.x} * kWarps + warp; row < p.rows; row += int64_t{gridDim.x} * kWarps) {
    const E* xr = x + row * D;
    float xv[kPerLane];
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int64_t d = lane + 32 * i;
      xv[i] = d < D ? to_float(xr[d]) : 0.0f;
    }
    float mu = 0.0f;
    if constexpr (kCentred) {
      float s = 0.0f;
#pragma unroll
      for (int i = 0; i < kPerLane; ++i) s += xv[i];
      mu = warp_sum(s) / static_cast<float>(D);
#pragma unroll
      for (int i = 0; i < kPerLane; ++i) xv[i] = lane + 32 * i < D ? xv[i] - mu : 0.0f;
    }
    float ss = 0.0f;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) ss = fmaf(xv[i], xv[i], ss);
    const float r = rsqrtf(warp_sum(ss) / static_cast<float>(D) + p.eps);
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int64_t d = lane + 32 * i;
      if (d >= D) continue;
      float out = xv[i] * r * p.w[d];
      if constexpr (kCentred) out += p.b[d];
      if constexpr (kGate) out *= silu(to_float(g[row * D + d]));
      z[row * D + d] = from_float<E>(out);
    }
    if (lane == 0) {
      p.rstd[row] = r;
      if constexpr (kCentred) p.mean[row] = mu;
    }
  }
}

template <typename E, int kPerLane, bool kCentred, bool kGate>
__global__ void __launch_bounds__(kWarps * 32) row_norm_backward_kernel(RowNorm p) {
  constexpr int kMaxD = kPerLane * 32;
  __shared__ float dw_block[kWarps][kMaxD];  // the block's warps' sums, before the block's part
  __shared__ float db_block[kCentred ? kWarps : 1][kCentred ? kMaxD : 1];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const E* x = static_cast<const E*>(p.x);
  const E* g = static_cast<const E*>(p.gate);
  const E* dz = static_cast<const E*>(p.dz);
  E* dx = static_cast<E*>(p.dx);
  E* dg = static_cast<E*>(p.dgate);
  const int64_t D = p.D;
  float dw[kPerLane], db[kPerLane];
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) dw[i] = db[i] = 0.0f;
  for (int64_t row = int64_t{blockIdx.x} * kWarps + warp; row < p.rows; row += int64_t{gridDim.x} * kWarps) {
    const float r = p.rstd[row];
    const float mu = kCentred ? p.mean[row] : 0.0f;
    float xh[kPerLane], a[kPerLane];
    float dot = 0.0f, sum_a = 0.0f;  // sums over the row of a xh and of a
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int64_t d = lane + 32 * i;
      xh[i] = a[i] = 0.0f;
      if (d >= D) continue;
      const int64_t at = row * D + d;
      xh[i] = (to_float(x[at]) - mu) * r;
      float dn = to_float(dz[at]);
      if constexpr (kGate) {
        const float gv = to_float(g[at]);
        dg[at] = from_float<E>(dn * xh[i] * p.w[d] * silu_grad(gv));
        dn *= silu(gv);
      }
      dw[i] = fmaf(dn, xh[i], dw[i]);
      if constexpr (kCentred) db[i] += dn;
      a[i] = dn * p.w[d];
      dot = fmaf(a[i], xh[i], dot);
      sum_a += a[i];
    }
    const float mean_dot = warp_sum(dot) / static_cast<float>(D);
    const float mean_a = kCentred ? warp_sum(sum_a) / static_cast<float>(D) : 0.0f;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int64_t d = lane + 32 * i;
      if (d < D) dx[row * D + d] = from_float<E>(r * (a[i] - mean_a - xh[i] * mean_dot));
    }
  }
  // This block's part of dw (and db): its warps' sums added in warp order.
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int64_t d = lane + 32 * i;
    if (d >= D) continue;
    dw_block[warp][d] = dw[i];
    if constexpr (kCentred) db_block[warp][d] = db[i];
  }
  __syncthreads();
  for (int64_t d = threadIdx.x; d < D; d += kWarps * 32) {
    float sw = 0.0f, sb = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      sw += dw_block[w][d];
      if constexpr (kCentred) sb += db_block[w][d];
    }
    p.dw_parts[int64_t{blockIdx.x} * D + d] = sw;
    if constexpr (kCentred) p.db_parts[int64_t{blockIdx.x} * D + d] = sb;
  }
}

int64_t blocks_for(int64_t rows) {
  const int64_t blocks = (rows + kWarps - 1) / kWarps;
  return blocks < 1 ? 1 : (blocks < kMaxBlocks ? blocks : kMaxBlocks);
}

void check(int64_t D, int64_t rows, int64_t max_d, const char* what) {
  if (D < 1 || D > max_d || rows < 0) {
    throw std::runtime_error(std::string(what) + ": D must be 1 to " + std::to_string(max_d) +
                             " and rows at least 0, got D=" + std::to_string(D) + " rows=" + std::to_string(rows));
  }
}

// Launches the forward (backward = false) or the backward of the norm over `rows` in `dtype`.
template <int kPerLane, bool kCentred>
void launch(const RowNorm& n, Dtype dtype, bool backward, cudaStream_t stream) {
  const auto blocks = static_cast<unsigned>(blocks_for(n.rows));
  dispatch_dtype(dtype, [&](auto tag) {
    using E = typename decltype(tag)::type;
    const auto go = [&](auto gate) {
      constexpr bool kGate = decltype(gate)::value && !kCentred;
      if (backward) {
        row_norm_backward_kernel<E, kPerLane, kCentred, kGate><<<blocks, kWarps * 32, 0, stream>>>(n);
      } else {
        row_norm_forward_kernel<E, kPerLane, kCentred, kGate><<<blocks, kWarps * 32, 0, stream>>>(n);
      }
    };
    n.gate ? go(std::true_type{}) : go(std::false_type{});
  });
}

RowNorm from(const RmsNormParams& p) {
  RowNorm n;
  n.x = p.x, n.w = p.w, n.gate = p.gate, n.z = p.z, n.rstd = p.rstd, n.dz = p.dz, n.dx = p.dx, n.dgate = p.dgate;
  n.dw_parts = p.dw_parts, n.rows = p.rows, n.D = p.D, n.eps = p.eps;
  return n;
}

RowNorm from(const LayerNormParams& p) {
  RowNorm n;
  n.x = p.x, n.w = p.w, n.b = p.b, n.z = p.z, n.mean = p.mean, n.rstd = p.rstd, n.dz = p.dz, n.dx = p.dx;
  n.dw_parts = p.dw_parts, n.db_parts = p.db_parts, n.rows = p.rows, n.D = p.D, n.eps = p.eps;
  return n;
}

constexpr int kLayerPerLane = static_cast<int>(kLayerNormMaxD / 32);

// RMSNorm's D runs from 1 to 512: 8 columns a lane up to 256 (the models' head dims and widths), 16 above
// (Gated DeltaNet's output norm over V 512 at Zoology's d_model 512, since 2026-12-05).
void launch_rms_norm(const RmsNormParams& p, bool backward, cudaStream_t stream) {
  const auto n = from(p);
  if (p.D <= 256) return launch<8, false>(n, p.dtype, backward, stream);
  launch<static_cast<int>(kRmsNormMaxD / 32), false>(n, p.dtype, backward, stream);
}

// LayerNorm's D runs from 1 to 512 (Zoology's widths are 64 to 512): a lane holds 4, 8 or 16 columns,
// the fewest that cover D, so that a row of 128 does not walk 512 columns' predicates.
void launch_layer_norm(const LayerNormParams& p, bool backward, cudaStream_t stream) {
  const auto n = from(p);
  if (p.D <= 128) return launch<4, true>(n, p.dtype, backward, stream);
  if (p.D <= 256) return launch<8, true>(n, p.dtype, backward, stream);
  launch<kLayerPerLane, true>(n, p.dtype, backward, stream);
}

}  // namespace

bool rms_norm_supports(int64_t D) { return D >= 1 && D <= kRmsNormMaxD; }
int64_t rms_norm_blocks(int64_t rows) { return blocks_for(rows); }

void rms_norm_forward(const RmsNormParams& p, void* stream) {
  check(p.D, p.rows, kRmsNormMaxD, "rms_norm_forward");
  if (p.rows == 0) return;
  launch_rms_norm(p, false, static_cast<cudaStream_t>(stream));
  check_launch("rms_norm_forward");
}

void rms_norm_backward(const RmsNormParams& p, void* stream) {
  check(p.D, p.rows, kRmsNormMaxD, "rms_norm_backward");
  // rows = 0: one block writes zero parts
  launch_rms_norm(p, true, static_cast<cudaStream_t>(stream));
  check_launch("rms_norm_backward");
}

bool layer_norm_supports(int64_t D) { return D >= 1 && D <= kLayerNormMaxD; }
int64_t layer_norm_blocks(int64_t rows) { return blocks_for(rows); }

void layer_norm_forward(const LayerNormParams& p, void* stream) {
  check(p.D, p.rows, kLayerNormMaxD, "layer_norm_forward");
  if (p.rows == 0) return;
  launch_layer_norm(p, false, static_cast<cudaStream_t>(stream));
  check_launch("layer_norm_forward");
}

void layer_norm_backward(const LayerNormParams& p, void* stream) {
  check(p.D, p.rows, kLayerNormMaxD, "layer_norm_backward");
  launch_layer_norm(p, true, static_cast<cudaStream_t>(stream));  // rows = 0: one block writes zero parts
  check_launch("layer_norm_backward");
}

}  // namespace deltabench::cuda
