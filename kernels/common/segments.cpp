#include "kernels/common/segments.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#ifdef DELTABENCH_HAVE_CUDA
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#endif

#include <algorithm>
#include <string>

namespace deltabench {
namespace {

constexpr int64_t kChunk = 64;

int64_t chunks(int64_t tokens) { return (tokens + kChunk - 1) / kChunk; }

}  // namespace

Segments split_sequences(const std::vector<int64_t>& seq_starts, int64_t length) {
  TORCH_CHECK(length > 0 && length % kChunk == 0, "split_sequences: the segment length must be a positive multiple of ",
              kChunk, ", got ", length);
  TORCH_CHECK(!seq_starts.empty(), "split_sequences: seq_starts needs at least one offset, got none");
  Segments s;
  s.starts.push_back(seq_starts.front());
  for (size_t n = 0; n + 1 < seq_starts.size(); ++n) {
    const int64_t begin = seq_starts[n], end = seq_starts[n + 1];
    TORCH_CHECK(end >= begin, "split_sequences: seq_starts must not decrease, got ", begin, " then ", end);
    int64_t position = 0;
    for (int64_t at = begin; position == 0 || at < end; at += length, ++position) {
      s.starts.push_back(std::min(at + length, end));
      s.sequence.push_back(static_cast<int64_t>(n));
      s.position.push_back(position);
    }
    s.last.push_back(static_cast<int64_t>(s.sequence.size()) - 1);
    s.max_segments = std::max(s.max_segments, position);
  }
  return s;
}

int64_t choose_segment_length(const std::vector<int64_t>& seq_starts, int64_t heads, int64_t transitions, int64_t sms) {
  TORCH_CHECK(heads > 0 && sms > 0 && transitions >= 1, "choose_segment_length: heads, sms and transitions must be ",
              "positive, got ", heads, ", ", sms, ", ", transitions);
  const int64_t N = static_cast<int64_t>(seq_starts.size()) - 1;
  if (N <= 0) return 0;
  int64_t longest = 0;
  for (int64_t n = 0; n < N; ++n) longest = std::max(longest, seq_starts[n + 1] - seq_starts[n]);
  const auto waves = [sms](int64_t blocks) { return static_cast<double>((blocks + sms - 1) / sms); };
  double best = waves(N * heads) * static_cast<double>(chunks(longest));
  int64_t best_length = 0;
  for (int64_t parts = 2; parts <= 64; ++parts) {
    const int64_t length = kChunk * chunks((longest + parts - 1) / parts);
    if (length == 0 || length >= longest) continue;
    int64_t segments = 0;
    for (int64_t n = 0; n < N; ++n) {
      segments += std::max<int64_t>(1, (seq_starts[n + 1] - seq_starts[n] + length - 1) / length);
    }
    const double steps = static_cast<double>(chunks(length));
    const double cost = waves((1 + transitions) * segments * heads) * steps * kStateOnlyCost +
                        static_cast<double>((longest + length - 1) / length - 1) + waves(segments * heads) * steps;
    if (cost < best) {
      best = cost;
      best_length = length;
    }
  }
  return best_length;
}

at::Tensor segment_start_states(const Segments& segments, const at::Tensor& transitions, const at::Tensor& local,
                                const at::Tensor& h0) {
  const int64_t S = static_cast<int64_t>(segments.sequence.size()), N = static_cast<int64_t>(segments.last.size());
  const int64_t P = segments.max_segments;
  TORCH_CHECK(local.dim() == 4 && local.size(0) == S, "segment_start_states: local must be [", S,
              ", H, K, V] (one per segment), got ", local.sizes());
  const int64_t H = local.size(1), K = local.size(2), V = local.size(3);
  TORCH_CHECK(transitions.sizes() == at::IntArrayRef({S, H, K, K}), "segment_start_states: transitions must be [", S,
              ", ", H, ", ", K, ", ", K, "], got ", transitions.sizes());
  TORCH_CHECK(!h0.defined() || h0.sizes() == at::IntArrayRef({N, H, K, V}), "segment_start_states: h0 must be [", N,
              ", ", H, ", ", K, ", ", V, "], got ", h0.sizes());
  const auto options = local.options();
  std::vector<int64_t> host_slots(static_cast<size_t>(S));
  for (int64_t s = 0; s < S; ++s) host_slots[s] = segments.sequence[s] * P + segments.position[s];
  const auto slots = device_offsets(host_slots, local.device());
  // Sequences with fewer segments than P are padded with identity maps and zero ends: [N, P, H, ...].
  auto M = at::eye(K, options).expand({N * P, H, K, K}).contiguous().index_copy_(0, slots, transitions.to(options));
  auto L = at::zeros({N * P, H, K, V}, options).index_copy_(0, slots, local);
  M = M.view({N, P, H, K, K});
  L = L.view({N, P, H, K, V});
  std::vector<at::Tensor> starts;
  starts.push_back(h0.defined() ? h0.to(options) : at::zeros({N, H, K, V}, options));
  for (int64_t p = 0; p + 1 < P; ++p) starts.push_back(at::matmul(M.select(1, p), starts.back()) + L.select(1, p));
  return at::stack(starts, 1).view({N * P, H, K, V}).index_select(0, slots);
}

Segments backwards(const Segments& segments) {
  Segments b = segments;
  const auto S = segments.sequence.size();
  TORCH_CHECK(segments.position.size() == S && segments.starts.size() == S + 1,
              "backwards: the segments' starts, sequence and position must be S + 1, S and S long, got ",
              segments.starts.size(), ", ", S, " and ", segments.position.size());
  for (size_t i = 0; i < S; ++i) {
    const auto n = static_cast<size_t>(segments.sequence[i]);
    TORCH_CHECK(n < segments.last.size(), "backwards: segment ", i, " names sequence ", n, " of ", segments.last.size());
    const auto last = static_cast<size_t>(segments.last[n]);
    b.position[i] = segments.position[last] - segments.position[i];
    if (segments.position[i] == 0) b.last[n] = static_cast<int64_t>(i);
  }
  return b;
}

at::Tensor device_offsets(const std::vector<int64_t>& host, const at::Device& device) {
#ifdef DELTABENCH_HAVE_CUDA
  if (device.is_cuda()) {
    // A graph would replay the copy from the pinned buffer, which is handed back to the allocator once the copy
    // is done: a replay could read whatever was put there since. A capture that meets this fails instead.
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    C10_CUDA_CHECK(cudaStreamIsCapturing(c10::cuda::getCurrentCUDAStream(device.index()), &status));
    TORCH_CHECK(status == cudaStreamCaptureStatusNone,
                "device_offsets: the offsets of a varlen batch or of the segment-parallel pass's segments reach the "
                "device by a host copy, which a CUDA graph cannot replay (the stream is capturing): run this call "
                "eagerly, or keep its sequences whole (SequenceOptions::kernel_segment_length = -1)");
  }
#endif
  const auto n = static_cast<int64_t>(host.size());
  auto staged = at::empty({n}, at::TensorOptions().dtype(at::kLong).pinned_memory(device.is_cuda()));
  std::copy(host.begin(), host.end(), staged.data_ptr<int64_t>());
  return staged.to(device, /*non_blocking=*/true);
}

}  // namespace deltabench
