#pragma once
// Device helpers and the one runtime-to-template dispatch shared by the family's .cu files.

#include "kernels/common/cuda_kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>
#include <type_traits>

namespace deltabench::cuda {

__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_float(float x) { return x; }

template <typename E>
__device__ __forceinline__ E from_float(float x);
template <>
__device__ __forceinline__ __nv_bfloat16 from_float(float x) { return __float2bfloat16(x); }
template <>
__device__ __forceinline__ __half from_float(float x) { return __float2half(x); }
template <>
__device__ __forceinline__ float from_float(float x) { return x; }

// Sum over the 32 lanes of a warp, in every lane.
__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) x += __shfl_xor_sync(0xffffffffu, x, offset);
  return x;
}

__device__ __forceinline__ float sigmoid(float a) { return 1.0f / (1.0f + __expf(-a)); }
__device__ __forceinline__ float silu(float a) { return a * sigmoid(a); }
// d silu(a) / da = s (1 + a (1 - s)), s = sigmoid(a).
__device__ __forceinline__ float silu_grad(float a) {
  const float s = sigmoid(a);
  return s * (1.0f + a * (1.0f - s));
}

template <typename E>
struct TypeTag {
  using type = E;
};

// Calls f(std::bool_constant<delta rule>, std::bool_constant<decay>, TypeTag<element type>) for the
// runtime family (both delta rules take the delta rule's update), decay (g given) and dtype: the single
// place where kernels meet their template switches.
template <typename F>
void dispatch_family(Family family, bool gated, Dtype dtype, F&& f) {
  auto with_dtype = [&](auto delta, auto gate) {
    switch (dtype) {
      case Dtype::kBF16: return f(delta, gate, TypeTag<__nv_bfloat16>{});
      case Dtype::kFP16: return f(delta, gate, TypeTag<__half>{});
      case Dtype::kFP32: return f(delta, gate, TypeTag<float>{});
    }
  };
  if (family != Family::kLinearAttention) {
    gated ? with_dtype(std::true_type{}, std::true_type{}) : with_dtype(std::true_type{}, std::false_type{});
  } else {
    gated ? with_dtype(std::false_type{}, std::true_type{}) : with_dtype(std::false_type{}, std::false_type{});
  }
}

// Calls f(TypeTag<element type>) for the runtime dtype: the dtype switch inside a family's instantiation
// (kernels/<family>/*.cu), whose family switches are fixed.
template <typename F>
void dispatch_dtype(Dtype dtype, F&& f) {
  switch (dtype) {
    case Dtype::kBF16: return f(TypeTag<__nv_bfloat16>{});
    case Dtype::kFP16: return f(TypeTag<__half>{});
    case Dtype::kFP32: return f(TypeTag<float>{});
  }
}

// Throws std::runtime_error naming `what` unless g's presence fits the family: the delta rule takes
// none, the gated delta rule needs it, linear attention's is optional. A family's instantiation fixes
// the decay switch, so a g it would ignore must not reach it.
inline void check_family_decay(Family family, bool has_g, const char* what) {
  if (family == Family::kDeltaRule && has_g) {
    throw std::runtime_error(std::string(what) + ": the delta rule takes no g (the gated delta rule does)");
  }
  if (family == Family::kGatedDeltaRule && !has_g) {
    throw std::runtime_error(std::string(what) + ": the gated delta rule needs g");
  }
}

// Throws std::runtime_error naming `what` when the last launch failed.
inline void check_launch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": launch failed: " + cudaGetErrorString(err));
}

// Lets `kernel` use `bytes` of dynamic shared memory (above the default 48 KB); throws naming `what`.
template <typename Kernel>
void reserve_shared_memory(Kernel kernel, size_t bytes, const char* what) {
  const cudaError_t err =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string(what) + ": cannot reserve " + std::to_string(bytes) +
                             " bytes of shared memory: " + cudaGetErrorString(err));
  }
}

// Version 1 of chunk_forward (chunk_forward_simt.cu): SIMT fp32, every dtype; chunk_forward uses it
// for fp32 inputs. Expects K, V in {64, 128} and N > 0.
void chunk_forward_simt(const ChunkParams& p, cudaStream_t stream);

// Version 2 of chunk_forward, bf16 and fp16, one family each: kernels/<family>/chunk_fwd.cu, the
// shared kernel of kernels/common/chunk_fwd.cuh with that family's switches. The entry has checked p.
void chunk_forward_linear_attn(const ChunkParams& p, cudaStream_t stream);
void chunk_forward_delta_rule(const ChunkParams& p, cudaStream_t stream);
void chunk_forward_gated_delta_rule(const ChunkParams& p, cudaStream_t stream);

// The recurrent kernels, one family each: kernels/<family>/recurrent.cu, the shared kernels of
// recurrent_decode.cuh and recurrent_train.cuh with that family's switches. The entries have checked p.
void recurrent_decode_linear_attn(const DecodeParams& p, cudaStream_t stream);
void recurrent_decode_delta_rule(const DecodeParams& p, cudaStream_t stream);
void recurrent_decode_gated_delta_rule(const DecodeParams& p, cudaStream_t stream);
void recurrent_train_linear_attn(const RecurrentTrainParams& p, bool backward, cudaStream_t stream);
void recurrent_train_delta_rule(const RecurrentTrainParams& p, bool backward, cudaStream_t stream);
void recurrent_train_gated_delta_rule(const RecurrentTrainParams& p, bool backward, cudaStream_t stream);

}  // namespace deltabench::cuda
