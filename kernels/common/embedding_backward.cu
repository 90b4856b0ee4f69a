// The embedding's gradient on CUDA (kernels/common/embedding_backward.h): runs of one token summed per
// chunk of sorted rows, then each vocabulary row's chunk sums added in a fixed order.

#include "kernels/common/embedding_backward.h"
#include "kernels/common/cuda_common.cuh"

namespace deltabench::cuda {
namespace {

constexpr int kRunThreads = 128;  // pass 1: columns a block takes at once
constexpr int kAhead = 8;         // pass 1: rows loaded before they are summed (memory-level parallelism)
constexpr int kRowWarps = 8;      // pass 2: warps a vocabulary row's block has

template <typename E>
__global__ void __launch_bounds__(kRunThreads) embedding_runs_kernel(EmbeddingBackwardParams p) {
  __shared__ int64_t ids[kEmbeddingChunk + 1];  // the chunk's sorted ids, and the next chunk's first
  __shared__ int64_t rows[kEmbeddingChunk];
  const int64_t begin = int64_t{blockIdx.x} * kEmbeddingChunk;
  const int64_t count = min(kEmbeddingChunk, p.N - begin);
  for (int64_t i = threadIdx.x; i <= count; i += kRunThreads) {
    const int64_t at = begin + i;
    ids[i] = at < p.N ? p.sorted[at] : -1;  // -1: past the end, a run ends there
    if (i < count) rows[i] = p.order[at];
  }
  __syncthreads();
  // Each token's range: its first sorted position and one past its last, each written once.
  for (int64_t i = threadIdx.x; i < count; i += kRunThreads) {
    const int64_t at = begin + i, id = ids[i];
    if (at == 0 || (i > 0 ? ids[i - 1] : p.sorted[at - 1]) != id) p.starts[id] = at;
    if (ids[i + 1] != id) p.ends[id] = at + 1;
  }
  const E* dy = static_cast<const E*>(p.dy);
  for (int64_t d = threadIdx.x; d < p.D; d += kRunThreads) {
    float acc = 0.0f;
    for (int64_t i0 = 0; i0 < count; i0 += kAhead) {
      float v[kAhead];
#pragma unroll
      for (int j = 0; j < kAhead; ++j) v[j] = i0 + j < count ? to_float(dy[rows[i0 + j] * p.D + d]) : 0.0f;
#pragma unroll
      for (int j = 0; j < kAhead; ++j) {
        const int64_t i = i0 + j;
        if (i >= count) break;
        acc += v[j];
        if (i + 1 == count || ids[i + 1] != ids[i]) {  // a run ends at its token's change and at the chunk's end
          p.partials[(begin + i) * p.D + d] = acc;
          acc = 0.0f;
        }
      }
    }
  }
}

__global__ void __launch_bounds__(kRowWarps * 32) embedding_rows_kernel(EmbeddingBackwardParams p) {
  __shared__ float sums[kRowWarps][32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t v = blockIdx.x;
  const int64_t start = p.starts[v], end = p.ends[v];  // end = 0: no row has token v
  const int64_t first = start / kEmbeddingChunk, last = end > 0 ? (end - 1) / kEmbeddingChunk : -1;
  for (int64_t d0 = 0; d0 < p.D; d0 += 32) {
    const int64_t d = d0 + lane;
    float acc = 0.0f;
    if (d < p.D) {
#pragma unroll 4
      for (int64_t c = first + warp; c <= last; c += kRowWarps) {
        const int64_t at = min(end, (c + 1) * kEmbeddingChunk) - 1;  // this chunk's run of token v ends here
        acc += p.partials[at * p.D + d];
      }
    }
    sums[warp][lane] = acc;
    __syncthreads();
    if (warp == 0 && d < p.D) {
      float total = 0.0f;
#pragma unroll
      for (int w = 0; w < kRowWarps; ++w) total += sums[w][lane];
      p.dw[v * p.D + d] = total;
    }
    __syncthreads();
  }
}

}  // namespace

void embedding_backward(const EmbeddingBackwardParams& p, void* stream) {
  if (p.N < 0 || p.V < 1 || p.D < 1) {
    throw std::runtime_error("embedding_backward: N must be at least 0, V and D at least 1, got N=" + std::to_string(p.N) +
                             " V=" + std::to_string(p.V) + " D=" + std::to_string(p.D));
  }
  const auto s = static_cast<cudaStream_t>(stream);
  if (p.N > 0) {
    const auto chunks = static_cast<unsigned>((p.N + kEmbeddingChunk - 1) / kEmbeddingChunk);
    dispatch_dtype(p.dtype, [&](auto tag) {
      using E = typename decltype(tag)::type;
      embedding_runs_kernel<E><<<chunks, kRunThreads, 0, s>>>(p);
    });
    check_launch("embedding_backward (runs)");
  }
  embedding_rows_kernel<<<static_cast<unsigned>(p.V), kRowWarps * 32, 0, s>>>(p);
  check_launch("embedding_backward (rows)");
}

}  // namespace deltabench::cuda
