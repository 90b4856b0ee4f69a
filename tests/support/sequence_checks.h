#pragma once
// Checks that every op family of kernels/ must pass, written once and run per family by
// tests/kernels/<family>_test.cpp. Tolerances are fixed here and never loosened per family.

#include "kernels/family.h"

#include <ATen/core/Tensor.h>

#include <string>
#include <string_view>
#include <vector>

namespace deltabench::testing {

inline constexpr double kFp64Tolerance = 1e-10;  // relative RMS, chunk vs recurrent and friends
inline constexpr double kFp32Tolerance = 1e-5;
inline constexpr double kGradTolerance = 1e-6;   // autograd vs central differences, fp64

// ||got - ref|| / ||ref||, in fp64 on the CPU; ||got|| when ref is zero.
double rel_rms(const at::Tensor& got, const at::Tensor& ref);

// "B2-T100-H4-D60-fp64" (K = V), or "B2-T100-H4-K60-V32-fp64".
std::string case_name(const SampleShape& shape, at::ScalarType dtype);

// chunk equals recurrent for T in {1, 63, 64, 65, 200}, head dims {16, 60, 64}, chunk sizes
// {16, 32, 64}, fp64 and fp32, with a random initial state and the final state compared too.
void check_chunk_equals_recurrent(Family family, bool decay = false);

// Autograd gradients of every input, the initial state's included, against central finite
// differences in fp64, on a shape that crosses a chunk boundary and ends in a partial chunk.
void check_gradients(Family family, Mode mode, bool decay = false);

// Running [0, T1) and then [T1, T) from the carried state equals running [0, T).
void check_state_continuation(Family family, Mode mode, bool decay = false);

// A packed varlen batch (cu_seqlens) equals running each sequence alone.
void check_varlen(Family family, Mode mode, bool decay = false);

// The op on `device` (fp32 and fp64) equals the fp64 recurrent definition computed on the CPU.
void check_device_matches_cpu(Family family, const at::Device& device);

}  // namespace deltabench::testing
