#include "tests/support/sequence_checks.h"

#include "tests/support/catch.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>
#include <fmt/format.h>

#include <cmath>
#include <limits>

namespace deltabench::testing {
namespace {

const auto kF64 = at::TensorOptions().dtype(at::kDouble);

std::string_view dtype_name(at::ScalarType dtype) {
  switch (dtype) {
    case at::kDouble: return "fp64";
    case at::kFloat: return "fp32";
    case at::kHalf: return "fp16";
    case at::kBFloat16: return "bf16";
    default: return "other";
  }
}

at::Tensor random_state(const SampleShape& s, int64_t N, at::TensorOptions options, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::normal(0.0, 1.0, {N, s.H, s.K, s.V}, gen, kF64).to(options);
}

std::vector<at::Tensor*> defined_inputs(SequenceInputs& in) {
  std::vector<at::Tensor*> out = {&in.q, &in.k, &in.v};
  if (in.beta.defined()) out.push_back(&in.beta);
  if (in.g.defined()) out.push_back(&in.g);
  return out;
}

}  // namespace

double rel_rms(const at::Tensor& got, const at::Tensor& ref) {
  const auto g = got.detach().to(at::kCPU, at::kDouble);
  const auto r = ref.detach().to(at::kCPU, at::kDouble);
  const double denom = r.norm().item<double>();
  const double diff = (g - r).norm().item<double>();
  if (std::isnan(diff)) return std::numeric_limits<double>::infinity();  // NaN never passes
  return denom > 0 ? diff / denom : diff;
}

std::string case_name(const SampleShape& s, at::ScalarType dtype) {
  const std::string dims = s.K == s.V ? fmt::format("D{}", s.K) : fmt::format("K{}-V{}", s.K, s.V);
  return fmt::format("B{}-T{}-H{}-{}-{}", s.B, s.T, s.H, dims, dtype_name(dtype));
}

void check_chunk_equals_recurrent(Family family, bool decay) {
  uint64_t seed = 1;
  for (const auto dtype : {at::kDouble, at::kFloat}) {
    const double tolerance = dtype == at::kDouble ? kFp64Tolerance : kFp32Tolerance;
    for (const int64_t T : {1, 63, 64, 65, 200}) {
      for (const int64_t D : {16, 60, 64}) {
        const SampleShape shape{2, T, 2, D, D};
        const auto options = at::TensorOptions().dtype(dtype);
        const auto in = sample_inputs(family, shape, options, ++seed, decay);
        SequenceOptions recurrent;
        recurrent.mode = Mode::kRecurrent;
        recurrent.output_final_state = true;
        recurrent.initial_state = random_state(shape, shape.B, options, seed);
        const auto ref = run_family(family, in, recurrent);
        for (const int64_t C : {16, 32, 64}) {
          SequenceOptions chunk = recurrent;
          chunk.mode = Mode::kChunk;
          chunk.chunk_size = C;
          const auto out = run_family(family, in, chunk);
          const double o_err = rel_rms(out.o, ref.o);
          const double s_err = rel_rms(out.final_state, ref.final_state);
          INFO(family_name(family) << " " << case_name(shape, dtype) << "-C" << C << ": o err " << o_err
                                   << ", state err " << s_err << ", tolerance " << tolerance);
          CHECK(o_err < tolerance);
          CHECK(s_err < tolerance);
        }
      }
    }
  }
}

void check_gradients(Family family, Mode mode, bool decay) {
  const SampleShape shape{2, 20, 2, 4, 3};  // 20 = one chunk of 16 and a partial one
  auto in = sample_inputs(family, shape, kF64, 7, decay);
  auto h0 = random_state(shape, shape.B, kF64, 8);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(9);
  const auto w_o = at::normal(0.0, 1.0, {shape.B, shape.T, shape.H, shape.V}, gen, kF64);
  const auto w_s = at::normal(0.0, 1.0, {shape.B, shape.H, shape.K, shape.V}, gen, kF64);

  SequenceOptions options;
  options.mode = mode;
  options.chunk_size = 16;
  options.output_final_state = true;
  // A scalar function of every output: <o, w_o> + <final_state, w_s>.
  const auto loss = [&](const SequenceInputs& x, const at::Tensor& state) {
    SequenceOptions o = options;
    o.initial_state = state;
    const auto out = run_family(family, x, o);
    return (out.o * w_o).sum() + (out.final_state * w_s).sum();
  };

  // Autograd.
  auto leaves = defined_inputs(in);
  leaves.push_back(&h0);
  for (auto* t : leaves) t->requires_grad_(true);
  loss(in, h0).backward();
  std::vector<at::Tensor> grads;
  for (auto* t : leaves) {
    REQUIRE(t->grad().defined());
    grads.push_back(t->grad().clone());
  }

  // Central differences, one element at a time.
  c10::NoGradGuard no_grad;
  std::vector<std::string> leaf_names = {"q", "k", "v"};
  if (in.beta.defined()) leaf_names.push_back("beta");
  if (in.g.defined()) leaf_names.push_back("g");
  leaf_names.push_back("initial_state");
  constexpr double eps = 1e-6;
  for (size_t i = 0; i < leaves.size(); ++i) {
    at::Tensor x = leaves[i]->detach().clone();
    auto numeric = at::zeros_like(x);
    auto flat = x.view(-1);
    auto numeric_flat = numeric.view(-1);
    for (int64_t j = 0; j < flat.numel(); ++j) {
      const double original = flat[j].item<double>();
      const auto evaluate = [&](double value) {
        flat[j] = value;
        SequenceInputs probe{in.q.detach(), in.k.detach(), in.v.detach(),
                             in.beta.defined() ? in.beta.detach() : at::Tensor(),
                             in.g.defined() ? in.g.detach() : at::Tensor()};
        at::Tensor state = h0.detach();
        if (i + 1 == leaves.size()) {
          state = x;
        } else {
          *defined_inputs(probe)[i] = x;
        }
        return loss(probe, state).item<double>();
      };
      const double up = evaluate(original + eps);
      const double down = evaluate(original - eps);
      flat[j] = original;
      numeric_flat[j] = (up - down) / (2 * eps);
    }
    const double err = rel_rms(grads[i], numeric);
    INFO(family_name(family) << (mode == Mode::kChunk ? " chunk" : " recurrent") << " d"
                             << leaf_names[i] << ": relative error " << err);
    CHECK(err < kGradTolerance);
  }
}

void check_state_continuation(Family family, Mode mode, bool decay) {
  const SampleShape shape{2, 100, 2, 16, 8};
  const int64_t T1 = 37;  // not on a chunk boundary
  const auto in = sample_inputs(family, shape, kF64, 11, decay);
  const auto slice = [&](int64_t from, int64_t to) {
    const auto s = [&](const at::Tensor& t) { return t.defined() ? t.slice(1, from, to) : t; };
    return SequenceInputs{s(in.q), s(in.k), s(in.v), s(in.beta), s(in.g)};
  };
  SequenceOptions options;
  options.mode = mode;
  options.chunk_size = 16;
  options.output_final_state = true;
  options.initial_state = random_state(shape, shape.B, kF64, 12);
  const auto whole = run_family(family, in, options);
  const auto first = run_family(family, slice(0, T1), options);
  SequenceOptions rest_options = options;
  rest_options.initial_state = first.final_state;
  const auto rest = run_family(family, slice(T1, shape.T), rest_options);

  const double o_err = rel_rms(at::cat({first.o, rest.o}, 1), whole.o);
  const double s_err = rel_rms(rest.final_state, whole.final_state);
  INFO(family_name(family) << " continuation at " << T1 << ": o err " << o_err << ", state err " << s_err);
  CHECK(o_err < kFp64Tolerance);
  CHECK(s_err < kFp64Tolerance);
}

void check_varlen(Family family, Mode mode, bool decay) {
  const std::vector<int64_t> starts = {0, 1, 40, 64, 129, 200};  // lengths 1, 39, 24, 65, 71
  const int64_t N = static_cast<int64_t>(starts.size()) - 1;
  const SampleShape shape{1, starts.back(), 2, 16, 8};
  const auto in = sample_inputs(family, shape, kF64, 21, decay);
  SequenceOptions options;
  options.mode = mode;
  options.chunk_size = 16;
  options.output_final_state = true;
  options.initial_state = random_state(shape, N, kF64, 22);
  options.cu_seqlens = at::tensor(starts, at::kLong).to(at::kInt);
  const auto packed = run_family(family, in, options);

  for (int64_t i = 0; i < N; ++i) {
    const auto s = [&](const at::Tensor& t) { return t.defined() ? t.slice(1, starts[i], starts[i + 1]) : t; };
    SequenceOptions alone = options;
    alone.cu_seqlens = at::Tensor();
    alone.initial_state = options.initial_state.slice(0, i, i + 1);
    const auto ref = run_family(family, {s(in.q), s(in.k), s(in.v), s(in.beta), s(in.g)}, alone);
    const double o_err = rel_rms(s(packed.o), ref.o);
    const double s_err = rel_rms(packed.final_state.slice(0, i, i + 1), ref.final_state);
    INFO(family_name(family) << " varlen sequence " << i << " [" << starts[i] << ", " << starts[i + 1]
                             << "): o err " << o_err << ", state err " << s_err);
    CHECK(o_err < kFp64Tolerance);
    CHECK(s_err < kFp64Tolerance);
  }
}

void check_device_matches_cpu(Family family, const at::Device& device) {
  const SampleShape shape{2, 130, 4, 64, 64};
  const auto cpu = sample_inputs(family, shape, kF64, 31, /*decay=*/true);
  SequenceOptions options;
  options.output_final_state = true;
  options.mode = Mode::kRecurrent;
  const auto ref = run_family(family, cpu, options);
  for (const auto dtype : {at::kDouble, at::kFloat}) {
    const double tolerance = dtype == at::kDouble ? kFp64Tolerance : kFp32Tolerance;
    const auto in = sample_inputs(family, shape, at::TensorOptions().dtype(dtype).device(device), 31, true);
    for (const Mode mode : {Mode::kChunk, Mode::kRecurrent}) {
      options.mode = mode;
      const auto out = run_family(family, in, options);
      REQUIRE(out.o.device() == device);
      const double o_err = rel_rms(out.o, ref.o);
      const double s_err = rel_rms(out.final_state, ref.final_state);
      INFO(family_name(family) << " on " << device << " " << case_name(shape, dtype)
                               << (mode == Mode::kChunk ? " chunk" : " recurrent") << ": o err " << o_err
                               << ", state err " << s_err);
      CHECK(o_err < tolerance);
      CHECK(s_err < tolerance);
    }
  }
}

}  // namespace deltabench::testing
