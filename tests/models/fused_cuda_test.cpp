// Tests models/fused_cuda.cpp and the kernels under it (kernels/common/causal_conv1d.cu, l2_norm.cu) on a
// GPU. The short convolution: output and both gradients against the fp64 definition on the CPU, for fp32,
// bf16 and fp16, kernel sizes 2 to 4, with and without SiLU, at shapes that cross the kernels' time tiles
// (64 steps) and channel blocks (128) and end inside them. The L2 normalisation: output and gradient
// against the fp64 definition for head dims 32 to 256 and row counts that leave a block part-full, a zero
// row among them. The output norm (RMSNorm, with and without its SiLU gate): output and the gradients of x,
// the weight and the gate, with more rows than the kernels' blocks hold at once. For each: the raw kernels
// with NaN-poisoned outputs, so an element never written fails; the modules' kernel backend against their
// ATen form; the sentences for calls the kernels cannot serve. The LayerNorm (kernels/common/row_norm.cu):
// output and the gradients of x, weight and bias against the fp64 definition, D from 1 to 512, and
// against ATen's under autocast. The embedding's gradient (kernels/common/embedding_backward.cu): against
// the fp64 sum for id patterns that stress its chunks (one token everywhere, MQAR's mostly-blank rows,
// every token once, runs across chunk ends), bit for bit the same on a second run.

#include "kernels/common/causal_conv1d.h"
#include "kernels/common/embedding_backward.h"
#include "kernels/common/l2_norm.h"
#include "kernels/common/row_norm.h"
#include "kernels/common/poison.h"
#include "models/fused_cuda.h"
#include "models/gates.h"
#include "models/language_model.h"
#include "models/norm.h"
#include "models/pieces.h"
#include "models/short_conv.h"
#include "tests/support/catch.h"
#include "tests/support/sequence_checks.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/cuda/CUDAContext.h>
#include <fmt/core.h>
#include <ATen/Context.h>
#include <torch/csrc/autograd/function.h>

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

using namespace deltabench;
using testing::rel_rms;

namespace {

// The definition in fp64 on the CPU: y[b, t, c] = act(sum_j w[c, j] x[b, t - K + 1 + j, c]).
at::Tensor conv_definition(const at::Tensor& x, const at::Tensor& w, bool silu) {
  const int64_t T = x.size(1), K = w.size(1);
  const auto padded = at::constant_pad_nd(x, {0, 0, K - 1, 0});
  at::Tensor y = at::zeros_like(x);
  for (int64_t j = 0; j < K; ++j) y = y + padded.narrow(1, j, T) * w.select(1, j);
  return silu ? at::silu(y) : y;
}

double tolerance(at::ScalarType t) {
  switch (t) {
    case at::kBFloat16: return 1e-2;  // the inputs and outputs rounded to bf16; fp32 inside
    case at::kHalf: return 2e-3;
    default: return 1e-5;
  }
}

struct Shape {
  int64_t B, T, C, K;
};

// bf16 autocast on CUDA for its lifetime (train::AutocastGuard's, which this test does not link).
class Autocast {
 public:
  explicit Autocast(bool on) : on_(on) {
    if (!on_) return;
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    at::autocast::increment_nesting();
  }
  ~Autocast() {
    if (!on_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(at::kCUDA, false);
  }
  Autocast(const Autocast&) = delete;
  Autocast& operator=(const Autocast&) = delete;

 private:
  bool on_;
};

const std::vector<Shape> kShapes = {{2, 1, 8, 4},    {3, 63, 40, 4},  {2, 64, 128, 4},
                                    {2, 65, 130, 3}, {1, 200, 256, 2}, {4, 129, 64, 4}};

// The names of every autograd node behind y (a graph walk from its grad_fn).
std::set<std::string> autograd_names(const at::Tensor& y) {
  std::set<std::string> names;
  std::vector<std::shared_ptr<torch::autograd::Node>> todo{y.grad_fn()};
  std::set<const torch::autograd::Node*> seen;
  while (!todo.empty()) {
    const auto node = todo.back();
    todo.pop_back();
    if (!node || !seen.insert(node.get()).second) continue;
    names.insert(node->name());
    for (const auto& edge : node->next_edges()) todo.push_back(edge.function);
  }
  return names;
}

bool has_node(const std::set<std::string>& names, std::string_view part) {
  return std::any_of(names.begin(), names.end(), [&](const std::string& n) { return n.find(part) != std::string::npos; });
}

}  // namespace

TEST_CASE("cuda: the short convolution's kernels match the fp64 definition, output and gradients", "[cuda]") {
  REQUIRE(at::hasCUDA());
  const at::Device gpu(at::kCUDA, 0);
  int checked = 0;
  for (const auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    for (const auto& s : kShapes) {
      for (const bool silu : {true, false}) {
        const auto name = fmt::format("B{}-T{}-C{}-K{}-{}-{}", s.B, s.T, s.C, s.K, c10::toString(dtype),
                                      silu ? "silu" : "linear");
        INFO(name);
        at::manual_seed(1000 + checked);
        const auto x64 = at::randn({s.B, s.T, s.C}, at::kDouble);
        const auto w64 = at::randn({s.C, s.K}, at::kDouble) * 0.5;
        const auto dy64 = at::randn({s.B, s.T, s.C}, at::kDouble);
        // The definition and its gradients (ATen autograd, fp64, CPU), on the inputs as the GPU sees them.
        const auto x_ref = x64.to(dtype).to(at::kDouble).requires_grad_(true);
        const auto w_ref = w64.to(at::kFloat).to(at::kDouble).requires_grad_(true);
        const auto y_ref = conv_definition(x_ref, w_ref, silu);
        y_ref.backward(dy64.to(dtype).to(at::kDouble));
        // The kernels, through the autograd function; the weight an fp32 leaf as the model's parameter is.
        const auto x = x64.to(gpu, dtype).requires_grad_(true);
        const auto w = w64.to(gpu, at::kFloat).requires_grad_(true);
        const auto y = models::causal_conv1d_cuda(x, w, silu);
        y.backward(dy64.to(gpu, dtype));
        REQUIRE(y.scalar_type() == dtype);
        REQUIRE(x.grad().scalar_type() == dtype);
        REQUIRE(w.grad().scalar_type() == at::kFloat);
        const double e_y = rel_rms(y.detach().cpu(), y_ref.detach());
        const double e_dx = rel_rms(x.grad().cpu(), x_ref.grad());
        const double e_dw = rel_rms(w.grad().cpu(), w_ref.grad());
        CHECK(e_y <= tolerance(dtype));
        CHECK(e_dx <= tolerance(dtype));
        // dw sums B T products of rounded inputs in fp32: bf16's rounding of x and dy sets its error.
        CHECK(e_dw <= tolerance(dtype));
        ++checked;
      }
    }
  }
  CHECK(checked == 3 * static_cast<int>(kShapes.size()) * 2);
}

TEST_CASE("cuda: the short convolution's raw kernels write every output element (NaN-poisoned first)", "[cuda]") {
  REQUIRE(at::hasCUDA());
  const at::Device gpu(at::kCUDA, 0);
  for (const auto& s : kShapes) {
    INFO(fmt::format("B{}-T{}-C{}-K{}", s.B, s.T, s.C, s.K));
    const auto opts = at::TensorOptions().device(gpu).dtype(at::kBFloat16);
    const auto x = at::randn({s.B, s.T, s.C}, opts);
    const auto w = at::randn({s.C, s.K}, opts.dtype(at::kFloat));
    const auto dy = at::randn({s.B, s.T, s.C}, opts);
    auto y = at::empty({s.B, s.T, s.C}, opts), dx = at::empty({s.B, s.T, s.C}, opts);
    auto parts = at::empty({s.B * cuda::causal_conv1d_tiles(s.T), s.C, s.K}, opts.dtype(at::kFloat));
    poison_(y);
    poison_(dx);
    poison_(parts);
    cuda::CausalConvParams p;
    p.dtype = cuda::Dtype::kBF16;
    p.x = x.const_data_ptr(), p.w = w.const_data_ptr<float>(), p.y = y.mutable_data_ptr();
    p.dy = dy.const_data_ptr(), p.dx = dx.mutable_data_ptr(), p.dw_parts = parts.mutable_data_ptr<float>();
    p.B = s.B, p.T = s.T, p.C = s.C, p.K = s.K;
    const auto stream = at::cuda::getCurrentCUDAStream().stream();
    cuda::causal_conv1d_forward(p, stream);
    cuda::causal_conv1d_backward(p, stream);
    CHECK(at::isfinite(y).all().item<bool>());
    CHECK(at::isfinite(dx).all().item<bool>());
    CHECK(at::isfinite(parts).all().item<bool>());
  }
}

TEST_CASE("cuda: ShortConvolution under the kernel backend equals its ATen form, forward and backward", "[cuda]") {
  REQUIRE(at::hasCUDA());
  const at::Device gpu(at::kCUDA, 0);
  for (const bool silu : {true, false}) {
    INFO((silu ? "silu" : "linear"));
    torch::manual_seed(7);
    models::ShortConvolution aten(96, 4, silu, BackendChoice::kReference);
    models::ShortConvolution ours(96, 4, silu, BackendChoice::kKernel);
    {
      torch::NoGradGuard no_grad;
      ours->weight.copy_(aten->weight);
    }
    aten->to(gpu);
    ours->to(gpu);
    const auto x0 = at::randn({3, 150, 96}, at::TensorOptions().device(gpu));
    const auto dy = at::randn({3, 150, 96}, at::TensorOptions().device(gpu));
    const auto xa = x0.clone().requires_grad_(true), xo = x0.clone().requires_grad_(true);
    const auto ya = aten->forward(xa), yo = ours->forward(xo);
    ya.backward(dy);
    yo.backward(dy);
    // ATen may run the fp32 convolution through cuDNN, in TF32 by default (about 3e-4): the bound allows it.
    CHECK(rel_rms(yo.detach().cpu(), ya.detach().cpu()) <= 2e-3);
    CHECK(rel_rms(xo.grad().cpu(), xa.grad().cpu()) <= 2e-3);
    CHECK(rel_rms(ours->weight.grad().cpu(), aten->weight.grad().cpu()) <= 2e-3);
  }
}

TEST_CASE("cuda: the short convolution's kernels refuse what they cannot serve, with a sentence", "[cuda]") {
  REQUIRE(at::hasCUDA());
  const at::Device gpu(at::kCUDA, 0);
  const auto x = at::randn({2, 10, 16}, at::TensorOptions().device(gpu));
  CHECK(models::cuda_conv1d_serves(x, 4).empty());
  CHECK(models::cuda_conv1d_serves(x, 5) == "the kernel size is 5; the kernels take 2 to 4");
  CHECK(models::cuda_conv1d_serves(x.to(at::kDouble), 4) == "x is Double; the kernels take fp32, bf16 and fp16");
  CHECK(models::cuda_conv1d_serves(x.cpu(), 4) == "x is on cpu, not a CUDA device");
  CHECK_THROWS_WITH(models::causal_conv1d_cuda(x, at::randn({16, 5}, x.options()), true),
                    testing::contains("the CUDA kernels do not serve this call: the kernel size is 5"));
  CHECK_THROWS_WITH(models::causal_conv1d_cuda(x, at::randn({8, 4}, x.options()), true),
                    testing::contains("expected x [B, T, C] and weight [C, K] with the same C"));
  models::ShortConvolution five(16, 5, true, BackendChoice::kKernel);
  five->to(gpu);
  CHECK_THROWS_WITH(five->forward(x), testing::contains("short convolution: backend kernel was asked for, but "
                                                        "deltabench's CUDA kernels do not serve this call: the "
                                                        "kernel size is 5"));
}

TEST_CASE("cuda: the L2 normalisation's kernels match the fp64 definition, output and gradient", "[cuda]") {
  REQUIRE(at::hasCUDA());
  const at::Device gpu(at::kCUDA, 0);
  int checked = 0;
  for (const auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    for (const auto& [rows, D] : std::vector<std::pair<int64_t, int64_t>>{{1, 64}, {13, 32}, {37, 100}, {64, 128}, {9, 256}}) {
      INFO(fmt::format("rows {} D {} {}", rows, D, c10::toString(dtype)));
      at::manual_seed(2000 + checked);
      auto x64 = at::randn({rows, D}, at::kDouble);
      x64[0].zero_();  // a zero row: r = eps^(-1/2), y = 0
      const auto dy64 = at::randn({rows, D}, at::kDouble);
      const auto x_ref = x64.to(dtype).to(at::kDouble).requires_grad_(true);
      const auto y_ref = x_ref * at::rsqrt(x_ref.pow(2).sum(-1, true) + 1e-6);
      y_ref.backward(dy64.to(dtype).to(at::kDouble));
      const auto x = x64.to(gpu, dtype).requires_grad_(true);
      const auto y = models::l2_normalize_cuda(x, 1e-6);
      y.backward(dy64.to(gpu, dtype));
      REQUIRE(y.scalar_type() == dtype);
      REQUIRE(x.grad().scalar_type() == dtype);
      CHECK(rel_rms(y.detach().cpu(), y_ref.detach()) <= tolerance(dtype));
      CHECK(rel_rms(x.grad().cpu(), x_ref.grad()) <= tolerance(dtype));
      ++checked;
    }
  }
  CHECK(checked == 15);
}

TEST_CASE("cuda: the L2 normalisation's raw kernels write every output element (NaN-poisoned first)", "[cuda]") {
  REQUIRE(at::hasCUDA());
  const auto opts = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  for (const int64_t rows : {1, 7, 9, 1000}) {
    INFO("rows " << rows);
    const auto x = at::randn({rows, 64}, opts), dy = at::randn({rows, 64}, opts);
    auto y = at::empty_like(x), dx = at::empty_like(x);
    auto rstd = at::empty({rows}, opts.dtype(at::kFloat));
    poison_(y);
    poison_(dx);
    poison_(rstd);
    cuda::L2NormParams p;
    p.dtype = cuda::Dtype::kBF16;
    p.x = x.const_data_ptr(), p.y = y.mutable_data_ptr(), p.rstd = rstd.mutable_data_ptr<float>();
    p.dy = dy.const_data_ptr(), p.dx = dx.mutable_data_ptr(), p.rows = rows, p.D = 64;
    const auto stream = at::cuda::getCurrentCUDAStream().stream();
    cuda::l2_norm_forward(p, stream);
    cuda::l2_norm_backward(p, stream);
    CHECK(at::isfinite(y).all().item<bool>());
    CHECK(at::isfinite(rstd).all().item<bool>());
    CHECK(at::isfinite(dx).all().item<bool>());
  }
}

TEST_CASE("cuda: qk_norm l2 under the kernel backend equals its ATen form, and refuses with a sentence", "[cuda]") {
  REQUIRE(at::hasCUDA());
  const auto opts = at::TensorOptions().device(at::kCUDA);
  const auto x0 = at::randn({3, 50, 2, 64}, opts);  // [B, T, H, K], as the layers call it
  const auto dy = at::randn({3, 50, 2, 64}, opts);
  const auto xa = x0.clone().requires_grad_(true), xo = x0.clone().requires_grad_(true);
  const auto ya = models::apply_qk_norm(xa, models::QkNorm::kL2, 1e-6, BackendChoice::kReference);
  const auto yo = models::apply_qk_norm(xo, models::QkNorm::kL2, 1e-6, BackendChoice::kKernel);
  ya.backward(dy);
  yo.backward(dy);
  CHECK(rel_rms(yo.detach().cpu(), ya.detach().cpu()) <= 1e-5);
  CHECK(rel_rms(xo.grad().cpu(), xa.grad().cpu()) <= 1e-5);
  CHECK(models::cuda_l2_norm_serves(x0.to(at::kDouble)) == "x is Double; the kernels take fp32, bf16 and fp16");
  CHECK_THROWS_WITH(models::apply_qk_norm(x0.to(at::kDouble), models::QkNorm::kL2, 1e-6, BackendChoice::kKernel),
                    testing::contains("qk_norm l2: backend kernel was asked for, but deltabench's CUDA kernels do not "
                                      "serve this call: x is Double"));
}

TEST_CASE("cuda: the output norm's kernels match the fp64 definition, output and gradients, gated or not", "[cuda]") {
  REQUIRE(at::hasCUDA());
  const at::Device gpu(at::kCUDA, 0);
  int checked = 0;
  for (const auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    // 20,000 rows: more than the 1,024 blocks of 8 warps take at once, so warps loop over rows.
    // D 300 and 512: 16 columns a lane (Gated DeltaNet's output norm over V 512 at d_model 512).
    for (const auto& [rows, D] : std::vector<std::pair<int64_t, int64_t>>{
             {1, 64}, {13, 32}, {37, 100}, {20000, 64}, {9, 256}, {5, 300}, {70, 512}}) {
      for (const bool gated : {false, true}) {
        INFO(fmt::format("rows {} D {} {} {}", rows, D, c10::toString(dtype), gated ? "gated" : "plain"));
        at::manual_seed(3000 + checked);
        const double eps = 1e-5;
        const auto x64 = at::randn({rows, D}, at::kDouble), g64 = at::randn({rows, D}, at::kDouble);
        const auto w64 = 1.0 + 0.1 * at::randn({D}, at::kDouble), dz64 = at::randn({rows, D}, at::kDouble);
        const auto x_ref = x64.to(dtype).to(at::kDouble).requires_grad_(true);
        const auto g_ref = g64.to(dtype).to(at::kDouble).requires_grad_(true);
        const auto w_ref = w64.to(at::kFloat).to(at::kDouble).requires_grad_(true);
        auto z_ref = x_ref * at::rsqrt(x_ref.pow(2).mean(-1, true) + eps) * w_ref;
        if (gated) z_ref = z_ref * at::silu(g_ref);
        z_ref.backward(dz64.to(dtype).to(at::kDouble));
        const auto x = x64.to(gpu, dtype).requires_grad_(true), g = g64.to(gpu, dtype).requires_grad_(true);
        const auto w = w64.to(gpu, at::kFloat).requires_grad_(true);
        const auto z = models::rms_norm_cuda(x, w, gated ? g : at::Tensor(), eps);
        z.backward(dz64.to(gpu, dtype));
        REQUIRE(z.scalar_type() == dtype);
        REQUIRE(w.grad().scalar_type() == at::kFloat);
        CHECK(rel_rms(z.detach().cpu(), z_ref.detach()) <= tolerance(dtype));
        CHECK(rel_rms(x.grad().cpu(), x_ref.grad()) <= tolerance(dtype));
        CHECK(rel_rms(w.grad().cpu(), w_ref.grad()) <= tolerance(dtype));
        if (gated) {
          CHECK(rel_rms(g.grad().cpu(), g_ref.grad()) <= tolerance(dtype));
        } else {
          CHECK_FALSE(g.grad().defined());
        }
        ++checked;
      }
    }
  }
  CHECK(checked == 42);
}

TEST_CASE("cuda: the output norm's raw kernels write every output element (NaN-poisoned first)", "[cuda]") {
  REQUIRE(at::hasCUDA());
  const auto opts = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  for (const int64_t rows : {1, 9, 20000}) {
    INFO("rows " << rows);
    const auto x = at::randn({rows, 100}, opts), g = at::randn({rows, 100}, opts), dz = at::randn({rows, 100}, opts);
    const auto w = at::randn({100}, opts.dtype(at::kFloat));
    auto z = at::empty_like(x), dx = at::empty_like(x), dg = at::empty_like(x);
    auto rstd = at::empty({rows}, opts.dtype(at::kFloat));
    auto parts = at::empty({cuda::rms_norm_blocks(rows), 100}, opts.dtype(at::kFloat));
    for (auto* t : {&z, &dx, &dg, &rstd, &parts}) poison_(*t);
    cuda::RmsNormParams p;
    p.dtype = cuda::Dtype::kBF16;
    p.x = x.const_data_ptr(), p.w = w.const_data_ptr<float>(), p.gate = g.const_data_ptr();
    p.z = z.mutable_data_ptr(), p.rstd = rstd.mutable_data_ptr<float>(), p.dz = dz.const_data_ptr();
    p.dx = dx.mutable_data_ptr(), p.dgate = dg.mutable_data_ptr(), p.dw_parts = parts.mutable_data_ptr<float>();
    p.rows = rows, p.D = 100;
    const auto stream = at::cuda::getCurrentCUDAStream().stream();
    cuda::rms_norm_forward(p, stream);
    cuda::rms_norm_backward(p, stream);
    for (const auto* t : {&z, &dx, &dg, &rstd, &parts}) CHECK(at::isfinite(*t).all().item<bool>());
  }
}

TEST_CASE("cuda: RMSNorm under the kernel backend equals its ATen form, and refuses with a sentence", "[cuda]") {
  REQUIRE(at::hasCUDA());
  const at::Device gpu(at::kCUDA, 0);
  for (const bool gated : {false, true}) {
    INFO((gated ? "gated" : "plain"));
    models::RMSNorm aten(64, 1e-5, BackendChoice::kReference), ours(64, 1e-5, BackendChoice::kKernel);
    {
      torch::NoGradGuard no_grad;
      aten->weight.copy_(1.0 + 0.1 * at::randn({64}));
      ours->weight.copy_(aten->weight);
    }
    aten->to(gpu);
    ours->to(gpu);
    const auto opts = at::TensorOptions().device(gpu);
    const auto x0 = at::randn({3, 50, 2, 64}, opts), g0 = at::randn({3, 50, 2, 64}, opts), dz = at::randn({3, 50, 2, 64}, opts);
    const auto xa = x0.clone().requires_grad_(true), xo = x0.clone().requires_grad_(true);
    const auto ga = g0.clone().requires_grad_(true), go = g0.clone().requires_grad_(true);
    const auto za = gated ? aten->forward(xa, ga) : aten->forward(xa);
    const auto zo = gated ? ours->forward(xo, go) : ours->forward(xo);
    za.backward(dz);
    zo.backward(dz);
    CHECK(rel_rms(zo.detach().cpu(), za.detach().cpu()) <= 1e-5);
    CHECK(rel_rms(xo.grad().cpu(), xa.grad().cpu()) <= 1e-5);
    CHECK(rel_rms(ours->weight.grad().cpu(), aten->weight.grad().cpu()) <= 1e-5);
    if (gated) CHECK(rel_rms(go.grad().cpu(), ga.grad().cpu()) <= 1e-5);
  }
  models::RMSNorm wide(600, 1e-5, BackendChoice::kKernel);
  wide->to(gpu);
  CHECK_THROWS_WITH(wide->forward(at::randn({4, 600}, at::TensorOptions().device(gpu))),
                    testing::contains("RMSNorm: backend kernel was asked for, but deltabench's CUDA kernels do not "
                                      "serve this call: the normalised dimension is 600; the kernels take 1 to 512"));
}

TEST_CASE("cuda: under auto the pieces take the kernels where they serve and the ATen form where not", "[cuda]") {
  REQUIRE(at::hasCUDA());
  const at::Device gpu(at::kCUDA, 0);
  const auto opts = at::TensorOptions().device(gpu);
  // Where the kernels serve, auto is the kernel backend: bit for bit the same outputs and gradients.
  torch::manual_seed(11);
  models::ShortConvolution conv_auto(64, 4, true, BackendChoice::kAuto), conv_kernel(64, 4, true, BackendChoice::kKernel);
  {
    torch::NoGradGuard no_grad;
    conv_kernel->weight.copy_(conv_auto->weight);
  }
  conv_auto->to(gpu);
  conv_kernel->to(gpu);
  const auto x0 = at::randn({2, 70, 64}, opts).to(at::kBFloat16), dy = at::randn({2, 70, 64}, opts).to(at::kBFloat16);
  const auto xa = x0.clone().requires_grad_(true), xk = x0.clone().requires_grad_(true);
  const auto ya = conv_auto->forward(xa), yk = conv_kernel->forward(xk);
  ya.backward(dy);
  yk.backward(dy);
  CHECK(at::equal(ya, yk));
  CHECK(at::equal(xa.grad(), xk.grad()));
  CHECK(at::equal(conv_auto->weight.grad(), conv_kernel->weight.grad()));
  const auto q = at::randn({2, 70, 2, 64}, opts);
  CHECK(at::equal(models::apply_qk_norm(q, models::QkNorm::kL2, 1e-6, BackendChoice::kAuto),
                  models::apply_qk_norm(q, models::QkNorm::kL2, 1e-6, BackendChoice::kKernel)));
  models::RMSNorm norm_auto(64, 1e-5, BackendChoice::kAuto), norm_kernel(64, 1e-5, BackendChoice::kKernel),
      norm_reference(64, 1e-5, BackendChoice::kReference);
  norm_auto->to(gpu);
  norm_kernel->to(gpu);
  norm_reference->to(gpu);
  CHECK(at::equal(norm_auto->forward(q, q), norm_kernel->forward(q, q)));
  // Where they do not (fp64; a dimension of 600), auto takes the ATen form without a word, as the
  // reference backend does, where the kernel backend refuses.
  const auto q64 = q.to(at::kDouble);
  CHECK(at::equal(models::apply_qk_norm(q64, models::QkNorm::kL2, 1e-6, BackendChoice::kAuto),
                  models::apply_qk_norm(q64, models::QkNorm::kL2, 1e-6, BackendChoice::kReference)));
  models::RMSNorm wide_auto(600, 1e-5, BackendChoice::kAuto), wide_reference(600, 1e-5, BackendChoice::kReference);
  wide_auto->to(gpu);
  wide_reference->to(gpu);
  const auto x600 = at::randn({4, 600}, opts);
  CHECK(at::equal(wide_auto->forward(x600), wide_reference->forward(x600)));
  // A block's pre-norm takes the run's backend: under reference an RMSNorm stays ATen's.
  models::Norm pre_reference(models::NormKind::kRMSNorm, 64, 1e-5, BackendChoice::kReference);
  models::Norm pre_auto(models::NormKind::kRMSNorm, 64, 1e-5, BackendChoice::kAuto);
  pre_reference->to(gpu);
  pre_auto->to(gpu);
  const auto xg = q.clone().requires_grad_(true);
  CHECK(pre_reference->forward(xg).grad_fn()->name().find("RmsNormCuda") == std::string::npos);
  CHECK(pre_auto->forward(xg).grad_fn()->name().find("RmsNormCuda") != std::string::npos);
}

TEST_CASE("cuda: the LayerNorm's kernels match the fp64 definition, output and gradients", "[cuda]") {
  REQUIRE(at::hasCUDA());
  const at::Device gpu(at::kCUDA, 0);
  int checked = 0;
  for (const auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    // D across the lanes' 4, 8 and 16 columns; 20,000 rows: warps loop over rows.
    for (const auto& [rows, D] :
         std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {13, 64}, {37, 100}, {20000, 128}, {9, 256}, {5, 300}, {70, 512}}) {
      INFO(fmt::format("rows {} D {} {}", rows, D, c10::toString(dtype)));
      at::manual_seed(5000 + checked);
      const double eps = 1e-5;
      // An offset, so that the centring matters.
      const auto x64 = 3.0 + at::randn({rows, D}, at::kDouble), dz64 = at::randn({rows, D}, at::kDouble);
      const auto w64 = 1.0 + 0.1 * at::randn({D}, at::kDouble), b64 = 0.1 * at::randn({D}, at::kDouble);
      const auto x_ref = x64.to(dtype).to(at::kDouble).requires_grad_(true);
      const auto w_ref = w64.to(at::kFloat).to(at::kDouble).requires_grad_(true);
      const auto b_ref = b64.to(at::kFloat).to(at::kDouble).requires_grad_(true);
      const auto centred = x_ref - x_ref.mean(-1, true);
      const auto z_ref = centred * at::rsqrt(centred.pow(2).mean(-1, true) + eps) * w_ref + b_ref;
      z_ref.backward(dz64.to(dtype).to(at::kDouble));
      const auto x = x64.to(gpu, dtype).requires_grad_(true);
      const auto w = w64.to(gpu, at::kFloat).requires_grad_(true), b = b64.to(gpu, at::kFloat).requires_grad_(true);
      const auto z = models::layer_norm_cuda(x, w, b, eps);
      z.backward(dz64.to(gpu, dtype));
      REQUIRE(z.scalar_type() == dtype);
      // D = 1: z is the bias and dx is zero; relative errors there compare zeros, so absolute ones.
      const double tol = tolerance(dtype);
      CHECK(rel_rms(z.detach().cpu(), z_ref.detach()) <= tol);
      if (D > 1) {
        CHECK(rel_rms(x.grad().cpu(), x_ref.grad()) <= tol);
        CHECK(rel_rms(w.grad().cpu(), w_ref.grad()) <= tol);
      } else {
        CHECK(x.grad().abs().max().item<double>() <= 1e-3);
      }
      CHECK(rel_rms(b.grad().cpu(), b_ref.grad()) <= tol);
      ++checked;
    }
  }
  CHECK(checked == 21);
}

TEST_CASE("cuda: the LayerNorm's raw kernels write every output element (NaN-poisoned first)", "[cuda]") {
  REQUIRE(at::hasCUDA());
  const auto opts = at::TensorOptions().device(at::kCUDA).dtype(at::kFloat);
  for (const auto& [rows, D] : std::vector<std::pair<int64_t, int64_t>>{{1, 100}, {9, 256}, {20000, 128}, {3, 512}}) {
    INFO("rows " << rows << " D " << D);
    const auto x = at::randn({rows, D}, opts), dz = at::randn({rows, D}, opts);
    const auto w = at::randn({D}, opts), b = at::randn({D}, opts);
    auto z = at::empty_like(x), dx = at::empty_like(x);
    auto mean = at::empty({rows}, opts), rstd = at::empty({rows}, opts);
    auto dw = at::empty({cuda::layer_norm_blocks(rows), D}, opts), db = at::empty_like(dw);
    for (auto* t : {&z, &dx, &mean, &rstd, &dw, &db}) poison_(*t);
    cuda::LayerNormParams p;
    p.dtype = cuda::Dtype::kFP32;
    p.x = x.const_data_ptr(), p.w = w.const_data_ptr<float>(), p.b = b.const_data_ptr<float>();
    p.z = z.mutable_data_ptr(), p.mean = mean.mutable_data_ptr<float>(), p.rstd = rstd.mutable_data_ptr<float>();
    p.dz = dz.const_data_ptr(), p.dx = dx.mutable_data_ptr();
    p.dw_parts = dw.mutable_data_ptr<float>(), p.db_parts = db.mutable_data_ptr<float>();
    p.rows = rows, p.D = D;
    const auto stream = at::cuda::getCurrentCUDAStream().stream();
    cuda::layer_norm_forward(p, stream);
    cuda::layer_norm_backward(p, stream);
    for (const auto* t : {&z, &dx, &mean, &rstd, &dw, &db}) CHECK(at::isfinite(*t).all().item<bool>());
  }
}

TEST_CASE("cuda: Norm's LayerNorm under the kernel backend equals ATen's, under autocast too, and refuses with a sentence",
          "[cuda]") {
  REQUIRE(at::hasCUDA());
  const at::Device gpu(at::kCUDA, 0);
  models::Norm aten(models::NormKind::kLayerNorm, 128, 1e-5, BackendChoice::kReference);
  models::Norm ours(models::NormKind::kLayerNorm, 128, 1e-5, BackendChoice::kKernel);
  models::Norm automatic(models::NormKind::kLayerNorm, 128, 1e-5, BackendChoice::kAuto);
  {
    torch::NoGradGuard no_grad;
    for (auto* m : {&aten, &ours, &automatic}) {
      (*m)->named_parameters()["norm.weight"].copy_(1.0 + 0.1 * at::arange(128) / 128.0);
      (*m)->named_parameters()["norm.bias"].copy_(0.01 * at::arange(128) / 128.0);
    }
  }
  for (auto* m : {&aten, &ours, &automatic}) (*m)->to(gpu);
  const auto opts = at::TensorOptions().device(gpu);
  for (const bool autocast : {false, true}) {
    INFO((autocast ? "bf16 autocast, x bf16" : "fp32"));
    const auto x0 = (at::randn({4, 50, 128}, opts) + 2.0).to(autocast ? at::kBFloat16 : at::kFloat);
    const auto dz = at::randn({4, 50, 128}, opts);
    const auto xa = x0.clone().requires_grad_(true), xo = x0.clone().requires_grad_(true);
    at::Tensor za, zo, zauto;
    {
      const Autocast guard(autocast);
      za = aten->forward(xa);
      zo = ours->forward(xo);
      zauto = automatic->forward(x0);
    }
    REQUIRE(zo.scalar_type() == za.scalar_type());  // fp32 under autocast, as ATen's
    CHECK(zo.grad_fn()->name().find("LayerNormCuda") != std::string::npos);
    CHECK(at::equal(zauto, zo));  // auto takes the kernel where it serves (measured faster, b714d6c)
    za.backward(dz);
    zo.backward(dz);
    CHECK(rel_rms(zo.detach().cpu(), za.detach().cpu()) <= 1e-5);
    CHECK(rel_rms(xo.grad().to(at::kFloat).cpu(), xa.grad().to(at::kFloat).cpu()) <= (autocast ? 1e-2 : 1e-5));
  }
  for (const auto* name : {"norm.weight", "norm.bias"}) {
    INFO(name);
    CHECK(rel_rms(ours->named_parameters()[name].grad().cpu(), aten->named_parameters()[name].grad().cpu()) <= 1e-5);
  }
  models::Norm wide(models::NormKind::kLayerNorm, 600, 1e-5, BackendChoice::kKernel);
  wide->to(gpu);
  CHECK_THROWS_WITH(wide->forward(at::randn({4, 600}, opts)),
                    testing::contains("LayerNorm: backend kernel was asked for, but deltabench's CUDA kernels do not "
                                      "serve this call: the normalised dimension is 600; the kernels take 1 to 512"));
}

namespace {

// The embedding's gradient in fp64 on the CPU: dw[v] = sum of dy's rows whose id is v.
at::Tensor embedding_grad_definition(const at::Tensor& ids, const at::Tensor& dy, int64_t V) {
  const auto rows = dy.reshape({-1, dy.size(-1)}).cpu().to(at::kDouble);
  return at::zeros({V, dy.size(-1)}, at::kDouble).index_add_(0, ids.reshape({-1}).cpu(), rows);
}

}  // namespace

TEST_CASE("cuda: the embedding's gradient kernels match the fp64 sum, in a fixed order", "[cuda]") {
  REQUIRE(at::hasCUDA());
  const at::Device gpu(at::kCUDA, 0);
  const auto long_opts = at::TensorOptions().dtype(at::kLong);
  struct Case {
    std::string name;
    at::Tensor ids;  // on the CPU
    int64_t V, D;
  };
  at::manual_seed(77);
  // MQAR-like rows: token 0 at 81% of the positions, the rest spread over 8192.
  const auto blanks = at::rand({256, 256}) < 0.81;
  const auto mqar = at::where(blanks, at::zeros({256, 256}, long_opts), at::randint(1, 8192, {256, 256}, long_opts));
  std::vector<Case> cases = {
      {"one id", at::zeros({1}, long_opts), 5, 64},
      {"one token everywhere, runs across every chunk", at::full({3, 1000}, 3, long_opts), 7, 100},
      {"MQAR's blanks, Zoology's L 256", mqar, 8192, 128},
      {"every token once, shuffled", at::randperm(1000, long_opts).reshape({10, 100}), 1000, 96},
      {"runs of 128 ids, each token's longer than a chunk and crossing chunk ends",
       at::arange(0, 3000, long_opts).div(128, "floor").remainder(17).reshape({30, 100}), 17, 33},
      {"a wide table, few ids", at::randint(0, 50, {2, 77}, long_opts), 50, 512},
      {"rows of no token", at::randint(0, 10, {4, 40}, long_opts) * 3, 40, 16},
  };
  for (const auto dtype : {at::kFloat, at::kBFloat16}) {
    for (const auto& c : cases) {
      INFO(c.name << ", " << c10::toString(dtype));
      const auto weight = (0.02 * at::randn({c.V, c.D})).to(gpu, dtype).requires_grad_(true);
      const auto ids = c.ids.to(gpu);
      auto dy_shape = c.ids.sizes().vec();
      dy_shape.push_back(c.D);
      const auto dy = at::randn(dy_shape).to(gpu, dtype);
      const auto y = models::embedding_cuda(weight, ids);
      REQUIRE(at::equal(y, at::embedding(weight.detach(), ids)));
      CHECK(y.grad_fn()->name().find("EmbeddingCuda") != std::string::npos);
      y.backward(dy);
      const auto first = weight.grad().clone();
      const auto expected = embedding_grad_definition(c.ids, dy.to(at::kFloat), c.V);
      REQUIRE(first.scalar_type() == dtype);
      CHECK(rel_rms(first.to(at::kDouble).cpu(), expected) <= (dtype == at::kFloat ? 1e-6 : 1e-2));
      // Rows of tokens that never occur are zero.
      const auto seen = at::zeros({c.V}, at::kBool).index_fill_(0, c.ids.reshape({-1}), true);
      CHECK(first.cpu().index({seen.logical_not()}).abs().sum().item<double>() == 0.0);
      // The same bits on a second run.
      weight.mutable_grad().zero_();
      models::embedding_cuda(weight, ids).backward(dy);
      CHECK(at::equal(weight.grad(), first));
    }
  }
}

TEST_CASE("cuda: the embedding's raw kernels write every row of the gradient (NaN-poisoned first)", "[cuda]") {
  REQUIRE(at::hasCUDA());
  const auto opts = at::TensorOptions().device(at::kCUDA);
  for (const int64_t N : {0, 1, 128, 129, 5000}) {
    INFO("N " << N);
    const int64_t V = 300, D = 40;
    const auto ids = at::randint(0, V / 2, {N}, opts.dtype(at::kLong));
    const auto [sorted, order] = at::sort(ids, true, 0, false);
    const auto dy = at::randn({N, D}, opts);
    auto partials = at::empty({std::max<int64_t>(N, 1), D}, opts), dw = at::empty({V, D}, opts);
    auto ranges = at::zeros({2, V}, opts.dtype(at::kLong));
    poison_(dw);
    cuda::EmbeddingBackwardParams p;
    p.sorted = sorted.const_data_ptr<int64_t>(), p.order = order.const_data_ptr<int64_t>();
    p.dy = dy.const_data_ptr(), p.partials = partials.mutable_data_ptr<float>();
    p.starts = ranges[0].mutable_data_ptr<int64_t>(), p.ends = ranges[1].mutable_data_ptr<int64_t>();
    p.dw = dw.mutable_data_ptr<float>(), p.N = N, p.V = V, p.D = D;
    cuda::embedding_backward(p, at::cuda::getCurrentCUDAStream().stream());
    CHECK(at::isfinite(dw).all().item<bool>());
  }
}

TEST_CASE("cuda: the language model under kernel and auto takes the LayerNorm and embedding kernels; auto falls back",
          "[cuda]") {
  REQUIRE(at::hasCUDA());
  const at::Device gpu(at::kCUDA, 0);
  models::ModelConfig c;
  c.vocab_size = 512, c.d_model = 128, c.num_layers = 2, c.max_position_embeddings = 64;
  c.mixer = models::default_mixer(models::MixerKind::kAttention);
  c.mixer.num_heads = 2;
  const auto tokens = at::randint(0, 512, {8, 64}, at::TensorOptions().dtype(at::kLong)).to(gpu);
  std::vector<std::vector<at::Tensor>> grads;
  for (const auto backend : {BackendChoice::kReference, BackendChoice::kKernel, BackendChoice::kAuto}) {
    torch::manual_seed(3);
    c.mixer.backend = backend;
    models::LanguageModel model(c);
    model->to(gpu);
    const auto pieces_before = models::piece_counts();
    const auto logits = model->forward(tokens);
    const auto pieces = models::piece_counts() - pieces_before;
    // kernel and auto take both kernels (the blocks' and the final LayerNorm, the embedding's gradient);
    // reference neither.
    const auto names = autograd_names(logits);
    const bool ours = backend != BackendChoice::kReference;
    INFO("backend " << static_cast<int>(backend));
    CHECK(has_node(names, "LayerNormCuda") == ours);
    CHECK(has_node(names, "EmbeddingCuda") == ours);
    // ... and the count that a run records says the same: two lookups (tokens, positions), three LayerNorms.
    const auto form = ours ? models::PieceForm::kKernel : models::PieceForm::kAten;
    CHECK(pieces.of(models::Piece::kEmbedding, form) == 2);
    CHECK(pieces.of(models::Piece::kLayerNorm, form) == 3);
    CHECK(models::pieces_summary(pieces) == (ours ? "embedding kernel, LayerNorm kernel" : "embedding aten, LayerNorm aten"));
    logits.to(at::kFloat).logsumexp(-1).mean().backward();
    std::vector<at::Tensor> g;
    for (const auto& p : model->parameters()) g.push_back(p.grad().cpu());
    grads.push_back(g);
  }
  REQUIRE(grads[0].size() == grads[1].size());
  REQUIRE(grads[2].size() == grads[1].size());
  for (size_t i = 0; i < grads[0].size(); ++i) {
    INFO("parameter " << i);
    CHECK(rel_rms(grads[1][i], grads[0][i]) <= 1e-5);
    CHECK(rel_rms(grads[2][i], grads[0][i]) <= 1e-5);
  }
  // The kernel backend asks the embedding's kernels, which refuse an fp64 table with the sentence;
  // auto takes ATen's forms for it without a word, as the reference backend does.
  c.mixer.backend = BackendChoice::kKernel;
  models::LanguageModel wide(c);
  wide->to(gpu, at::kDouble);
  CHECK_THROWS_WITH(wide->forward(tokens), testing::contains("embedding: backend kernel was asked for, but deltabench's "
                                                             "CUDA kernels do not serve this call: the table is Double"));
  std::vector<at::Tensor> wide_out;
  for (const auto backend : {BackendChoice::kAuto, BackendChoice::kReference}) {
    torch::manual_seed(3);
    c.mixer.backend = backend;
    models::LanguageModel m(c);
    m->to(gpu, at::kDouble);
    m->eval();
    torch::NoGradGuard no_grad;
    wide_out.push_back(m->forward(tokens));
  }
  CHECK(at::equal(wide_out[0], wide_out[1]));
}
