#pragma once
// The op families as one enum, without ATen: the CUDA kernels' parameter structs
// (kernels/common/cuda_kernels.h) carry it as they are, and kernels/family.h lists the families as data.
// The kernels' template switches follow from it in one place (dispatch_family in
// kernels/common/cuda_common.cuh): the delta rule's update for both delta rules, the decay from g.

namespace deltabench {

enum class Family { kLinearAttention, kDeltaRule, kGatedDeltaRule };

}  // namespace deltabench
