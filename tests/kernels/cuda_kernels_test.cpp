// GPU tests of the CUDA kernels (kernels/common/chunk_forward.cu, recurrent_decode.cu): against the
// fp32 recurrent reference on the same rounded inputs, outputs poisoned with NaN before each run;
// decode steps against the chunked forward; dispatch; CUDA-graph capture. Label "cuda".
// Cases tagged [small] are the ones scripts/device.sh runs under compute-sanitizer.

#include "kernels/common/backend.h"
#include "kernels/common/chunk_stages.h"
#include "kernels/common/chunk_train.h"
#include "kernels/common/cuda_dispatch.h"
#include "kernels/common/cuda_kernels.h"
#include "kernels/common/decode.h"
#include "kernels/common/poison.h"
#include "kernels/common/scoped_switch.h"
#include "kernels/common/sm90/sm90_kernels.h"
#include "kernels/common/validate.h"
#include "kernels/family.h"
#include "tests/support/catch.h"
#include "tests/support/sequence_checks.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <cstdint>
#include <iostream>
#include <sstream>
#include <utility>
#include <vector>

using namespace deltabench;

namespace {

const at::TensorOptions kCuda = at::TensorOptions().device(at::kCUDA);

struct Case {
  Family family;
  bool decay;  // linear attention with its optional scalar decay
};
const Case kCases[] = {{Family::kLinearAttention, false},
                       {Family::kLinearAttention, true},
                       {Family::kDeltaRule, false},
                       {Family::kGatedDeltaRule, false}};

std::string name(const Case& c) { return std::string(family_name(c.family)) + (c.decay ? "+decay" : ""); }

// For a case of the ops' forward alone: on a Hopper GPU the sm_90a forward, on by default (cuda_dispatch.h's
// set_sm90_forward), would take its calls in bf16 and fp16 at K 64 and 128; this file tests the first chunked
// kernel, which A100s run (tests/kernels/common/sm90/forward_cuda_test.cpp tests the sm_90a forward through the ops).
struct FirstChunkedKernel {
  deltabench::detail::ScopedKernelSwitch off{deltabench::detail::set_sm90_forward, deltabench::detail::sm90_forward,
                                             false};
};

// For a case of the chunked training pair: on a Hopper GPU the sm_90a training op, where set
// (cuda_dispatch.h's set_sm90_train), would take its calls at K and V of 64 and 128 in bf16 and fp16
// (tests/kernels/common/sm90/forward_cuda_test.cpp tests that op); and the forward alone the first chunked kernel, as above.
struct ChunkedPairOnly {
  deltabench::detail::ScopedKernelSwitch off{deltabench::detail::set_sm90_train, deltabench::detail::sm90_train, false};
  FirstChunkedKernel first;
};

SequenceInputs to(const SequenceInputs& in, at::ScalarType dtype) {
  // beta and g stay fp32: the kernels read them in fp32, as FLA keeps g.
  return {in.q.to(dtype), in.k.to(dtype), in.v.to(dtype), in.beta, in.g};
}

// Runs the kernel through its launcher into NaN-poisoned outputs.
SequenceOutput run_kernel(const Case& c, const SequenceInputs& in, const at::Tensor& h0, const std::vector<int64_t>& starts) {
  const int64_t H = in.q.size(2), K = in.q.size(3), V = in.v.size(3);
  const int64_t N = static_cast<int64_t>(starts.size()) - 1;
  SequenceOutput out;
  out.o = at::empty_like(in.v);
  out.final_state = at::empty({N, H, K, V}, kCuda.dtype(at::kFloat));
  poison_(out.o);
  poison_(out.final_state);
  const auto d_starts = at::tensor(starts, at::TensorOptions().dtype(at::kLong)).to(at::kCUDA);
  const auto beta = in.beta.defined() ? in.beta.contiguous() : at::Tensor();
  const auto g = in.g.defined() ? in.g.contiguous() : at::Tensor();
  cuda::ChunkParams p;
  p.family = c.family;
  p.dtype = in.q.scalar_type() == at::kBFloat16 ? cuda::Dtype::kBF16
            : in.q.scalar_type() == at::kHalf   ? cuda::Dtype::kFP16
                                                : cuda::Dtype::kFP32;
  p.q = in.q.data_ptr();
  p.k = in.k.data_ptr();
  p.v = in.v.data_ptr();
  p.beta = c.family == Family::kLinearAttention ? nullptr : beta.data_ptr<float>();
  p.g = g.defined() && c.family != Family::kDeltaRule ? g.data_ptr<float>() : nullptr;
  p.h0 = h0.defined() ? h0.data_ptr<float>() : nullptr;
  p.o = out.o.data_ptr();
  p.ht = out.final_state.data_ptr<float>();
  p.seq_starts = d_starts.data_ptr<int64_t>();
  p.N = N, p.H = H, p.K = K, p.V = V;
  p.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(K)));
  cuda::chunk_forward(p, at::cuda::getCurrentCUDAStream().stream());
  return out;
}

SequenceOutput reference_of(const Case& c, const SequenceInputs& rounded, const at::Tensor& h0, const at::Tensor& cu) {
  SequenceOptions o;
  o.mode = Mode::kRecurrent;
  o.initial_state = h0;
  o.output_final_state = true;
  o.cu_seqlens = cu;
  SequenceInputs in = to(rounded, at::kFloat);
  if (c.family == Family::kDeltaRule) in.g = at::Tensor();
  return run_family(c.family, in, o);
}

void check_case(const Case& c, int64_t B, int64_t T, int64_t K, at::ScalarType dtype, bool initial, uint64_t seed,
                int64_t V = 0) {
  V = V ? V : K;
  const SampleShape shape{B, T, 2, K, V};
  const auto in = to(sample_inputs(c.family, shape, kCuda.dtype(at::kFloat), seed, c.decay), dtype);
  const auto h0 = initial ? at::randn({B, 2, K, V}, kCuda.dtype(at::kFloat)) * 0.1 : at::Tensor();
  std::vector<int64_t> starts;
  for (int64_t b = 0; b <= B; ++b) starts.push_back(b * T);
  const auto got = run_kernel(c, in, h0, starts);
  const auto ref = reference_of(c, in, h0, {});
  INFO(name(c) << " B=" << B << " T=" << T << " K=" << K << " V=" << V << " " << dtype << (initial ? " h0" : ""));
  CHECK(testing::rel_rms(got.o.to(at::kFloat), ref.o) <= 0.003);
  CHECK(testing::rel_rms(got.final_state, ref.final_state) <= 0.003);
}

}  // namespace

TEST_CASE("cuda: the chunked forward kernel matches the fp32 recurrent reference", "[cuda][small]") {
  REQUIRE(at::hasCUDA());
  for (const auto& c : kCases) {
    for (const int64_t K : {64, 128}) {
      check_case(c, 2, 65, K, at::kBFloat16, true, 1);
    }
  }
}

TEST_CASE("cuda: the chunked forward kernel over lengths, head dims, dtypes and initial states", "[cuda]") {
  REQUIRE(at::hasCUDA());
  uint64_t seed = 10;
  for (const auto& c : kCases) {
    for (const int64_t K : {64, 128}) {
      for (const int64_t T : {1, 63, 64, 65, 1000, 4096}) {
        for (const bool initial : {false, true}) {
          check_case(c, T >= 4096 ? 1 : 2, T, K, at::kBFloat16, initial, ++seed);
        }
      }
      check_case(c, 2, 200, K, at::kHalf, true, ++seed);
      check_case(c, 2, 200, K, at::kFloat, true, ++seed);  // fp32 inputs take the SIMT version 1
    }
    check_case(c, 2, 200, 64, at::kBFloat16, true, ++seed, 128);
    check_case(c, 2, 200, 128, at::kBFloat16, true, ++seed, 64);
  }
}

TEST_CASE("cuda: the chunked forward kernel on a varlen batch", "[cuda][small]") {
  REQUIRE(at::hasCUDA());
  const std::vector<int64_t> lengths = {1, 63, 64, 65, 130, 7};
  std::vector<int64_t> starts = {0};
  for (const auto l : lengths) starts.push_back(starts.back() + l);
  const int64_t total = starts.back(), N = static_cast<int64_t>(lengths.size());
  for (const auto& c : kCases) {
    for (const int64_t K : {64, 128}) {
      const auto in = to(sample_inputs(c.family, SampleShape{1, total, 2, K, K}, kCuda.dtype(at::kFloat), 99, c.decay),
                         at::kBFloat16);
      const auto h0 = at::randn({N, 2, K, K}, kCuda.dtype(at::kFloat)) * 0.1;
      const auto got = run_kernel(c, in, h0, starts);
      const auto ref = reference_of(c, in, h0, at::tensor(starts, at::TensorOptions().dtype(at::kLong)).to(at::kCUDA));
      INFO(name(c) << " K=" << K);
      CHECK(testing::rel_rms(got.o.to(at::kFloat), ref.o) <= 0.003);
      CHECK(testing::rel_rms(got.final_state, ref.final_state) <= 0.003);
    }
  }
}

namespace {

// The segment-parallel pass (kernels/common/segments.h) through the public op, its segment length forced.
void check_segmented(const Case& c, const std::vector<int64_t>& lengths, int64_t H, int64_t K, int64_t V,
                     int64_t segment, bool initial, uint64_t seed) {
  std::vector<int64_t> starts = {0};
  for (const auto l : lengths) starts.push_back(starts.back() + l);
  const int64_t N = static_cast<int64_t>(lengths.size());
  const auto in = to(sample_inputs(c.family, SampleShape{1, starts.back(), H, K, V}, kCuda.dtype(at::kFloat), seed,
                                   c.decay),
                     at::kBFloat16);
  const auto cu = N > 1 ? at::tensor(starts, at::TensorOptions().dtype(at::kLong)).to(at::kCUDA) : at::Tensor();
  const auto h0 = initial ? at::randn({N, H, K, V}, kCuda.dtype(at::kFloat)) * 0.1 : at::Tensor();
  SequenceOptions o;
  o.cu_seqlens = cu;
  o.initial_state = h0;
  o.output_final_state = true;
  o.kernel_segment_length = segment;
  const auto got = run_family(c.family, in, o);
  const auto ref = reference_of(c, in, h0, cu);
  INFO(name(c) << " N=" << N << " tokens=" << starts.back() << " K=" << K << " V=" << V << " segment=" << segment
                << (initial ? " h0" : ""));
  CHECK(testing::rel_rms(got.o.to(at::kFloat), ref.o) <= 0.003);
  CHECK(testing::rel_rms(got.final_state, ref.final_state) <= 0.003);
}

}  // namespace

TEST_CASE("cuda: the segment-parallel pass on small shapes", "[cuda][small]") {
  REQUIRE(at::hasCUDA());
  for (const auto& c : kCases) {
    check_segmented(c, {300}, 2, 64, 64, 64, true, 31);
    check_segmented(c, {1, 130, 64}, 2, 128, 64, 64, true, 32);  // two transition slices
  }
}

TEST_CASE("cuda: the chunked training pair's forward takes the ops' segment length", "[cuda][small]") {
  // With a gradient the op runs the chunked training pair, whose forward is the fused kernel: in the segments
  // the caller asks, the same output as the forward alone in them, and not the whole pass's.
  REQUIRE(at::hasCUDA());
  const ChunkedPairOnly pair;
  for (const auto& c : kCases) {
    const auto in = to(sample_inputs(c.family, SampleShape{1, 300, 2, 64, 64}, kCuda.dtype(at::kFloat), 61, c.decay),
                       at::kBFloat16);
    const auto run = [&](int64_t segment, bool grad) {
      SequenceInputs x = in;
      if (grad) x.q = in.q.detach().clone().requires_grad_(true);
      SequenceOptions o;
      o.backend = BackendChoice::kKernel;
      o.kernel_segment_length = segment;
      return run_family(c.family, x, o).o.detach();
    };
    INFO(name(c));
    const auto trained = run(64, true);
    CHECK(at::equal(trained, run(64, false)));
    CHECK_FALSE(at::equal(trained, run(-1, true)));
  }
}

TEST_CASE("cuda: a CUDA graph capture that meets the segment-parallel pass fails, saying why", "[cuda][small]") {
  // Its offsets reach the device by a copy from pinned memory that a replay could not trust
  // (segments.h's device_offsets): the capture fails, so that a training step runs eagerly and says why.
  REQUIRE(at::hasCUDA());
  const FirstChunkedKernel first;
  const auto in = to(sample_inputs(Family::kDeltaRule, SampleShape{1, 300, 2, 64, 64}, kCuda.dtype(at::kFloat), 71, false),
                     at::kBFloat16);
  SequenceOptions o;
  o.backend = BackendChoice::kKernel;
  const auto capture = [&](int64_t segment, at::Tensor& out) {
    o.kernel_segment_length = segment;
    const auto eager = run_family(Family::kDeltaRule, in, o).o;  // eager first: the allocator and the kernels warm
    const auto side = at::cuda::getStreamFromPool();
    std::string message;
    {
      const c10::cuda::CUDAStreamGuard guard(side);
      at::cuda::CUDAGraph graph;
      graph.capture_begin();
      try {
        out = run_family(Family::kDeltaRule, in, o).o;
      } catch (const c10::Error& e) {
        message = e.what_without_backtrace();
      }
      graph.capture_end();
      if (message.empty()) {
        graph.replay();
        side.synchronize();
        CHECK(at::equal(out, eager));
      }
    }
    return message;
  };
  at::Tensor out;
  CHECK(capture(64, out).find("reach the device by a host copy, which a CUDA graph cannot replay (the stream is "
                              "capturing)") != std::string::npos);
  CHECK(capture(-1, out).empty());  // whole sequences: captured, and replayed to the eager output
}

TEST_CASE("cuda: the segment-parallel pass matches the fp32 recurrent reference", "[cuda]") {
  REQUIRE(at::hasCUDA());
  uint64_t seed = 40;
  for (const auto& c : kCases) {
    for (const auto& [K, V] : {std::pair<int64_t, int64_t>{128, 128}, {64, 64}, {128, 64}, {64, 128}}) {
      for (const bool initial : {false, true}) {
        check_segmented(c, {4096}, 2, K, V, 512, initial, ++seed);  // 8 segments
      }
      check_segmented(c, {2000}, 2, K, V, 256, true, ++seed);  // the last segment shorter
    }
    check_segmented(c, {1, 700, 64, 1000, 63}, 2, 128, 128, 128, true, ++seed);  // varlen
    check_segmented(c, {8192}, 4, 128, 128, 0, true, ++seed);  // the cost model's own choice
  }
}

TEST_CASE("cuda: the public ops use the kernels, with gradients the training kernels, unless told the reference",
          "[cuda]") {
  REQUIRE(at::hasCUDA());
  const FirstChunkedKernel first;
  for (const auto& c : kCases) {
    const auto in = to(sample_inputs(c.family, SampleShape{2, 100, 2, 64, 64}, kCuda.dtype(at::kFloat), 5, c.decay),
                       at::kBFloat16);
    SequenceOptions o;
    o.output_final_state = true;
    const auto fast = run_family(c.family, in, o);
    o.backend = BackendChoice::kReference;
    const auto slow = run_family(c.family, in, o);
    INFO(name(c));
    CHECK(fast.backend == Backend::kKernel);
    CHECK(slow.backend == Backend::kReference);
    CHECK(testing::rel_rms(fast.o.to(at::kFloat), slow.o.to(at::kFloat)) <= 0.01);
    CHECK(testing::rel_rms(fast.final_state, slow.final_state) <= 0.01);
    o.backend = BackendChoice::kKernel;
    CHECK(run_family(c.family, in, o).backend == Backend::kKernel);
    // With a gradient wanted the op stays differentiable: under auto the training kernels at head dim 64 and
    // 100 tokens (the sm_90a training op where set on a Hopper GPU, else the chunked pair), and the chunked pair at
    // head dims 32 and 256 (the stages' forward) at every length
    // (cuda_dispatch.cpp's auto_path); the reference when told.
    auto q = in.q.clone().requires_grad_(true);
    SequenceInputs grad_in = in;
    grad_in.q = q;
    o.backend = BackendChoice::kAuto;
    const auto trained = run_family(c.family, grad_in, o);
    CHECK(trained.backend == Backend::kKernel);
    CHECK(trained.o.requires_grad());
    for (const int64_t T : {100, 256}) {
      for (const int64_t D : {32, 256}) {
        auto other = to(sample_inputs(c.family, SampleShape{1, T, 2, D, D}, kCuda.dtype(at::kFloat), 5, c.decay),
                        at::kBFloat16);
        other.q = other.q.clone().requires_grad_(true);
        INFO("head dim " << D << ", T " << T);
        CHECK(run_family(c.family, other, o).backend == Backend::kKernel);
      }
    }
    o.backend = BackendChoice::kReference;
    const auto referenced = run_family(c.family, grad_in, o);
    CHECK(referenced.backend == Backend::kReference);
    CHECK(referenced.o.requires_grad());
    CHECK_FALSE(fast.o.requires_grad());
  }
}

TEST_CASE("cuda: backend = kernel where the kernel cannot serve is an error that says why", "[cuda]") {
  REQUIRE(at::hasCUDA());
  const FirstChunkedKernel first;
  const auto in = to(sample_inputs(Family::kDeltaRule, SampleShape{1, 70, 2, 64, 64}, kCuda.dtype(at::kFloat), 5),
                     at::kBFloat16);
  const auto message = [&](SequenceInputs x, SequenceOptions o) -> std::string {
    o.backend = BackendChoice::kKernel;
    try {
      (void)run_family(Family::kDeltaRule, x, o);
    } catch (const c10::Error& e) {
      return e.what_without_backtrace();
    }
    return "no error";
  };
  const std::string head = "delta_rule: backend = kernel, but deltabench's CUDA kernels cannot serve this call: ";
  CHECK_THAT(message(to(in, at::kDouble), {}),
             testing::contains(head + "the inputs are Double, and the kernel takes bf16, fp16 or fp32"));
  const auto odd = to(sample_inputs(Family::kDeltaRule, SampleShape{1, 70, 2, 48, 64}, kCuda.dtype(at::kFloat), 5),
                      at::kBFloat16);
  CHECK_THAT(message(odd, {}), testing::contains(head + "K = 48 and V = 64, and the kernels take K of 32, 64, 128 or "
                                                        "256 and V a multiple of 32"));
  SequenceInputs grad = odd;
  grad.k = odd.k.clone().requires_grad_(true);
  CHECK_THAT(message(grad, {}), testing::contains(head + "a gradient is needed, and for training K = 48 and V = 64, "
                                                         "and the training kernel takes K of 32, 64, 128 or 256"));
  // With a gradient the training kernels serve any mode.
  grad = in;
  grad.k = in.k.clone().requires_grad_(true);
  SequenceOptions o;
  o.mode = Mode::kRecurrent;
  CHECK(message(grad, o) == "no error");
}

TEST_CASE("cuda: backend = kernel serves the calls the chunk forward does not take, as the reference computes them",
          "[cuda]") {
  // Recurrent mode (the decode kernel; cu_seqlens: the training pair's forward), chunk sizes other
  // than 64 and head dims 32 and 256 (the training pair's forward without checkpoints).
  REQUIRE(at::hasCUDA());
  const FirstChunkedKernel first;
  struct Call {
    const char* what;
    SampleShape shape;
    Mode mode;
    int64_t chunk;
    bool packed;
  };
  const Call calls[] = {{"recurrent mode (decode), K 64", {2, 70, 2, 64, 64}, Mode::kRecurrent, 64, false},
                        {"recurrent mode, packed", {1, 90, 2, 64, 64}, Mode::kRecurrent, 64, true},
                        {"chunk 16, K 64", {2, 70, 2, 64, 64}, Mode::kChunk, 16, false},
                        {"K 32, V 64", {2, 70, 2, 32, 64}, Mode::kChunk, 64, false},
                        {"K 256, V 32", {2, 70, 2, 256, 32}, Mode::kChunk, 64, false},
                        // V + 1: linear attention's running denominator; zero columns up to 96 and 64.
                        {"K 64, V 65", {2, 70, 2, 64, 65}, Mode::kChunk, 64, false},
                        {"K 32, V 33, recurrent mode (decode)", {2, 70, 2, 32, 33}, Mode::kRecurrent, 64, false}};
  for (const auto family : kFamilies) {
    for (const auto& call : calls) {
      INFO(family_name(family) << ": " << call.what);
      const auto in32 = sample_inputs(family, call.shape, kCuda.dtype(at::kFloat), 31, /*decay=*/true);
      const auto in = to(in32, at::kBFloat16);
      SequenceOptions o;
      o.mode = call.mode;
      o.chunk_size = call.chunk;
      o.output_final_state = true;
      o.initial_state = at::randn({call.packed ? 3 : call.shape.B, call.shape.H, call.shape.K, call.shape.V},
                                  kCuda.dtype(at::kFloat)) * 0.1;
      if (call.packed) o.cu_seqlens = at::tensor(std::vector<int64_t>{0, 17, 60, 90}, kCuda.dtype(at::kLong));
      SequenceOptions ref = o;
      ref.backend = BackendChoice::kReference;
      ref.mode = Mode::kRecurrent;
      o.backend = BackendChoice::kKernel;
      const auto got = run_family(family, in, o);
      const auto want = run_family(family, to(in, at::kFloat), ref);
      CHECK(got.backend == Backend::kKernel);
      CHECK(testing::rel_rms(got.o.to(at::kFloat), want.o) <= 0.003);
      CHECK(testing::rel_rms(got.final_state, want.final_state) <= 0.003);
    }
  }
}

TEST_CASE("cuda: training on zero-padded V columns gives the unpadded reference's gradients", "[cuda][backward]") {
  // Linear attention's running denominator makes V = head dim + 1, which the kernels' 32-column tiles
  // do not divide. The first GPU test of the op's own padding (2026-12-04, removed in eec29f2) had o and
  // the final state right and every gradient off by 0.04-1.4 in relative RMS, also where the padded
  // shape runs a kernel that the fp64 gradient test passes; 1.4 is the sqrt(2) of two independent
  // random weightings, and that test drew o's weights after each run. Here the weights are drawn once,
  // before either run, and the test pads v and h0 itself, so the op sees a V of 96 or 64 and takes its
  // training kernels (the op still refuses a gradient through its own padding); the padded columns'
  // gradients must be zero, the rest the unpadded fp32 reference's. Passing says the padding is exact on
  // the kernels and the earlier failure was the test's weights.
  REQUIRE(at::hasCUDA());
  const ChunkedPairOnly pair;
  for (const auto family : kFamilies) {
    for (const auto& shape : {SampleShape{2, 100, 2, 64, 65}, SampleShape{2, 100, 2, 32, 33}}) {
      INFO(family_name(family) << ", K " << shape.K << ", V " << shape.V);
      const int64_t padded_v = (shape.V + 31) / 32 * 32;
      const auto in = to(sample_inputs(family, shape, kCuda.dtype(at::kFloat), 17, /*decay=*/true), at::kBFloat16);
      const auto h0 = at::randn({shape.B, shape.H, shape.K, shape.V}, kCuda.dtype(at::kFloat)) * 0.1;
      const auto w = at::randn({shape.B, shape.T, shape.H, shape.V}, kCuda.dtype(at::kFloat));  // o's weights
      const auto pad = [&](const at::Tensor& t) { return at::constant_pad_nd(t, {0, padded_v - shape.V}); };
      // o, the final state, then the gradients of q, k, v, beta, g (where defined) and h0, at the unpadded V.
      const auto run = [&](BackendChoice backend, at::ScalarType dtype, bool padded) {
        SequenceInputs x = to(in, dtype);
        std::vector<at::Tensor> leaves;
        for (auto* t : {&x.q, &x.k, &x.v, &x.beta, &x.g}) {
          if (t->defined()) leaves.push_back(*t = t->detach().clone().requires_grad_(true));
        }
        auto state = h0.clone().requires_grad_(true);
        leaves.push_back(state);
        SequenceOptions o;
        o.backend = backend;
        o.output_final_state = true;
        o.initial_state = padded ? pad(state) : state;
        if (padded) x.v = pad(x.v);
        const auto out = run_family(family, x, o);
        CHECK(out.backend == (backend == BackendChoice::kKernel ? Backend::kKernel : Backend::kReference));
        REQUIRE(out.o.size(-1) == (padded ? padded_v : shape.V));
        if (padded) {  // the zero columns stay zero
          CHECK(out.o.narrow(-1, shape.V, padded_v - shape.V).abs().max().item<float>() == 0.0f);
          CHECK(out.final_state.narrow(-1, shape.V, padded_v - shape.V).abs().max().item<float>() == 0.0f);
        }
        const auto o_used = out.o.narrow(-1, 0, shape.V).to(at::kFloat);
        const auto s_used = out.final_state.narrow(-1, 0, shape.V);
        (o_used * w).sum().add(s_used.pow(2).sum()).backward();
        std::vector<at::Tensor> result{o_used.detach(), s_used.detach()};
        for (const auto& t : leaves) result.push_back(t.grad().to(at::kFloat));
        return result;
      };
      const auto got = run(BackendChoice::kKernel, at::kBFloat16, /*padded=*/true);
      const auto want = run(BackendChoice::kReference, at::kFloat, /*padded=*/false);
      REQUIRE(got.size() == want.size());
      for (size_t i = 0; i < got.size(); ++i) {
        INFO("tensor " << i << " (o, final state, then the inputs' gradients in q, k, v, beta, g, h0 order)");
        CHECK(testing::rel_rms(got[i], want[i]) <= 0.007);  // the bf16 bounds: 0.003 to 0.007
      }
    }
  }
}

TEST_CASE("cuda: inputs that start off a 16-byte boundary give the same output", "[cuda]") {
  // A contiguous view one element into its storage: the dispatch copies it to an aligned tensor rather
  // than let the kernel's 16-byte loads misread it.
  REQUIRE(at::hasCUDA());
  const FirstChunkedKernel first;
  const Case c = kCases[3];  // the gated delta rule
  const auto in = to(sample_inputs(c.family, SampleShape{2, 100, 2, 64, 64}, kCuda.dtype(at::kFloat), 9, c.decay),
                     at::kBFloat16);
  const auto shifted = [](const at::Tensor& t) {
    auto storage = at::empty({t.numel() + 1}, t.options());
    auto view = storage.narrow(0, 1, t.numel()).view(t.sizes());
    view.copy_(t);
    return view;
  };
  SequenceInputs off = in;
  off.q = shifted(in.q);
  off.k = shifted(in.k);
  off.v = shifted(in.v);
  REQUIRE(reinterpret_cast<std::uintptr_t>(off.q.data_ptr()) % 16 != 0);
  SequenceOptions o;
  o.output_final_state = true;
  o.initial_state = shifted(at::randn({2, 2, 64, 64}, kCuda.dtype(at::kFloat)) * 0.1);
  const auto want = run_family(c.family, in, [&] {
    SequenceOptions aligned = o;
    aligned.initial_state = o.initial_state.clone();
    return aligned;
  }());
  const auto got = run_family(c.family, off, o);
  CHECK(testing::rel_rms(got.o.to(at::kFloat), want.o.to(at::kFloat)) == 0.0);
  CHECK(testing::rel_rms(got.final_state, want.final_state) == 0.0);
}

TEST_CASE("cuda: T decode steps equal the chunked forward, state updated in place", "[cuda][small]") {
  REQUIRE(at::hasCUDA());
  const FirstChunkedKernel first;
  for (const auto& c : kCases) {
    for (const int64_t K : {64, 128}) {
      const int64_t B = 3, T = 70, H = 2;
      const auto in = to(sample_inputs(c.family, SampleShape{B, T, H, K, K}, kCuda.dtype(at::kFloat), 7, c.decay),
                         at::kBFloat16);
      const auto h0 = at::randn({B, H, K, K}, kCuda.dtype(at::kFloat)) * 0.1;
      SequenceOptions o;
      o.initial_state = h0;
      o.output_final_state = true;
      const auto chunk = run_family(c.family, in, o);
      auto state = h0.clone();
      std::vector<at::Tensor> outs;
      for (int64_t t = 0; t < T; ++t) {
        const auto step = [&](const at::Tensor& x) { return x.defined() ? x.narrow(1, t, 1).contiguous() : x; };
        SequenceInputs one{step(in.q), step(in.k), step(in.v), step(in.beta), step(in.g)};
        auto out = at::empty_like(one.v);
        poison_(out);
        outs.push_back(recurrent_decode(c.family, one, state, std::nullopt, out));
      }
      INFO(name(c) << " K=" << K);
      CHECK(testing::rel_rms(at::cat(outs, 1).to(at::kFloat), chunk.o.to(at::kFloat)) <= 0.01);
      // The decode kernel is fp32 throughout: its state matches the fp32 reference to fp32 rounding.
      // The chunked kernel rounds its tensor-core operands to 16 bits, so against it the bound is its
      // own against the reference, 0.003 (H100: 0.0016 at most, linear attention's bf16 operands).
      const auto ref = reference_of(c, in, h0, {});
      CHECK(testing::rel_rms(state, ref.final_state) <= 1e-4);
      CHECK(testing::rel_rms(state, chunk.final_state) <= 0.003);
      // A few steps in one call equal the same steps one by one.
      auto state2 = h0.clone();
      const auto all = recurrent_decode(c.family, in, state2);
      CHECK(testing::rel_rms(state2, state) <= 1e-5);
      CHECK(testing::rel_rms(all.to(at::kFloat), at::cat(outs, 1).to(at::kFloat)) <= 1e-2);
    }
  }
}

TEST_CASE("cuda: a decode step captured in a CUDA graph replays as eager steps", "[cuda]") {
  REQUIRE(at::hasCUDA());
  const Case c{Family::kGatedDeltaRule, false};
  const int64_t B = 4, H = 16, K = 128;
  const auto in = to(sample_inputs(c.family, SampleShape{B, 1, H, K, K}, kCuda.dtype(at::kFloat), 3), at::kBFloat16);
  const auto h0 = at::randn({B, H, K, K}, kCuda.dtype(at::kFloat)) * 0.1;
  auto eager_state = h0.clone();
  at::Tensor eager_out;
  for (int i = 0; i < 5; ++i) eager_out = recurrent_decode(c.family, in, eager_state);

  auto state = h0.clone();
  auto out = at::empty_like(in.v);
  const auto side = at::cuda::getStreamFromPool();
  {
    const c10::cuda::CUDAStreamGuard guard(side);
    at::cuda::CUDAGraph graph;
    graph.capture_begin();
    recurrent_decode(c.family, in, state, std::nullopt, out);
    graph.capture_end();
    state.copy_(h0);
    for (int i = 0; i < 5; ++i) graph.replay();
    side.synchronize();
  }
  CHECK(testing::rel_rms(state, eager_state) <= 1e-6);
  CHECK(testing::rel_rms(out.to(at::kFloat), eager_out.to(at::kFloat)) <= 1e-3);
}

TEST_CASE("cuda: decode rejects a state it cannot update in place", "[cuda]") {
  REQUIRE(at::hasCUDA());
  const auto in = to(sample_inputs(Family::kDeltaRule, SampleShape{2, 1, 2, 64, 64}, kCuda.dtype(at::kFloat), 3),
                     at::kBFloat16);
  auto half_state = at::zeros({2, 2, 64, 64}, kCuda.dtype(at::kHalf));
  CHECK_THROWS_AS(recurrent_decode(Family::kDeltaRule, in, half_state), c10::Error);
  auto wrong = at::zeros({2, 2, 64, 32}, kCuda.dtype(at::kFloat));
  CHECK_THROWS_AS(recurrent_decode(Family::kDeltaRule, in, wrong), c10::Error);
}

namespace {

// Freed NaN-filled blocks in the caching allocator: the next allocations (the backward's gradient
// buffers among them) start as NaN, so an element a kernel never writes fails the comparison.
void poison_allocator_cache() {
  for (int64_t bytes : {int64_t{1} << 20, int64_t{1} << 24, int64_t{1} << 27}) {
    auto t = at::empty({bytes / 4}, kCuda.dtype(at::kFloat));
    poison_(t);
  }
}

// A chunk-parallel kernel's output against the fp64 ATen stages': defined alike, the same sizes, finite,
// within `bound` in relative RMS; appends " what err" to `line`. With `base`, what came in before the
// kernel added to it, both sides less `base` are compared.
void check_against_stages(std::ostringstream& line, const char* what, const at::Tensor& got, const at::Tensor& want,
                          double bound, const at::Tensor& base = {}) {
  INFO(what);
  REQUIRE(got.defined() == want.defined());
  if (!got.defined()) return;
  REQUIRE(got.sizes() == want.sizes());
  REQUIRE(at::isfinite(got).all().item<bool>());
  const auto less = [&](const at::Tensor& t) { return base.defined() ? t - base.to(t.scalar_type()) : t; };
  const double err = testing::rel_rms(less(got.to(at::kDouble)), less(want));
  line << " " << what << " " << err;
  CHECK(err <= bound);
}

struct TrainCase {
  SampleShape shape;
  std::vector<int64_t> cu_seqlens;  // empty: rows of T
};

}  // namespace

TEST_CASE("cuda: the training kernels' output and gradients match the fp64 reference's", "[cuda][backward]") {
  REQUIRE(at::hasCUDA());
  const ChunkedPairOnly pair;
  // T around the checkpoint interval (16) and the chunk (64), long sequences, head dims 32 to 256,
  // K != V, varlen. Under backend kernel, head dims 32 and 256 and V 256 take the chunked pair with the
  // stages' forward (K 128, V 256: a Gated DeltaNet layer at d_model 256), the rest its fused forward. The sequences of 1000 and 4096 steps run in bf16 and fp16 with an initial state only
  // (the fp64 reference walks them step by step).
  const TrainCase shapes[] = {{{2, 1, 2, 64, 64}, {}},     {{2, 15, 2, 64, 64}, {}},   {{2, 16, 2, 64, 64}, {}},
                              {{2, 17, 2, 64, 64}, {}},    {{1, 63, 2, 64, 64}, {}},   {{1, 64, 2, 64, 64}, {}},
                              {{1, 65, 2, 64, 64}, {}},    {{1, 100, 3, 64, 64}, {}},  {{2, 70, 2, 128, 128}, {}},
                              {{1, 40, 2, 64, 128}, {}},   {{2, 50, 2, 32, 64}, {}},   {{1, 40, 1, 256, 64}, {}},
                              {{1, 200, 1, 256, 64}, {}},  {{1, 100, 2, 128, 256}, {}},
                              {{1, 100, 2, 64, 64}, {0, 5, 40, 100}},                   {{1, 1000, 2, 64, 64}, {}},
                              {{1, 4096, 1, 128, 128}, {}}};
  for (const auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    for (const auto& c : kCases) {
      for (const auto& s : shapes) {
        for (const bool with_h0 : {false, true}) {
          const bool long_case = s.shape.T >= 1000;
          if (long_case && (dtype == at::kFloat || !with_h0)) continue;
          const int64_t N = s.cu_seqlens.empty() ? s.shape.B : static_cast<int64_t>(s.cu_seqlens.size()) - 1;
          const auto in = to(sample_inputs(c.family, s.shape, kCuda.dtype(at::kFloat), 11, c.decay), dtype);
          const auto h0 = with_h0 ? at::randn({N, s.shape.H, s.shape.K, s.shape.V}, kCuda.dtype(at::kFloat)) * 0.5
                                  : at::Tensor();
          at::manual_seed(1000 + s.shape.T);  // the same do and dht for a case whatever ran before it
          const auto o_grad = at::randn_like(in.v, at::kFloat);
          const auto ht_grad = at::randn({N, s.shape.H, s.shape.K, s.shape.V}, kCuda.dtype(at::kFloat));
          // Runs the op with gradients to every input; returns o, the final state and the gradients.
          const auto run = [&](at::ScalarType as, BackendChoice backend, Mode mode) {
            const auto leaf = [&](const at::Tensor& t) {
              return t.defined()
                         ? t.detach().to(as == at::kDouble ? at::kDouble : t.scalar_type()).clone().requires_grad_(true)
                         : at::Tensor();
            };
            SequenceInputs x{leaf(in.q), leaf(in.k), leaf(in.v), leaf(in.beta), leaf(in.g)};
            SequenceOptions o;
            o.backend = backend;
            o.mode = mode;
            o.output_final_state = true;
            o.initial_state =
                with_h0 ? h0.detach().to(as == at::kDouble ? at::kDouble : at::kFloat).clone().requires_grad_(true)
                        : at::Tensor();
            if (!s.cu_seqlens.empty()) o.cu_seqlens = at::tensor(s.cu_seqlens, at::kLong).to(at::kCUDA);
            poison_allocator_cache();
            const auto out = run_family(c.family, x, o);
            const auto loss = (out.o.to(at::kDouble) * o_grad.to(at::kDouble)).sum() +
                              (out.final_state.to(at::kDouble) * ht_grad.to(at::kDouble)).sum();
            loss.backward();
            std::vector<at::Tensor> r = {out.o.detach(), out.final_state.detach()};
            for (const auto& t : {x.q, x.k, x.v, x.beta, x.g, o.initial_state}) {
              r.push_back(t.defined() ? t.grad() : at::Tensor());
            }
            return std::make_pair(out.backend, r);
          };
          const auto [backend, got] = run(dtype, BackendChoice::kKernel, Mode::kChunk);
          const auto [ref_backend, ref] = run(at::kDouble, BackendChoice::kReference, Mode::kRecurrent);
          const bool bf16 = dtype != at::kFloat;  // and fp16, whose rounding is finer
          // FLA's bf16 figures (the backward-kernel issue); fp32 to 1e-4.
          const double bounds[] = {0.003, 0.004, 0.004, 0.007, 0.004, 0.005, 0.006, 0.004};
          const char* names[] = {"o", "ht", "dq", "dk", "dv", "dbeta", "dg", "dh0"};
          INFO(name(c) << " " << testing::case_name(s.shape, dtype) << (s.cu_seqlens.empty() ? "" : " varlen")
                       << (with_h0 ? " h0" : ""));
          CHECK(backend == Backend::kKernel);
          CHECK(ref_backend == Backend::kReference);
          std::ostringstream line;
          line << "training kernel " << name(c) << " " << testing::case_name(s.shape, dtype)
               << (s.cu_seqlens.empty() ? "" : " varlen") << (with_h0 ? " h0" : "") << ":";
          for (size_t i = 0; i < got.size(); ++i) {
            INFO(names[i]);
            REQUIRE(got[i].defined() == ref[i].defined());
            if (!got[i].defined()) continue;
            REQUIRE(at::isfinite(got[i]).all().item<bool>());
            const double err = testing::rel_rms(got[i].to(at::kDouble), ref[i]);
            line << " " << names[i] << " " << err;
            CHECK(err <= (bf16 ? bounds[i] : 1e-4));
          }
          std::cout << line.str() << "\n";
        }
      }
    }
  }
}

TEST_CASE("cuda: the chunked backward's CUDA state passes equal its ATen loops", "[cuda][backward]") {
  REQUIRE(at::hasCUDA());
  // Both column slices (32 wide for many sequences and heads, 16 for few), K of 32, 64, 128 and 256 (16
  // columns always), V a multiple of 16 only and V 256, varlen, with and without initial state. fp32 inputs take the SIMT passes and
  // agree with the loops to rounding; bf16 inputs take the tensor-core passes where K is 128 (or 64 with
  // 32-column slices), TF32 products like the loops' under the same setting, to a few TF32 roundings.
  const TrainCase shapes[] = {{{1, 130, 2, 64, 64}, {}},      {{8, 200, 20, 32, 48}, {}},
                              {{1, 300, 1, 128, 128}, {}},    {{1, 190, 2, 64, 32}, {0, 3, 64, 190}},
                              {{40, 70, 4, 128, 64}, {}},     {{16, 100, 8, 64, 64}, {}},
                              {{2, 150, 2, 256, 48}, {}},     {{1, 130, 2, 128, 256}, {}}};
  const char* names[] = {"o", "ht", "dq", "dk", "dv", "dbeta", "dg", "dh0"};
  std::vector<std::pair<at::ScalarType, Case>> runs;
  for (const auto dtype : {at::kFloat, at::kBFloat16}) {
    for (const auto& c : kCases) runs.emplace_back(dtype, c);
  }
  for (const auto& [dtype, c] : runs) {
    for (const auto& s : shapes) {
      for (const bool with_h0 : {false, true}) {
        const int64_t N = s.cu_seqlens.empty() ? s.shape.B : static_cast<int64_t>(s.cu_seqlens.size()) - 1;
        const auto in = to(sample_inputs(c.family, s.shape, kCuda.dtype(at::kFloat), 23, c.decay), dtype);
        at::manual_seed(7);
        const auto h0 = with_h0 ? at::randn({N, s.shape.H, s.shape.K, s.shape.V}, kCuda.dtype(at::kFloat)) : at::Tensor();
        const auto o_grad = at::randn_like(in.v);
        const auto ht_grad = at::randn({N, s.shape.H, s.shape.K, s.shape.V}, kCuda.dtype(at::kFloat));
        const auto run = [&](bool state_kernels) {
          const auto leaf = [](const at::Tensor& t) {
            return t.defined() ? t.detach().clone().requires_grad_(true) : at::Tensor();
          };
          SequenceInputs x{leaf(in.q), leaf(in.k), leaf(in.v), leaf(in.beta), leaf(in.g)};
          SequenceOptions o;
          o.output_final_state = true;
          o.initial_state = leaf(h0);
          if (!s.cu_seqlens.empty()) o.cu_seqlens = at::tensor(s.cu_seqlens, at::kLong).to(at::kCUDA);
          const auto shape = deltabench::detail::validate_sequence_inputs("chunk_train", x.q, x.k, x.v, x.beta, x.g, o);
          poison_allocator_cache();
          const auto out = deltabench::detail::chunk_train_stages(c.family, shape, x.q, x.k, x.v, x.beta, x.g, o, state_kernels);
          ((out.o * o_grad).sum() + (out.final_state * ht_grad).sum()).backward();
          std::vector<at::Tensor> r = {out.o.detach(), out.final_state.detach()};
          for (const auto& t : {x.q, x.k, x.v, x.beta, x.g, o.initial_state}) r.push_back(t.defined() ? t.grad() : at::Tensor());
          return r;
        };
        const auto got = run(true), want = run(false);
        INFO(name(c) << " " << testing::case_name(s.shape, dtype) << (s.cu_seqlens.empty() ? "" : " varlen")
                     << (with_h0 ? " h0" : ""));
        for (size_t i = 0; i < got.size(); ++i) {
          INFO(names[i]);
          REQUIRE(got[i].defined() == want[i].defined());
          if (!got[i].defined()) continue;
          REQUIRE(at::isfinite(got[i]).all().item<bool>());
          CHECK(testing::rel_rms(got[i].to(at::kFloat), want[i].to(at::kFloat)) <= (dtype == at::kFloat ? 1e-5 : 5e-3));
        }
      }
    }
  }
}

TEST_CASE("cuda: the chunked backward's chunk-parallel kernels equal its ATen stages in fp64", "[cuda][backward][small]") {
  REQUIRE(at::hasCUDA());
  // kernels/common/chunk_dout.cu and chunk_grads.cu against chunk_train.cpp's batched products in fp64,
  // on the same fp32 operands: K 32, 64, 128; V a multiple of 32 (32-column slices) and of 16 only; with
  // and without a decay (dG) and a W (dW). TF32 products: a few of TF32's roundings (2^-11) in relative RMS.
  namespace chunked = deltabench::detail::chunked;
  struct GradCase {
    int64_t K, V;
    bool decay, w;
  };
  const GradCase cases[] = {{32, 16, true, true},   {32, 96, false, true},   {64, 48, true, false},
                            {64, 64, false, false}, {64, 64, true, true},    {128, 128, true, true},
                            {128, 128, false, true}, {128, 256, true, true}, {128, 80, false, false}};
  const int64_t N = 2, H = 3, NT = 3, C = chunked::kC;
  for (const auto& gc : cases) {
    at::manual_seed(31 + gc.K + gc.V);
    const auto f32 = kCuda.dtype(at::kFloat);
    chunked::Inputs in;
    in.q = at::randn({N, H, NT, C, gc.K}, f32) * (1.0 / std::sqrt(static_cast<double>(gc.K)));
    in.k = at::randn({N, H, NT, C, gc.K}, f32);
    in.v = at::randn({N, H, NT, C, gc.V}, f32);
    if (gc.decay) in.G = (-at::rand({N, H, NT, C}, f32) * 0.2).cumsum(-1);  // log decays in (-0.2, 0)
    const auto h = at::randn({N, H, NT, gc.K, gc.V}, f32), dh = at::randn({N, H, NT, gc.K, gc.V}, f32);
    const auto v_new = at::randn({N, H, NT, C, gc.V}, f32), dv_new = at::randn({N, H, NT, C, gc.V}, f32);
    const auto dout = at::randn({N, H, NT, C, gc.V}, f32);
    const auto run = [&](at::ScalarType as, bool kernels) {
      const auto cast = [as](const at::Tensor& t) { return t.defined() ? t.to(as) : at::Tensor(); };
      chunked::Inputs x{cast(in.q), cast(in.k), cast(in.v), at::Tensor(), cast(in.G)};
      auto p = chunked::prepare_shared(x);
      if (gc.w) p.W = x.k;  // walk_grads reads only whether the family has a W
      return chunked::walk_grads(x, p, cast(h), cast(v_new), cast(dout), cast(dh), cast(dv_new), kernels,
                                 /*tf32=*/kernels);
    };
    poison_allocator_cache();  // an element the kernels leave unwritten reads NaN
    const auto got = run(at::kFloat, true), want = run(at::kDouble, false);
    // dout's terms before the walk, from the same inputs.
    const auto terms = [&](at::ScalarType as, bool kernels) {
      const auto cast = [as](const at::Tensor& t) { return t.defined() ? t.to(as) : at::Tensor(); };
      chunked::Inputs x{cast(in.q), cast(in.k), cast(in.v), at::Tensor(), cast(in.G)};
      return chunked::dout_terms(x, chunked::prepare_shared(x), cast(dout), kernels, /*tf32=*/kernels);
    };
    poison_allocator_cache();
    const auto got_terms = terms(at::kFloat, true), want_terms = terms(at::kDouble, false);
    INFO("K=" << gc.K << " V=" << gc.V << (gc.decay ? " decay" : "") << (gc.w ? " W" : ""));
    CHECK(got.kernel);
    CHECK_FALSE(want.kernel);
    CHECK(got_terms.kernel);
    CHECK_FALSE(want_terms.kernel);
    const std::pair<const char*, std::pair<at::Tensor, at::Tensor>> outs[] = {
        {"dv_local", {got_terms.dv_local, want_terms.dv_local}},
        {"qdo", {got_terms.qdo, want_terms.qdo}},
        {"dq", {got.dq, want.dq}},
        {"dk", {got.dk, want.dk}},
        {"dG", {got.dG, want.dG}},
        // dG but each chunk's last entry, whose sum of h dh over K x V would hide the others' errors
        {"dG rows", {got.dG.defined() ? got.dG.narrow(-1, 0, C - 1) : at::Tensor(),
                     want.dG.defined() ? want.dG.narrow(-1, 0, C - 1) : at::Tensor()}},
        {"dW", {got.dW, want.dW}}};
    std::ostringstream line;
    line << "chunk_dout, chunk_grads K=" << gc.K << " V=" << gc.V << (gc.decay ? " decay" : "") << (gc.w ? " W" : "") << ":";
    for (const auto& [what, pair] : outs) check_against_stages(line, what, pair.first, pair.second, 2e-3);
    std::cout << line.str() << "\n";
  }
}

TEST_CASE("cuda: the delta rules' UT-transform kernels equal their ATen stages in fp64", "[cuda][backward][small]") {
  REQUIRE(at::hasCUDA());
  // kernels/delta_rule/chunk_ut_fwd.cu and chunk_ut_bwd.cu against kernels/delta_rule/chunk_bwd.cpp's
  // ATen stages in fp64, on the same fp32 inputs and incoming dk, dG: K 32, 64, 128; V a multiple of 32
  // and of 16 only; with and without a decay. Keys L2-normalised and beta in (0, 1), as the layers give
  // them, so that (I + A)^-1 stays well conditioned. TF32 products: a few of TF32's roundings in relative
  // RMS. The fp32 run takes both kernels: its backward reads the forward kernel's A and T.
  namespace chunked = deltabench::detail::chunked;
  struct UtCase {
    int64_t K, V;
    bool decay;
  };
  const UtCase cases[] = {{32, 16, true}, {32, 64, false}, {64, 48, true}, {64, 64, false},
                          {128, 128, true}, {128, 128, false}, {128, 256, true}, {128, 80, true}};
  const int64_t N = 2, H = 3, NT = 3, C = chunked::kC;
  const auto stages = chunked::delta_rule_stages();
  for (const auto& uc : cases) {
    at::manual_seed(41 + uc.K + uc.V);
    const auto f32 = kCuda.dtype(at::kFloat);
    chunked::Inputs in;
    in.q = at::randn({N, H, NT, C, uc.K}, f32);
    in.k = at::randn({N, H, NT, C, uc.K}, f32);
    in.k = in.k / in.k.norm(2, -1, true);
    in.v = at::randn({N, H, NT, C, uc.V}, f32);
    in.beta = at::sigmoid(at::randn({N, H, NT, C}, f32));
    if (uc.decay) in.G = (-at::rand({N, H, NT, C}, f32) * 0.2).cumsum(-1);
    const auto dW = at::randn({N, H, NT, C, uc.K}, f32), dU = at::randn({N, H, NT, C, uc.V}, f32);
    const auto dk_in = at::randn({N, H, NT, C, uc.K}, f32);
    const auto dG_in = uc.decay ? at::randn({N, H, NT, C}, f32) : at::Tensor();
    const auto run = [&](at::ScalarType as, bool kernels) {
      const auto cast = [as](const at::Tensor& t) { return t.defined() ? t.to(as).contiguous() : at::Tensor(); };
      chunked::Inputs x{cast(in.q), cast(in.k), cast(in.v), cast(in.beta), cast(in.G)};
      auto p = chunked::prepare_shared(x);
      stages.prepare(x, p, kernels, /*tf32=*/kernels);
      chunked::Grads g;
      g.dk = cast(dk_in).clone();
      if (uc.decay) g.dG = cast(dG_in).clone();
      stages.backward(x, p, cast(dW), cast(dU), g, kernels);
      return std::make_pair(p, g);
    };
    // so that the fp32 run below takes the kernels (it has no scaled operands if it did)
    REQUIRE(cuda::chunk_ut_forward_supports(uc.K, uc.V));
    REQUIRE(cuda::chunk_ut_backward_supports(uc.K, uc.V));
    poison_allocator_cache();  // an element the kernels leave unwritten reads NaN
    const auto [got_p, got] = run(at::kFloat, true);
    const auto [want_p, want] = run(at::kDouble, false);
    CHECK_FALSE(got_p.kbeta.defined());
    CHECK(want_p.kbeta.defined());
    // The backward kernel reads T as lower triangular and A as strictly lower: exact zeros elsewhere.
    CHECK(at::triu(got_p.Tinv, 1).abs().max().item<float>() == 0.0f);
    CHECK(at::triu(got_p.A, 0).abs().max().item<float>() == 0.0f);
    INFO("K=" << uc.K << " V=" << uc.V << (uc.decay ? " decay" : ""));
    const std::pair<const char*, std::pair<at::Tensor, at::Tensor>> outs[] = {
        {"A", {got_p.A, want_p.A}},       {"Tinv", {got_p.Tinv, want_p.Tinv}}, {"W", {got_p.W, want_p.W}},
        {"U", {got_p.U, want_p.U}},       {"dk", {got.dk, want.dk}},         {"dv", {got.dv, want.dv}},
        {"dbeta", {got.dbeta, want.dbeta}}, {"dG", {got.dG, want.dG}}};
    std::ostringstream line;
    line << "chunk_ut_forward, chunk_ut_backward K=" << uc.K << " V=" << uc.V << (uc.decay ? " decay" : "") << ":";
    for (const auto& [what, pair] : outs) {
      // dk and dG come in as dk_in and dG_in: the error is of what the transform adds.
      const std::string name = what;
      const auto base = name == "dk" ? dk_in : name == "dG" ? dG_in : at::Tensor();
      check_against_stages(line, what, pair.first, pair.second, 3e-3, base);
    }
    std::cout << line.str() << "\n";
  }
}

TEST_CASE("cuda: the op's gradients with the stage kernels set off equal theirs, by another path", "[cuda][backward]") {
  // set_chunk_stage_kernels(false) (kernels_bench's aten-stages rows) must give the ATen stages' gradients:
  // the same to TF32's rounding, and not the same bits, which says another path ran.
  REQUIRE(at::hasCUDA());
  const ChunkedPairOnly pair;
  for (const auto& c : {kCases[1], kCases[2], kCases[3]}) {
    const auto in = to(sample_inputs(c.family, SampleShape{2, 150, 2, 64, 64}, kCuda.dtype(at::kFloat), 9, c.decay),
                       at::kBFloat16);
    const auto grads = [&](bool stage_kernels) {
      const deltabench::detail::ScopedKernelSwitch stages(deltabench::detail::set_chunk_stage_kernels,
                                                          deltabench::detail::chunk_stage_kernels, stage_kernels);
      SequenceInputs x = in;
      x.q = in.q.clone().requires_grad_(true);
      x.k = in.k.clone().requires_grad_(true);
      x.v = in.v.clone().requires_grad_(true);
      SequenceOptions o;
      o.backend = BackendChoice::kKernel;
      const auto out = run_family(c.family, x, o);
      out.o.to(at::kFloat).pow(2).sum().backward();
      return std::vector<at::Tensor>{x.q.grad().to(at::kFloat), x.k.grad().to(at::kFloat), x.v.grad().to(at::kFloat)};
    };
    REQUIRE(deltabench::detail::chunk_stage_kernels());  // on unless set off
    const auto on = grads(true), off = grads(false);
    INFO(name(c));
    for (size_t i = 0; i < on.size(); ++i) {
      CHECK(testing::rel_rms(on[i], off[i]) <= 5e-3);
      CHECK_FALSE(at::equal(on[i], off[i]));
    }
  }
}

TEST_CASE("cuda: auto and kernel train on the training kernels, reference on the reference; backward counted",
          "[cuda][backward]") {
  REQUIRE(at::hasCUDA());
  const auto in = to(sample_inputs(Family::kGatedDeltaRule, SampleShape{2, 256, 2, 64, 64}, kCuda.dtype(at::kFloat), 5),
                     at::kBFloat16);
  SequenceInputs x = in;
  x.q = in.q.clone().requires_grad_(true);
  // Head dim 64 in bf16: the sm_90a training op where it is set and runs (a Hopper GPU), which the count
  // names; the chunked pair with it off.
  const bool hopper = cuda::sm90::available();
  for (const bool sm90 : {false, true}) {
    const deltabench::detail::ScopedKernelSwitch on(deltabench::detail::set_sm90_train, deltabench::detail::sm90_train, sm90);
    for (const auto choice : {BackendChoice::kAuto, BackendChoice::kKernel, BackendChoice::kReference}) {
      SequenceOptions o;
      o.backend = choice;
      const auto before = backend_counts();
      const auto out = run_family(Family::kGatedDeltaRule, x, o);
      out.o.to(at::kFloat).sum().backward();
      const auto phase = backend_counts() - before;
      const bool kernel = choice != BackendChoice::kReference;
      INFO("sm90 " << sm90 << ", backend " << backend_choice_name(choice));
      CHECK(out.backend == (kernel ? Backend::kKernel : Backend::kReference));
      CHECK(backward_backend(phase) ==
            (!kernel ? "reference (ATen autograd)" : sm90 && hopper ? "kernel (sm_90a)" : "kernel"));
      CHECK(phase.kernel_sm90 == (kernel && sm90 && hopper ? 1 : 0));
      CHECK(at::isfinite(x.q.grad()).all().item<bool>());
      x.q.mutable_grad() = at::Tensor();
    }
  }
}

TEST_CASE("cuda: the training kernels take q, k and v strided as the short convolution leaves them", "[cuda][backward]") {
  // [B, T, H, D] views of [B, H, D, T] storage (the last dim not contiguous): the layout kernel does not
  // serve them, and the copy that does must still hand the state passes contiguous fp32 buffers (an fp32
  // model step once failed there). Gradients equal the contiguous inputs'.
  REQUIRE(at::hasCUDA());
  const auto strided = [](const at::Tensor& t) {
    auto storage = at::empty({t.size(0), t.size(2), t.size(3), t.size(1)}, t.options());
    auto view = storage.permute({0, 3, 1, 2});
    view.copy_(t);
    return view;
  };
  for (const auto dtype : {at::kFloat, at::kBFloat16}) {
    for (const auto& c : {kCases[2], kCases[3]}) {  // the delta rule and the gated delta rule
      const auto in = to(sample_inputs(c.family, SampleShape{2, 100, 2, 64, 64}, kCuda.dtype(at::kFloat), 5, c.decay),
                         dtype);
      const auto grads = [&](bool strides) {
        SequenceInputs x = in;
        x.q = (strides ? strided(in.q) : in.q.clone()).requires_grad_(true);
        x.k = (strides ? strided(in.k) : in.k.clone()).requires_grad_(true);
        x.v = (strides ? strided(in.v) : in.v.clone()).requires_grad_(true);
        REQUIRE(x.q.stride(3) == (strides ? 100 : 1));
        SequenceOptions o;
        o.backend = BackendChoice::kKernel;
        const auto out = run_family(c.family, x, o);
        out.o.to(at::kFloat).pow(2).sum().backward();
        return std::vector<at::Tensor>{out.o.to(at::kFloat), x.q.grad().to(at::kFloat), x.k.grad().to(at::kFloat),
                                       x.v.grad().to(at::kFloat)};
      };
      const auto want = grads(false), got = grads(true);
      INFO(name(c) << " " << c10::toString(dtype));
      for (size_t i = 0; i < want.size(); ++i) CHECK(testing::rel_rms(got[i], want[i]) <= 1e-6);
    }
  }
}

TEST_CASE("cuda: the training kernels on a small case (for compute-sanitizer)", "[cuda][backward][small]") {
  REQUIRE(at::hasCUDA());
  const ChunkedPairOnly pair;
  // Head dims 64 (the SIMT state passes) and 128 (the tensor-core ones) with the fused forward, 256 (the
  // SIMT passes in 16-column slices) with the stages' forward.
  std::vector<std::pair<Case, int64_t>> runs;
  for (const auto& c : kCases) {
    for (const int64_t D : {64, 128, 256}) runs.emplace_back(c, D);
  }
  for (const auto& [c, D] : runs) {
    const auto in = to(sample_inputs(c.family, SampleShape{1, 37, 1, D, D}, kCuda.dtype(at::kFloat), 3, c.decay),
                       at::kBFloat16);
    SequenceInputs x = in;
    x.q = in.q.clone().requires_grad_(true);
    x.k = in.k.clone().requires_grad_(true);
    x.v = in.v.clone().requires_grad_(true);
    if (in.beta.defined()) x.beta = in.beta.clone().requires_grad_(true);
    if (in.g.defined()) x.g = in.g.clone().requires_grad_(true);
    SequenceOptions o;
    o.backend = BackendChoice::kKernel;
    o.output_final_state = true;
    o.initial_state = at::randn({1, 1, D, D}, kCuda.dtype(at::kFloat)).requires_grad_(true);
    const auto out = run_family(c.family, x, o);
    (out.o.to(at::kFloat).sum() + out.final_state.sum()).backward();
    INFO(name(c));
    for (const auto& t : {x.q, x.k, x.v, x.beta, x.g, o.initial_state}) {
      if (t.defined()) CHECK(at::isfinite(t.grad()).all().item<bool>());
    }
  }
}
