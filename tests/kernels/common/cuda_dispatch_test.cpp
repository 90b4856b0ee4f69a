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
  CHECK(forward_backend(hopper) == "kernel (sm_90a)");
  hopper.kernel = hopper.kernel_with_grad = 5;
  CHECK(backward_backend(hopper) == "kernel (sm_90a) + kernel");
  hopper.reference = hopper.reference_with_grad = 1;
  CHECK(backward_backend(hopper) == "kernel (sm_90a) + kernel + reference (ATen autograd)");
  hopper += hopper;
  CHECK(hopper.kernel_sm90 == 6);
  CHECK((hopper - BackendCounts{0, 0, 0, 0, 2}).kernel_sm90 == 4);
  CHECK(forward_backend(hopper) == "kernel (sm_90a) + kernel + reference");
  // The forward alone on the sm_90a forward (an evaluation phase), named as the training op is, and kept over epochs.
  BackendCounts eval;
  eval.kernel = eval.kernel_sm90_forward = 4;
  CHECK(forward_backend(eval) == "kernel (sm_90a)");
  CHECK(backward_backend(eval) == "none");
  eval.kernel = 6;
  CHECK(forward_backend(eval) == "kernel (sm_90a) + kernel");
  eval += eval;
  CHECK(eval.kernel_sm90_forward == 8);
  CHECK((eval - BackendCounts{0, 0, 0, 0, 0, 3}).kernel_sm90_forward == 5);
  CHECK(forward_backend(p) == "kernel");
  const BackendCounts later{3, 2, 5, 4};
  const auto d = later - BackendCounts{1, 1, 1, 1};
  CHECK(d.reference == 2);
  CHECK(d.reference_with_grad == 1);
  CHECK(d.kernel == 4);
  CHECK(d.kernel_with_grad == 3);
}

TEST_CASE("the sm_90a training op and forward are on by default; the op keeps W, U, T, h and v_new", "[kernels]") {
  // The training op since the models' GPU tests passed on it (kernels/delta_rule/NOTES.md, version 3j); the
  // forward alone since it beat the first chunked kernel at 4 x 8K and 1 x 32K by 1.4-2.1x (H100, twenty-first
  // session). Each where its environment variable does not say 0.
  if (std::getenv("DELTABENCH_SM90_TRAIN") == nullptr) CHECK(deltabench::detail::sm90_train());
  if (std::getenv("DELTABENCH_SM90_FORWARD") == nullptr) CHECK(deltabench::detail::sm90_forward());
  // The environment's switches: 1 or unset on, 0 off, anything else a sentence that names the variable.
  using Parse = bool (*)(const char*);
  const std::pair<const char*, Parse> switches[] = {{"DELTABENCH_SM90_TRAIN", deltabench::detail::sm90_train_from_env},
                                                    {"DELTABENCH_SM90_FORWARD", deltabench::detail::sm90_forward_from_env}};
  for (const auto& [name, parse] : switches) {
    CAPTURE(name);
    CHECK(parse(nullptr));
    CHECK(parse(""));
    CHECK_FALSE(parse("0"));
    CHECK(parse("1"));
    for (const char* bad : {"yes", "true", "2", " 1"}) {
      try {
        (void)parse(bad);
        FAIL("no error for " << name << "=" << bad);
      } catch (const c10::Error& e) {
        const std::string what = e.what_without_backtrace();
        CHECK(what.find(std::string(name) + " is \"" + bad + "\"") != std::string::npos);
        CHECK(what.find("it takes 1") != std::string::npos);
      }
    }
  }
  SequenceOptions defaults;
  CHECK_FALSE(defaults.kernel_recompute_ut);
  CHECK_FALSE(defaults.kernel_recompute_state);
}
