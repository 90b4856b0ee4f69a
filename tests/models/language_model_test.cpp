// Tests models/: for every mixer and a spread of switch combinations, causality, recurrent mode
// equal to the parallel forward, a gradient for every parameter, parameter counts against a
// formula, and a save / load round trip.

#include "models/language_model.h"
#include "tests/support/catch.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/serialize.h>

#include <sstream>
#include <string>
#include <vector>

using namespace deltabench::models;

namespace {

struct Case {
  std::string name;
  ModelConfig config;
};

ModelConfig base(MixerKind kind) {
  ModelConfig c;
  c.vocab_size = 23;
  c.d_model = 16;
  c.num_layers = 2;
  c.mixer = default_mixer(kind);
  c.mixer.num_heads = 2;
  c.mixer.chunk_size = 16;  // 20 tokens: a full chunk and a partial one
  return c;
}

// Each case changes one or two switches from a kind's defaults.
std::vector<Case> cases() {
  std::vector<Case> out;
  const auto add = [&](std::string name, MixerKind kind, auto change) {
    auto c = base(kind);
    change(c);
    out.push_back({std::move(name), c});
  };
  add("attention", MixerKind::kAttention, [](ModelConfig&) {});
  add("attention rotary, position embedding, swiglu", MixerKind::kAttention, [](ModelConfig& c) {
    c.mixer.rotary_dim = 4;
    c.max_position_embeddings = 32;
    c.state_mixer = StateMixerKind::kSwiGlu;
  });
  add("linear attention elu+1 normalised", MixerKind::kLinearAttention, [](ModelConfig&) {});
  add("linear attention identity", MixerKind::kLinearAttention, [](ModelConfig& c) {
    c.mixer.feature_map = FeatureMap::kIdentity;
    c.mixer.normalize = false;
  });
  add("linear attention relu retnet decay", MixerKind::kLinearAttention, [](ModelConfig& c) {
    c.mixer.feature_map = FeatureMap::kRelu;
    c.mixer.decay = DecayKind::kRetNet;
  });
  add("linear attention silu data decay, mlp", MixerKind::kLinearAttention, [](ModelConfig& c) {
    c.mixer.feature_map = FeatureMap::kSilu;
    c.mixer.normalize = false;
    c.mixer.decay = DecayKind::kData;
    c.state_mixer = StateMixerKind::kMlp;
  });
  add("delta_net", MixerKind::kDeltaNet, [](ModelConfig&) {});
  add("delta_net no short conv, rmsnorm", MixerKind::kDeltaNet, [](ModelConfig& c) {
    c.mixer.use_short_conv = false;
    c.norm = NormKind::kRMSNorm;
  });
  // Sum-normalisation divides by the feature sum, so it pairs with positive features (relu can zero
  // a whole head and divide by 0, in FLA as here).
  add("delta_net elu+1 sum-norm fixed beta", MixerKind::kDeltaNet, [](ModelConfig& c) {
    c.mixer.qk_activation = FeatureMap::kEluPlusOne;
    c.mixer.qk_norm = QkNorm::kSum;
    c.mixer.fixed_beta = 0.5;
  });
  add("delta_net relu rms-norm negative eigenvalues output gate", MixerKind::kDeltaNet, [](ModelConfig& c) {
    c.mixer.qk_activation = FeatureMap::kRelu;
    c.mixer.qk_norm = QkNorm::kRms;
    c.mixer.allow_neg_eigval = true;
    c.mixer.use_output_gate = true;
  });
  add("delta_net identity activation, no qk norm, untied head", MixerKind::kDeltaNet, [](ModelConfig& c) {
    c.mixer.qk_activation = FeatureMap::kIdentity;
    c.mixer.qk_norm = QkNorm::kNone;
    c.tie_embeddings = false;
  });
  add("gated_delta_net", MixerKind::kGatedDeltaNet, [](ModelConfig&) {});
  add("gated_delta_net decay off", MixerKind::kGatedDeltaNet, [](ModelConfig& c) { c.mixer.use_decay = false; });
  add("gated_delta_net no gate, no conv, negative eigenvalues, head_dim 4", MixerKind::kGatedDeltaNet,
      [](ModelConfig& c) {
        c.mixer.use_output_gate = false;
        c.mixer.use_short_conv = false;
        c.mixer.allow_neg_eigval = true;
        c.mixer.head_dim = 4;
      });
  return out;
}

at::Tensor tokens(int64_t B, int64_t T, int64_t vocab, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randint(vocab, {B, T}, gen, at::TensorOptions().dtype(at::kLong));
}

double max_abs(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

}  // namespace

TEST_CASE("models: causal, and recurrent mode equals the parallel forward", "[models]") {
  for (const auto& c : cases()) {
    INFO(c.name);
    torch::manual_seed(0);
    LanguageModel model(c.config);
    model->to(at::kDouble);
    model->eval();
    c10::NoGradGuard no_grad;
    const int64_t T = 20, t = 9;
    auto x = tokens(2, T, c.config.vocab_size, 1);
    const auto logits = model->forward(x);
    REQUIRE(logits.sizes() == at::IntArrayRef({2, T, c.config.vocab_size}));

    // Changing token t + 1 changes nothing at or before t, and does change t + 1.
    auto y = x.clone();
    y.select(1, t + 1).add_(1).remainder_(c.config.vocab_size);
    const auto perturbed = model->forward(y);
    CHECK(max_abs(perturbed.slice(1, 0, t + 1), logits.slice(1, 0, t + 1)) == 0.0);
    CHECK(max_abs(perturbed.select(1, t + 1), logits.select(1, t + 1)) > 1e-6);

    // One token at a time from an empty state.
    ModelState state;
    std::vector<at::Tensor> steps;
    for (int64_t s = 0; s < T; ++s) steps.push_back(model->step(x.select(1, s), state));
    const double err = max_abs(at::stack(steps, 1), logits) / logits.abs().max().item<double>();
    INFO("recurrent vs parallel: relative max error " << err);
    CHECK(err < 1e-10);
  }
}

TEST_CASE("models: every parameter receives a gradient", "[models]") {
  for (const auto& c : cases()) {
    INFO(c.name);
    torch::manual_seed(0);
    LanguageModel model(c.config);
    model->train();
    const auto x = tokens(2, 20, c.config.vocab_size, 2);
    const auto logits = model->forward(x);
    at::cross_entropy_loss(logits.reshape({-1, c.config.vocab_size}), tokens(2, 20, c.config.vocab_size, 3).reshape(-1))
        .backward();
    for (const auto& p : model->named_parameters()) {
      INFO(p.key());
      REQUIRE(p.value().grad().defined());
      CHECK(p.value().grad().abs().sum().item<double>() > 0);
    }
  }
}

TEST_CASE("models: parameter counts match the formula", "[models]") {
  // V d (embedding) + L [norm + mixer (+ norm + state mixer)] + final norm, with LayerNorm = 2d.
  const int64_t V = 23, d = 16, H = 2, K = 8;
  auto count = [](const ModelConfig& c) {
    LanguageModel m(c);
    return parameter_count(*m);
  };
  const auto around = [&](int64_t mixer, int64_t layers = 2) { return V * d + layers * (2 * d + mixer) + 2 * d; };
  // attention: qkv and out projections with biases.
  CHECK(count(base(MixerKind::kAttention)) == around(3 * d * d + 3 * d + d * d + d));
  // linear attention (elu+1, normalised, no decay): q, k, v, o projections.
  CHECK(count(base(MixerKind::kLinearAttention)) == around(3 * d * H * K + H * K * d));
  // DeltaNet: q, k, v; b_proj; convolutions (kernel 4) on q, k, v; o_norm over V; o_proj.
  CHECK(count(base(MixerKind::kDeltaNet)) == around(3 * d * H * K + d * H + 3 * H * K * 4 + K + H * K * d));
  // Gated DeltaNet (expand_v 2, Vd = 16): + a_proj, A_log, dt_bias, g_proj.
  const int64_t Vd = 2 * K;
  CHECK(count(base(MixerKind::kGatedDeltaNet)) ==
        around(2 * d * H * K + d * H * Vd + d * H + d * H + 2 * H + (2 * H * K + H * Vd) * 4 + d * H * Vd + Vd +
               H * Vd * d));
  // SwiGLU state mixer (ratio 4: hidden 64) adds a norm and three projections per layer.
  auto swiglu = base(MixerKind::kAttention);
  swiglu.state_mixer = StateMixerKind::kSwiGlu;
  CHECK(count(swiglu) - count(base(MixerKind::kAttention)) == 2 * (2 * d + 3 * d * 64));
}

TEST_CASE("models: save and load round trip", "[models]") {
  const auto c = base(MixerKind::kGatedDeltaNet);
  torch::manual_seed(0);
  LanguageModel a(c);
  torch::manual_seed(1);
  LanguageModel b(c);
  a->eval();
  b->eval();
  const auto x = tokens(2, 20, c.vocab_size, 4);
  c10::NoGradGuard no_grad;
  REQUIRE_FALSE(at::equal(a->forward(x), b->forward(x)));
  std::stringstream buffer;
  torch::save(a, buffer);
  torch::load(b, buffer);
  CHECK(at::equal(a->forward(x), b->forward(x)));
}

TEST_CASE("models: linear, embedding and short-convolution weights start from N(0, 0.02), as FLA's", "[models]") {
  // FLA's _init_weights draws every nn.Linear and nn.Conv1d (its ShortConvolution is one) and every
  // nn.Embedding from N(0, 0.02). torch.nn.Conv1d's own default for a kernel of 4 is U(-0.5, 0.5), a
  // standard deviation of about 0.29.
  auto c = base(MixerKind::kGatedDeltaNet);
  c.d_model = 64;
  torch::manual_seed(3);
  LanguageModel m(c);
  int64_t convolutions = 0;
  for (const auto& p : m->named_parameters()) {
    const bool conv = p.key().find("conv") != std::string::npos;
    const bool drawn =
        conv || p.key().find("proj") != std::string::npos || p.key().find("embedding") != std::string::npos;
    if (!drawn || p.key().find("bias") != std::string::npos) continue;
    INFO(p.key());
    const auto w = p.value().detach().to(at::kDouble);
    // The smallest tensors (b_proj, a_proj: 128 draws) put a sample's mean within 0.0018 and its
    // standard deviation within 0.0013 of the truth one sigma in three.
    CHECK(std::abs(w.std().item<double>() - 0.02) <= 0.005);
    CHECK(std::abs(w.mean().item<double>()) <= 0.006);
    convolutions += conv ? 1 : 0;
  }
  CHECK(convolutions == 2 * 3);  // q, k and v convolutions in each of the two layers
}

TEST_CASE("models: the autoencoder backbone is mad-lab's, by parameter count", "[models]") {
  // mad-lab's AutoEncoder: the embedding, the blocks, then (no final norm, no tied head) a decoder of two
  // norm -> Linear(d, d) with bias, and a norm -> Linear(d, V) with bias. LayerNorm = 2d.
  const int64_t V = 23, d = 16;
  auto lm = base(MixerKind::kDeltaNet), ae = lm;
  ae.backbone = Backbone::kAutoEncoder;
  LanguageModel a(lm), b(ae);
  CHECK(parameter_count(*b) - parameter_count(*a) == -2 * d + 2 * (2 * d + d * d + d) + 2 * d + d * V + V);
}

TEST_CASE("models: mad-lab's sinusoidal position embeddings", "[models]") {
  // posemb_sincos_1d(3, 4): frequencies exp(-log(10000) i / (2 - 1)) = {1, 1e-4}; sin then cos.
  const auto e = sincos_position_embeddings(3, 4, at::TensorOptions().dtype(at::kFloat));
  REQUIRE(e.sizes() == at::IntArrayRef({3, 4}));
  const auto want = at::tensor({0.0, 0.0, 1.0, 1.0,                                          //
                                std::sin(1.0), std::sin(1e-4), std::cos(1.0), std::cos(1e-4),  //
                                std::sin(2.0), std::sin(2e-4), std::cos(2.0), std::cos(2e-4)})
                        .view({3, 4})
                        .to(at::kFloat);
  CHECK(at::allclose(e, want, 1e-6, 1e-6));
  // An odd width gets a zero column.
  const auto odd = sincos_position_embeddings(2, 5, at::TensorOptions().dtype(at::kFloat));
  CHECK(odd.select(1, 4).abs().sum().item<double>() == 0.0);
}

TEST_CASE("models: the autoencoder decodes every position from the last position's output alone", "[models]") {
  auto c = base(MixerKind::kDeltaNet);  // no decay: a change at position 0 reaches the last position whole
  c.backbone = Backbone::kAutoEncoder;
  torch::manual_seed(0);
  LanguageModel m(c);
  m->eval();
  c10::NoGradGuard no_grad;
  const auto x = tokens(2, 20, c.vocab_size, 5);
  const auto logits = m->forward(x);
  REQUIRE(logits.sizes() == at::IntArrayRef({2, 20, c.vocab_size}));
  // The positions differ (the position embeddings), and no position sees a token the last one did not:
  // a change at position 0 reaches every position's logits; a sequence's logits do not depend on the
  // other sequence in the batch.
  CHECK_FALSE(at::allclose(logits.select(1, 0), logits.select(1, 19)));
  auto y = x.clone();
  y[0][0].fill_((x[0][0].item<int64_t>() + 1) % c.vocab_size);  // the first sequence's first token
  const auto changed = m->forward(y);
  for (int64_t t = 0; t < 20; ++t) CHECK_FALSE(at::allclose(changed[0][t], logits[0][t]));
  CHECK(at::equal(changed[1], logits[1]));
  // The recurrent mode is the language model's only.
  ModelState state;
  CHECK_THROWS_WITH(m->step(x.select(1, 0), state), deltabench::testing::contains("no recurrent mode"));
}
