#pragma once
// The block both recurrent kernels use (recurrent_decode.cuh, recurrent_train.cuh): kWarps warps over
// kCols columns of V, a column a lane; their entries size their partial sums with the public pair.

#include "kernels/common/cuda_kernels.h"

namespace deltabench::cuda {
namespace {

constexpr int kWarps = kRecurrentWarps;
constexpr int kCols = kRecurrentColumns;

}  // namespace
}  // namespace deltabench::cuda
