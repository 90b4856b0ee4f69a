// Tests kernels/common/cuda_dispatch.cpp on the CPU: the backend choice of the public ops (auto,
// reference, kernel), the backend each output records and counts, and the error of a `kernel` that
// cannot serve the call. tests/kernels/cuda_kernels_test.cpp covers the kernel's side on a GPU.

#include "kernels/common/backend.h"
#include "kernels/common/cuda_dispatch.h"
#include "kernels/family.h"
#include "tests/support/catch.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cstdlib>
#include <string>

using namespace deltabench;

namespace {

std::string error_of(Family family, const SequenceInputs& in, const SequenceOptions& options) {
  try {
    (void)run_family(family, in, options);
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  return "no error";
}

}  // namespace

TEST_CASE("backend choice on the CPU: auto and reference run the reference and say so", "[kernels]") {
  for (const auto family : kFamilies) {
    INFO(family_name(family));
    const auto in = sample_inputs(family, SampleShape{2, 40, 2, 16, 16}, at::kFloat, 3, true);
    SequenceOptions o;
    o.output_final_state = true;
    const auto before = backend_counts();
    const auto automatic = run_family(family, in, o);
    o.backend = BackendChoice::kReference;
    const auto reference = run_family(family, in, o);
    const auto counted = backend_counts() - before;
    CHECK(automatic.backend == Backend::kReference);
    CHECK(reference.backend == Backend::kReference);
    CHECK(at::equal(automatic.o, reference.o));
    CHECK(at::equal(automatic.final_state, reference.final_state));
    CHECK(counted.reference == 2);
    CHECK(counted.kernel == 0);
  }
}

TEST_CASE("backend = kernel on the CPU is an error that names the op and says why", "[kernels]") {
  for (const auto family : kFamilies) {
    const auto in = sample_inputs(family, SampleShape{1, 64, 2, 64, 64}, at::kFloat, 3);
    SequenceOptions o;
    o.backend = BackendChoice::kKernel;
    const auto before = backend_counts();
    const auto message = error_of(family, in, o);
    const std::string head =
        std::string(family_name(family)) + ": backend = kernel, but deltabench's CUDA kernels cannot serve this call: ";
#ifdef DELTABENCH_HAVE_CUDA
    CHECK_THAT(message, testing::contains(head + "the tensors are on cpu, and the kernel runs on CUDA"));
#else
    CHECK_THAT(message, testing::contains(head + "this build of deltabench has no CUDA kernels"));
#endif
    CHECK_THAT(message, testing::contains("backend = auto takes the reference ops where the kernels cannot serve"));
    const auto counted = backend_counts() - before;
    CHECK(counted.reference + counted.kernel == 0);  // nothing ran
  }
}

TEST_CASE("family and backend names", "[kernels]") {
  for (const auto family : kFamilies) CHECK(family_from_name(family_name(family)) == family);
  CHECK_FALSE(family_from_name("sdpa"));
  CHECK_FALSE(family_from_name("decode_gated_delta_rule"));
  CHECK(backend_name(Backend::kReference) == "reference");
  CHECK(backend_name(Backend::kKernel) == "kernel");
  CHECK(backend_choice_name(BackendChoice::kAuto) == "auto");
  CHECK(backend_choice_name(BackendChoice::kReference) == "reference");
  CHECK(backend_choice_name(BackendChoice::kKernel) == "kernel");
}

TEST_CASE("what a phase's backward ran, from its counts", "[kernels]") {
  BackendCounts p;
  CHECK(backward_backend(p) == "none");
  p.reference = p.reference_with_grad = 2;
  CHECK(backward_backend(p) == "reference (ATen autograd)");
  p.kernel = p.kernel_with_grad = 1;
  CHECK(backward_backend(p) == "kernel + reference (ATen autograd)");
  p.reference = p.reference_with_grad = 0;
  CHECK(backward_backend(p) == "kernel");
  // Accumulated over epochs, every field is kept (the trainer once dropped kernel_with_grad there).
  BackendCounts sum;
  sum += p;
  sum += p;
  CHECK(sum.kernel_with_grad == 2 * p.kernel_with_grad);
  CHECK(sum.reference_with_grad == 2 * p.reference_with_grad);
  CHECK(sum.kernel == 2 * p.kernel);
  CHECK(sum.reference == 2 * p.reference);
  CHECK(backward_backend(sum) == "kernel");
  // The calls the sm_90a training op took are named apart from those of the other training kernels.
  BackendCounts hopper;
  hopper.kernel = hopper.kernel_with_grad = hopper.kernel_sm90 = 3;
  CHECK(backward_backend(hopper) == "kernel (sm_90a)");
  CHECK(forward_backend(hopper) == "kernel");
  hopper.kernel = hopper.kernel_with_grad = 5;
  CHECK(backward_backend(hopper) == "kernel (sm_90a) + kernel");
  hopper.reference = hopper.reference_with_grad = 1;
  CHECK(backward_backend(hopper) == "kernel (sm_90a) + kernel + reference (ATen autograd)");
  hopper += hopper;
  CHECK(hopper.kernel_sm90 == 6);
  CHECK((hopper - BackendCounts{0, 0, 0, 0, 2}).kernel_sm90 == 4);
  CHECK(forward_backend(p) == "kernel");
  const BackendCounts later{3, 2, 5, 4};
  const auto d = later - BackendCounts{1, 1, 1, 1};
  CHECK(d.reference == 2);
  CHECK(d.reference_with_grad == 1);
  CHECK(d.kernel == 4);
  CHECK(d.kernel_with_grad == 3);
}

TEST_CASE("the sm_90a training op is on by default and the forward alone off; the op keeps W, U and T", "[kernels]") {
  // The training op since the models' GPU tests passed on it (kernels/delta_rule/NOTES.md, version 3j); the
  // forward alone keeps the fused sm_80 kernel, faster at 16 x 2K on the H100.
  if (std::getenv("DELTABENCH_SM90_TRAIN") == nullptr) CHECK(deltabench::detail::sm90_train());
  CHECK_FALSE(deltabench::detail::sm90_forward());
  // The environment's switch for it: 1 or unset on, 0 off, anything else a sentence that names the variable.
  using deltabench::detail::sm90_train_from_env;
  CHECK(sm90_train_from_env(nullptr));
  CHECK(sm90_train_from_env(""));
  CHECK_FALSE(sm90_train_from_env("0"));
  CHECK(sm90_train_from_env("1"));
  for (const char* bad : {"yes", "true", "2", " 1"}) {
    try {
      (void)sm90_train_from_env(bad);
      FAIL("no error for DELTABENCH_SM90_TRAIN=" << bad);
    } catch (const c10::Error& e) {
      const std::string what = e.what_without_backtrace();
      CHECK(what.find("DELTABENCH_SM90_TRAIN is \"" + std::string(bad) + "\"") != std::string::npos);
      CHECK(what.find("it takes 1") != std::string::npos);
    }
  }
  SequenceOptions defaults;
  CHECK_FALSE(defaults.kernel_recompute_ut);
}
