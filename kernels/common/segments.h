#pragma once
// The segment-parallel pass over long sequences.
//
// The chunked forward kernel runs one block per (sequence, head) through the sequence's chunks in
// order, so B H blocks is all its parallelism: 16 blocks for B = 1, H = 16 on a GPU of 132 SMs.
// Splitting each sequence into P segments gives P times the blocks, at the price of a second pass. A
// segment's state map is affine, S_end = M S_start + L: L is its end state from a zero start and M the
// product of its chunks' maps S -> exp(G_last) S - K^T diag(exp(G_last - G)) W S. So:
//   1. every segment in parallel: L (from zero) and M (from identity columns, v = 0), no output;
//   2. every sequence in order over its segments: S_start(p + 1) = M_p S_start(p) + L_p, S_start(0) = h0;
//   3. every segment in parallel: the forward from S_start(p), writing o; a sequence's final state is
//      its last segment's.
// Step 2 is P - 1 small batched products. This file holds what does not depend on the device: the
// split, the choice of the segment length and step 2. kernels/common/cuda_dispatch.cpp runs steps 1
// and 3 on the CUDA kernel (ChunkParams::transitions).

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace deltabench {

struct Segments {
  std::vector<int64_t> starts;    // [S + 1] token offsets of the segments, in token order
  std::vector<int64_t> sequence;  // [S] the sequence each segment belongs to
  std::vector<int64_t> position;  // [S] its place in that sequence, from 0
  std::vector<int64_t> last;      // [N] the index of each sequence's last segment
  int64_t max_segments = 0;       // most segments of one sequence
};

// Splits every sequence [seq_starts[n], seq_starts[n + 1]) into segments of `length` tokens, the last
// one shorter where the length does not divide. An empty sequence keeps one empty segment. length
// must be a positive multiple of 64 (whole chunks).
Segments split_sequences(const std::vector<int64_t>& seq_starts, int64_t length);

// The segment length that a simple cost model of the kernel finds fastest, or 0 to keep the
// sequences whole. The model counts chunk steps along the critical path: a pass of b blocks on a GPU
// that runs `sms` of them at once (its multiprocessors times the blocks each holds) takes ceil(b / sms)
// waves, each as long as its longest segment;
// step 1 runs (1 + transitions) blocks per segment and head at kStateOnlyCost of a full chunk step;
// step 2 costs about one chunk step per segment boundary. A state-only chunk step measured 0.76 (v2b)
// and 0.73 (v2c) of a full one on the H100 (Nsight Compute, 1 x 32K; kernels/delta_rule/NOTES.md).
inline constexpr double kStateOnlyCost = 0.7;
int64_t choose_segment_length(const std::vector<int64_t>& seq_starts, int64_t heads, int64_t transitions, int64_t sms);

// Step 2: every segment's start state [S, H, K, V] from its transition [S, H, K, K], its end state
// from zero [S, H, K, V] and the sequences' initial states h0 [N, H, K, V] (undefined: zeros). Any
// device; fp32 or fp64.
at::Tensor segment_start_states(const Segments& segments, const at::Tensor& transitions, const at::Tensor& local,
                                const at::Tensor& h0);

// The same segments with each sequence's counted from its end: `position` 0 for its last segment, `last` the
// index of its first. segment_start_states over them joins a pass that walks the sequences backwards (the
// backward's state pass, whose map is affine too: dS_start = M dS_end + L): each segment's gradient at its end
// from its sequence's final-state gradient (as h0) and the segments after it.
Segments backwards(const Segments& segments);

// Offsets as an int64 tensor on `device`, without synchronising the host: a CUDA device gets them
// through pinned memory and an asynchronous copy (a pageable copy would wait for the stream, and so
// for every kernel queued before it). Refuses (c10::Error) while the device's current stream is capturing a
// CUDA graph, which could not replay the copy; a training step's capture then fails and it runs eagerly,
// saying why (train/step.h).
at::Tensor device_offsets(const std::vector<int64_t>& host, const at::Device& device);

}  // namespace deltabench
