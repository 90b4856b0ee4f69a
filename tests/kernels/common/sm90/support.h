#pragma once
// What the GPU tests of kernels/common/sm90/ share (one test file a kernel file, beside them): the fp64 UT transform
// that gives the state passes a real delta rule's W and U, the state passes' cases and their inputs, the backward's
// inputs and dv_local in fp64, the device's batch layout, and the check that the kernels run on a Hopper GPU.

#include "kernels/common/sm90/sm90_kernels.h"
#include "kernels/family.h"

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace deltabench::testing::hopper {

inline const auto kF64 = at::TensorOptions().dtype(at::kDouble);

// On a compute capability 9.0 device the kernels must be there (a build without CuTe fails here, not
// skips); elsewhere the tests say why they do not run.
bool on_hopper();

cuda::Dtype dtype_of(at::ScalarType t);

// The ops' cases under the switches: two rows of 300 tokens (four chunks, the last partial), two heads, K 64, V 128.
SampleShape switch_case_shape();

// Lengths -> (seq_starts, chunk_starts) on the device and the chunk count.
struct Batch {
  at::Tensor seq, chunk;
  int64_t chunks = 0, tokens = 0;
};
Batch batch_of(const std::vector<int64_t>& lengths);

// The fp64 UT transform of each chunk of each sequence: W = T diag(beta e^G) K, U = T diag(beta) V.
std::pair<at::Tensor, at::Tensor> ut_fp64(const std::vector<int64_t>& lengths, const at::Tensor& k, const at::Tensor& v,
                                          const at::Tensor& beta, const at::Tensor& g);

// A case of the state passes (forward and backward).
struct Case {
  std::vector<int64_t> lengths;  // one entry a sequence
  bool varlen = false;           // pass seq_starts (else every length must be equal)
  int64_t H = 2, K = 128, V = 128;
  bool w = true, gated = false, h0 = false;
  at::ScalarType dtype = at::kBFloat16;
};

std::string describe(const Case& c);

struct Inputs {
  at::Tensor w, u, k, g, h0;  // w, u, k in the case's dtype (CPU); g [tokens, H] fp32; h0 fp32 or undefined
  at::Tensor k64, v64, beta64;  // what W and U were formed from (fp64), for the check of the reference
};

// Per sequence and head, the delta rule's UT transform in fp64 over chunks of 64:
//   A = strict_lower(diag(beta) K K^T * exp(G_i - G_j)), T = (I + A)^-1, W = T diag(beta e^G) K, U = T diag(beta) V;
// linear attention: U = V. Then rounded to the dtype.
Inputs make_inputs(const Case& c, uint64_t seed);

// The backward's inputs (fp64), for the backward state pass and dv_local.
struct BwdInputs {
  std::vector<int64_t> lengths;
  at::Tensor q, k, w, g, dout, dv_local, dht;  // fp64; w undefined for linear attention
  double scale = 1;
};

// dv_local = P^T dO, P = scale (Q K^T * Gamma) on and below the diagonal, chunk by chunk (fp64).
at::Tensor dv_local_fp64(const BwdInputs& in);

}  // namespace deltabench::testing::hopper
