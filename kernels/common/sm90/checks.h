#pragma once
// The sm_90a entry points' checks of a call, on the host (kernels/common/sm90/available.cpp): one sentence
// naming the first thing a kernel cannot take, with what it got.

#include "kernels/common/cuda_kernels.h"

#include <cstdint>
#include <initializer_list>
#include <utility>

namespace deltabench::cuda::sm90::detail {

struct CallShape {
  Dtype dtype = Dtype::kBF16;
  int64_t N = 0, T = 0, H = 0, K = 0, V = 0;
  const int64_t* seq_starts = nullptr;
  const int64_t* chunk_starts = nullptr;
  int64_t chunks = 0;   // with seq_starts, for a kernel whose grid is the chunks
  int64_t max_V = 0;    // 0: V any positive multiple of 64
  bool chunk_grid = false;
  int64_t max_K = 128;  // 256: a forward kernel that takes K 256 too (the UT transform, the state pass without the
                        // output, the output kernel)
};

using Pointers = std::initializer_list<std::pair<const char*, const void*>>;

// Throws std::runtime_error where the sm_90a kernels are not available here, std::invalid_argument
// ("<who>: ...") where the call's dtype, shape, batch or pointers are not what the kernels take: every
// `required` pointer set, every pointer of both lists on a 16-byte boundary. Returns the chunks of the
// batch (N ceil(T / 64), or `chunks` of a varlen one).
int64_t check_call(const char* who, const CallShape& c, Pointers required, Pointers optional = {});

}  // namespace deltabench::cuda::sm90::detail
