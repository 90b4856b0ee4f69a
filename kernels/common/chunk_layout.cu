// The chunked training pair's layout changes (kernels/common/cuda_kernels.h, swap_rows): its inputs
// arrive as [N, T, H, D] in a 16-bit dtype and its stages want [N, H, T, D] in fp32 (q scaled), and its
// gradients go back the other way. ATen does each as a strided copy through a generic indexer (333 us
// for q of 16 x 2K x 16 x 128 on the H200, a third of the copy rate); here each thread moves 4
// consecutive elements of a row, 8 or 16 bytes a load and a store, in one pass with the scale.

#include "kernels/common/cuda_common.cuh"

#include <algorithm>
#include <cstdint>

namespace deltabench::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kVec = 4;  // elements a thread moves

template <typename E>
struct alignas(sizeof(E) * kVec) Vec {
  E x[kVec];
};

// src [N, A, B, D] (rows of D contiguous elements, the strides of N, A and B given) -> dst [N, B, A, D]
// contiguous, dst = scale * src, D a multiple of kVec.
template <typename In, typename Out>
__global__ void __launch_bounds__(kThreads) swap_rows_kernel(const In* __restrict__ src, Out* __restrict__ dst,
                                                               SwapRows s) {
  const int64_t N = s.N, A = s.A, B = s.B, D = s.D;
  const float scale = s.scale;
  const int64_t vecs = D / kVec, total = N * A * B * vecs;
  for (int64_t idx = int64_t{blockIdx.x} * kThreads + threadIdx.x; idx < total;
       idx += int64_t{gridDim.x} * kThreads) {
    // idx walks dst in order: (n, b, a, d4).
    const int64_t d4 = idx % vecs;
    int64_t r = idx / vecs;
    const int64_t a = r % A;
    r /= A;
    const int64_t b = r % B, n = r / B;
    const auto in = *reinterpret_cast<const Vec<In>*>(src + n * s.stride_n + a * s.stride_a + b * s.stride_b + d4 * kVec);
    Vec<Out> out;
#pragma unroll
    for (int e = 0; e < kVec; ++e) out.x[e] = from_float<Out>(scale * to_float(in.x[e]));
    *reinterpret_cast<Vec<Out>*>(dst + idx * kVec) = out;
  }
}

template <typename F>
void dispatch_pair(Dtype in, Dtype out, F&& f) {
  dispatch_dtype(in, [&](auto in_tag) { dispatch_dtype(out, [&](auto out_tag) { f(in_tag, out_tag); }); });
}

}  // namespace

bool swap_rows_supports(const SwapRows& s) {
  const auto bytes = s.src_dtype == Dtype::kFP32 ? 4 : 2;
  const auto aligned = [](const void* p, int64_t to) { return reinterpret_cast<std::uintptr_t>(p) % to == 0; };
  return s.D % kVec == 0 && s.stride_n % kVec == 0 && s.stride_a % kVec == 0 && s.stride_b % kVec == 0 &&
         aligned(s.src, bytes * kVec) && aligned(s.dst, (s.dst_dtype == Dtype::kFP32 ? 4 : 2) * kVec);
}

void swap_rows(const SwapRows& s, void* stream) {
  if (!swap_rows_supports(s)) {
    throw std::runtime_error("swap_rows: D and the strides must be multiples of " + std::to_string(kVec) +
                             " and both buffers aligned to 4 elements, got D=" + std::to_string(s.D));
  }
  const int64_t total = s.N * s.A * s.B * (s.D / kVec);
  if (total == 0) return;
  int device = 0, sms = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  const int64_t blocks = std::min<int64_t>((total + kThreads - 1) / kThreads, int64_t{sms} * 16);
  dispatch_pair(s.src_dtype, s.dst_dtype, [&](auto in_tag, auto out_tag) {
    using In = typename decltype(in_tag)::type;
    using Out = typename decltype(out_tag)::type;
    swap_rows_kernel<In, Out><<<static_cast<unsigned>(blocks), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<const In*>(s.src), static_cast<Out*>(s.dst), s);
  });
  check_launch("swap_rows");
}

}  // namespace deltabench::cuda
