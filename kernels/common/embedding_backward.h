#pragma once
// The gradient of an embedding lookup, dw[v] = sum of dy's rows whose token is v, as CUDA kernels that
// sum in a fixed order (the same bits every run) and in parallel over a token's rows. ATen's dense
// embedding backward sums one token's rows one thread per column, serially over partial sums of four
// rows: where one token is most of the batch (MQAR's blanks, token 0, are 81% of Zoology's L 256 inputs)
// that walk is the longest kernel of the training step (train/NOTES.md). Here, given the token ids
// sorted stably with their rows' order (the caller sorts):
//   1. the sorted rows in chunks of kEmbeddingChunk, one block a chunk: each run of one token inside a
//      chunk summed in order, its sum written at the run's last position (partials, [N, D] fp32), and
//      each token's sorted range [start, end) written where it begins and ends;
//   2. one block a vocabulary row v: its partials (one per chunk the range touches, at min(end, chunk
//      end) - 1) summed by the block's warps in a fixed interleaving, then the warps' sums in warp
//      order; rows of no token get zeros.
// No allocation, no host synchronisation: capturable in a CUDA graph. models/fused_cuda.h wraps them.

#include "kernels/common/cuda_kernels.h"

#include <cstdint>

namespace deltabench::cuda {

inline constexpr int64_t kEmbeddingChunk = 128;

struct EmbeddingBackwardParams {
  Dtype dtype = Dtype::kFP32;         // of dy
  const int64_t* sorted = nullptr;    // [N] token ids, sorted ascending, each in [0, V)
  const int64_t* order = nullptr;     // [N] the row of dy each sorted id came from
  const void* dy = nullptr;           // [N, D] contiguous
  float* partials = nullptr;          // [N, D] fp32 workspace (only the runs' last positions are written)
  int64_t* starts = nullptr;          // [V] workspace, zero on entry: each token's first sorted position
  int64_t* ends = nullptr;            // [V] workspace, zero on entry: one past each token's last
  float* dw = nullptr;                // [V, D] fp32, every row written
  int64_t N = 0, V = 0, D = 0;
};

// Throws std::runtime_error naming itself for sizes it does not take (N, V, D at least 0, 1, 1) or a
// failed launch. N = 0 writes zeros.
void embedding_backward(const EmbeddingBackwardParams& p, void* stream);

}  // namespace deltabench::cuda
