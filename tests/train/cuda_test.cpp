// GPU tests of tasks/dataset, models and train (ctest label "cuda"; run by scripts/device.sh).

#include "kernels/common/cuda_dispatch.h"
#include "kernels/common/sm90/sm90_kernels.h"
#include "models/language_model.h"
#include "tasks/dataset.h"
#include "tasks/mqar.h"
#include "tests/support/catch.h"
#include "tests/support/source_dir.h"
#include "tests/support/temp_dir.h"
#include "train/step.h"
#include "train/trainer.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <c10/core/GradMode.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAStream.h>

#include <iostream>
#include <map>
#include <string>
#include <utility>

using namespace deltabench;

namespace {

// What a run's record says trained the delta rules and linear attention under the kernels at head dims
// K = V = `head_dim` with bf16 or fp16 inputs: the sm_90a training op on a Hopper GPU at 64 and 128 where it
// is set (kernels/common/cuda_dispatch.h), else the chunked or recurrent training kernels.
std::string kernel_backward(int64_t head_dim, bool half) {
  const bool sm90 = half && (head_dim == 64 || head_dim == 128) && deltabench::detail::sm90_train() &&
                    deltabench::cuda::sm90::available();
  return sm90 ? "kernel (sm_90a)" : "kernel";
}

// What a run's record says ran the training forward at those head dims: the sm_90a training op's forward where
// it trains, else the chunked training pair's, whose forward is the chunk forward (the sm_90a forward on Hopper
// unless switched off) and whose backward recomputes what it needs.
std::string kernel_train_forward(int64_t head_dim, bool half) {
  const bool sm90_forward = half && (head_dim == 64 || head_dim == 128) && deltabench::detail::sm90_forward() &&
                            deltabench::cuda::sm90::available();
  return sm90_forward ? "kernel (sm_90a)" : kernel_backward(head_dim, half);
}

// The same for the forward alone (an evaluation) at chunk size `chunk`: the sm_90a forward takes the chunk
// forward's calls (chunk 64) on Hopper unless switched off, at head dims 64, 128 and 256.
std::string kernel_forward(int64_t head_dim, bool half, int64_t chunk) {
  const bool dims = head_dim == 64 || head_dim == 128 || head_dim == 256;
  const bool sm90 = half && dims && chunk == 64 && deltabench::detail::sm90_forward() && deltabench::cuda::sm90::available();
  return sm90 ? "kernel (sm_90a)" : "kernel";
}

}  // namespace

TEST_CASE("cuda: device dataset serves the CPU's batches", "[cuda]") {
  REQUIRE(at::hasCUDA());
  tasks::MqarParams p;
  p.num_examples = 300;
  p.random_non_queries = false;
  const auto data = tasks::make_mqar(p, 3);
  tasks::DeviceDataset cpu(data, c10::Device(c10::kCPU)), gpu(data, c10::Device(c10::kCUDA, 0));
  cpu.start_epoch(5, 2);
  gpu.start_epoch(5, 2);
  for (int64_t b = 0; b < cpu.num_batches(64); ++b) {
    const auto x = cpu.batch(b, 64), y = gpu.batch(b, 64);
    CHECK(y.inputs.is_cuda());
    CHECK(at::equal(x.inputs, y.inputs.cpu()));
    CHECK(at::equal(x.targets, y.targets.cpu()));
  }
}

TEST_CASE("cuda: every mixer computes on the GPU what it computes on the CPU", "[cuda]") {
  REQUIRE(at::hasCUDA());
  for (const auto kind : {models::MixerKind::kAttention, models::MixerKind::kLinearAttention,
                          models::MixerKind::kDeltaNet, models::MixerKind::kGatedDeltaNet}) {
    INFO(models::to_string(kind));
    models::ModelConfig c;
    c.vocab_size = 100;
    c.d_model = 64;
    c.mixer = models::default_mixer(kind);
    c.mixer.num_heads = 2;
    torch::manual_seed(0);
    models::LanguageModel model(c);
    model->eval();
    c10::NoGradGuard no_grad;
    const auto x = at::randint(100, {4, 100}, at::TensorOptions().dtype(at::kLong));
    const auto ref = model->forward(x);
    model->to(at::Device(at::kCUDA, 0));
    const auto out = model->forward(x.cuda()).cpu();
    const double err = ((out - ref).norm() / ref.norm()).item<double>();
    INFO("relative error " << err);
    CHECK(err < 1e-4);  // fp32 on both; TF32 stays off for ATen matmuls by default
  }
}

TEST_CASE("cuda: DeltaNet learns the tiny MQAR with bf16 autocast", "[cuda]") {
  REQUIRE(at::hasCUDA());
  auto c = train::load_experiment(deltabench::testing::source_dir() + "/configs/mqar-tiny.toml");
  train::TrainOptions options;
  options.placement.device = "cuda";
  options.progress = false;
  options.max_steps = 3000;
  const auto s = train::run_experiment(c, options);
  INFO(s.status << " after " << s.steps << " steps, best " << s.best_accuracy);
  CHECK(s.status == "early_stopped");
  CHECK(s.best_accuracy >= 0.99);
  CHECK(s.device.rfind("cuda:0 (", 0) == 0);
  CHECK(!s.gpu_name.empty());
  // Under auto, this preset's 32-token sequences at head dim 32 train on the chunked training pair (auto
  // takes it wherever it serves since a18b781); evaluation at chunk 16 runs the reference ops: the chunk
  // forward kernel does not serve it (K and V of 64 or 128, chunk 64), and auto does not take the
  // training pair's forward alone.
  CHECK(s.backend_train_forward == "kernel");
  CHECK(s.backend_train_backward == "kernel");
  CHECK(s.backend_eval_forward == "reference");
  // At head dim 64 and chunk 64 training runs on the chunked training kernels (on Hopper the sm_90a training
  // op) and evaluation on the chunk forward kernel (on Hopper the sm_90a forward), at 32 tokens too, and the
  // record says so.
  c.model.d_model = 128;
  c.model.mixer.chunk_size = 64;
  options.max_steps = 10;
  const auto k = train::run_experiment(c, options);
  CHECK(k.backend_train_forward == kernel_train_forward(64, true));
  CHECK(k.backend_train_backward == kernel_backward(64, true));
  CHECK(k.backend_eval_forward == kernel_forward(64, true, 64));
  // At head dim 32 and 256 tokens auto trains on the recurrent training pair.
  c.model.d_model = 64;
  c.task.params["seq_len"] = "256";
  c.task.params["vocab_size"] = "512";  // MQAR needs a vocabulary larger than the sequence
  c.model.vocab_size = 512;
  const auto l = train::run_experiment(c, options);
  CHECK(l.backend_train_forward == "kernel");
  CHECK(l.backend_train_backward == "kernel");
}

namespace {

// The gradients of every parameter of a model built from `config` (seed 7) for one batch of MQAR-like
// tokens: the next-token loss at every position, under bf16 autocast when asked.
std::vector<at::Tensor> model_gradients(const models::ModelConfig& config, const at::Tensor& tokens, bool autocast) {
  torch::manual_seed(7);
  models::LanguageModel model(config);
  model->to(tokens.device());
  at::Tensor loss;
  {
    const train::AutocastGuard guard(autocast);
    const auto logits = model->forward(tokens.narrow(1, 0, tokens.size(1) - 1));
    loss = at::cross_entropy_loss(logits.flatten(0, 1).to(at::kFloat), tokens.narrow(1, 1, tokens.size(1) - 1).flatten());
  }
  loss.backward();
  std::vector<at::Tensor> grads;
  for (const auto& p : model->parameters()) grads.push_back(p.grad().defined() ? p.grad().to(at::kDouble) : at::Tensor());
  return grads;
}

double rel_rms(const at::Tensor& got, const at::Tensor& want) {
  return ((got - want).pow(2).mean().sqrt() / want.pow(2).mean().sqrt().clamp_min(1e-30)).item<double>();
}

}  // namespace

TEST_CASE("cuda: a DeltaNet and a Gated DeltaNet model's gradients on the kernels match the reference ops'",
          "[cuda][backward]") {
  // fp32: the kernels' gradients of every parameter equal the reference ops' to fp32 rounding. bf16
  // autocast: against the fp32 reference, no worse than the reference ops under the same autocast.
  REQUIRE(at::hasCUDA());
  // The reference in true fp32: ATen may run its short convolution through cuDNN, in TF32 by default,
  // where the kernel backend's convolution is fp32 (models/fused_cuda.h). Restored at the end.
  struct NoTf32CuDnn {
    bool was = at::globalContext().allowTF32CuDNN();
    NoTf32CuDnn() { at::globalContext().setAllowTF32CuDNN(false); }
    ~NoTf32CuDnn() { at::globalContext().setAllowTF32CuDNN(was); }
  } no_tf32;
  for (const auto kind : {models::MixerKind::kDeltaNet, models::MixerKind::kGatedDeltaNet}) {
    for (const int64_t d_model : {64, 128}) {  // head dims 32 and 64
      models::ModelConfig config;
      config.vocab_size = 64;
      config.d_model = d_model;
      config.mixer = models::default_mixer(kind);
      config.mixer.num_heads = 2;
      const auto tokens = at::randint(0, 64, {16, 97}, at::TensorOptions().device(at::kCUDA).dtype(at::kLong));
      config.mixer.backend = BackendChoice::kReference;
      const auto ref32 = model_gradients(config, tokens, false);
      const auto ref16 = model_gradients(config, tokens, true);
      config.mixer.backend = BackendChoice::kKernel;
      const auto ker32 = model_gradients(config, tokens, false);
      const auto ker16 = model_gradients(config, tokens, true);
      REQUIRE(ker32.size() == ref32.size());
      double worst32 = 0, worst16 = 0, worst16_ref = 0;
      for (size_t i = 0; i < ref32.size(); ++i) {
        if (!ref32[i].defined()) continue;
        INFO(models::to_string(kind) << " d_model " << d_model << " parameter " << i);
        const double e32 = rel_rms(ker32[i], ref32[i]), e16 = rel_rms(ker16[i], ref32[i]);
        const double e16_ref = rel_rms(ref16[i], ref32[i]);
        CHECK(e32 <= 1e-4);
        CHECK(e16 <= std::max(2 * e16_ref, 0.01));
        worst32 = std::max(worst32, e32);
        worst16 = std::max(worst16, e16);
        worst16_ref = std::max(worst16_ref, e16_ref);
      }
      std::cout << models::to_string(kind) << " d_model " << d_model << ": gradients, kernel against reference (fp32) "
                << worst32 << "; under bf16 autocast against the fp32 reference, kernel " << worst16
                << ", reference ops " << worst16_ref << " (largest over parameters)\n";
    }
  }
}

namespace {

// 50 captured steps of config `c` on the reference ops and then on the kernels, the same seed: both
// summaries, and the largest relative difference of a step's loss between them.
struct KernelAgainstReference {
  train::RunSummary ref, ker;
  double worst = 0;
};
KernelAgainstReference fifty_steps_both_ways(const train::ExperimentConfig& c) {
  const int64_t head_dim = c.model.d_model / c.model.mixer.num_heads;
  train::TrainOptions options;
  options.placement.device = "cuda";
  options.progress = false;
  options.max_steps = 50;
  KernelAgainstReference r;
  options.placement.backend = "reference";
  r.ref = train::run_experiment(c, options);
  options.placement.backend = "kernel";
  r.ker = train::run_experiment(c, options);
  CHECK(r.ref.backend() == "train fwd reference, bwd reference (ATen autograd); eval fwd reference");
  const bool half = c.train.precision != "fp32";
  CHECK(r.ker.backend() == "train fwd " + kernel_train_forward(head_dim, half) + ", bwd " + kernel_backward(head_dim, half) +
                               "; eval fwd " + kernel_forward(head_dim, half, c.model.mixer.chunk_size));
  CHECK(r.ker.train_step.rfind("captured", 0) == 0);
  REQUIRE(r.ker.step_losses.size() == 50);
  REQUIRE(r.ref.step_losses.size() == 50);
  for (size_t i = 0; i < 50; ++i) {
    r.worst = std::max(r.worst, std::abs(r.ker.step_losses[i] - r.ref.step_losses[i]) / std::abs(r.ref.step_losses[i]));
  }
  return r;
}

}  // namespace

TEST_CASE("cuda: DeltaNet and Gated DeltaNet train on the kernels as on the reference ops over 50 steps", "[cuda][backward]") {
  // The user's path: run_experiment with the placement's backend, the step captured in a CUDA graph.
  REQUIRE(at::hasCUDA());
  // Head dim 32 (d_model 64): the chunked training pair; 64 (d_model 128) under bf16 autocast: the sm_90a
  // training op on a Hopper GPU where it is set, the chunked pair elsewhere.
  for (const auto kind : {models::MixerKind::kDeltaNet, models::MixerKind::kGatedDeltaNet}) {
    const std::pair<int64_t, std::string> cases[] = {{64, "fp32"}, {64, "auto"}, {128, "auto"}};
    for (const auto& [d_model, precision] : cases) {
      INFO(models::to_string(kind) << ", d_model " << d_model << ", precision " << precision);
      auto c = train::load_experiment(deltabench::testing::source_dir() + "/configs/mqar-tiny.toml");
      c.model.d_model = d_model;
      c.model.mixer = models::default_mixer(kind);
      c.model.mixer.num_heads = 2;
      c.model.mixer.chunk_size = 16;
      c.train.precision = precision;
      c.train.early_stop = 0;
      const auto r = fifty_steps_both_ways(c);
      // The pieces follow the backend: all on our kernels under kernel, all ATen's under reference.
      CHECK(r.ker.backend_pieces ==
            "embedding kernel, LayerNorm kernel, RMSNorm kernel, short conv kernel, q/k L2 norm kernel");
      CHECK(r.ref.backend_pieces == "embedding aten, LayerNorm aten, RMSNorm aten, short conv aten, q/k L2 norm aten");
      std::cout << models::to_string(kind) << " d_model " << d_model << " " << precision
                << ": largest relative loss difference, kernel (" << r.ker.backend_train_backward
                << ") against reference ops, over 50 steps: " << r.worst << "\n";
      CHECK(r.worst <= (precision == "fp32" ? 1e-3 : 2e-2));
    }
  }
}

TEST_CASE("cuda: a run's recompute reaches the training op: the same losses, less memory where it keeps less",
          "[cuda][backward]") {
  // The user's path (a placement's recompute, as [train] recompute and --recompute set it) down to the op: the
  // losses cannot tell the three apart (the op's same bits by design), so the peak memory of the steps does: the
  // sm_90a training op keeps W, U, T, h and v_new under "none", W, U and T under "state", nothing under "all".
  // Head dims K = V = 128 (d_model 256, two heads), 512 tokens, bf16 autocast; eager steps, whose memory the
  // caching allocator's peak counts.
  REQUIRE(at::hasCUDA());
  // The caching allocator's statistics exist once it has served the device: as the first case of a process
  // (a test spec naming this one), resetPeakStats before any allocation throws "Invalid device argument".
  (void)at::empty({1}, at::TensorOptions().device(at::kCUDA));
  for (const auto kind : {models::MixerKind::kDeltaNet, models::MixerKind::kGatedDeltaNet}) {
    auto c = train::load_experiment(deltabench::testing::source_dir() + "/configs/mqar-tiny.toml");
    c.model.d_model = 256;
    c.model.mixer = models::default_mixer(kind);
    c.model.mixer.num_heads = 2;
    c.model.mixer.expand_v = 1.0;  // V = K = 128 for both (Gated DeltaNet's V 256 is the chunked pair's)
    c.task.params["seq_len"] = "512";
    c.task.params["vocab_size"] = "1024";
    c.task.params["num_kv_pairs"] = "8";
    c.model.vocab_size = 1024;
    c.task.train_examples = 1024;
    c.task.test_examples = 64;
    c.train.batch_size = 32;
    c.train.precision = "auto";
    c.train.early_stop = 0;
    train::TrainOptions options;
    options.placement.device = "cuda";
    options.placement.backend = "kernel";
    options.progress = false;
    options.cuda_graph = false;
    options.max_steps = 4;
    std::map<std::string, train::RunSummary> runs;
    std::map<std::string, int64_t> peak;
    for (const std::string recompute : {"none", "state", "all"}) {
      options.placement.recompute = recompute;
      c10::cuda::CUDACachingAllocator::emptyCache();
      c10::cuda::CUDACachingAllocator::resetPeakStats(0);
      runs[recompute] = train::run_experiment(c, options);
      peak[recompute] = c10::cuda::CUDACachingAllocator::getDeviceStats(0).allocated_bytes[0].peak;  // aggregate pool
      INFO(models::to_string(kind) << ", recompute " << recompute);
      CHECK(runs[recompute].backend_train_backward == kernel_backward(128, true));
      REQUIRE(runs[recompute].step_losses.size() == 4);
    }
    std::cout << models::to_string(kind) << " d_model 256, 32 x 512 tokens, " << runs["none"].backend_train_backward
              << ": peak MiB with recompute none / state / all: " << peak["none"] / 1048576.0 << " / "
              << peak["state"] / 1048576.0 << " / " << peak["all"] / 1048576.0 << "\n";
    for (const std::string recompute : {"state", "all"}) {
      // The op's gradients are the same bits either way (tests/kernels/common/sm90/forward_cuda_test.cpp); across two runs
      // of the model ATen's own kernels (cuBLAS on each run's stream) may round differently: the captured
      // step's bound against the eager one.
      double worst = 0;
      for (size_t i = 0; i < 4; ++i) {
        worst = std::max(worst, std::abs(runs[recompute].step_losses[i] - runs["none"].step_losses[i]) /
                                    std::abs(runs["none"].step_losses[i]));
      }
      INFO(models::to_string(kind) << ", recompute " << recompute << " against none: largest relative loss difference "
                                   << worst);
      CHECK(worst <= 1e-3);
    }
    if (kernel_backward(128, true) == "kernel (sm_90a)") {
      // What one layer keeps under "none" and not under "state": h (K V x 2 / 64 bytes a token and head) and
      // v_new (V x 2); under "state" and not under "all": W, U (K + V) x 2 and T (64 x 2). Two layers' worth are
      // held at the step's peak, after the forward; at least one layer's must show.
      const int64_t token_heads = 32 * 512 * 2;
      CHECK(peak["none"] - peak["state"] >= token_heads * (128 * 128 * 2 / 64 + 128 * 2));
      CHECK(peak["state"] - peak["all"] >= token_heads * ((128 + 128) * 2 + 64 * 2));
    }
  }
}

TEST_CASE("cuda: normalised linear attention trains on the kernels (its denominator apart) as on the reference ops",
          "[cuda][backward]") {
  // Under backend kernel the layer runs the op on v alone and the denominator as a cumulative sum
  // (models/linear_attention.h); under reference the op on v with a ones column. Head dim 64 (d_model 128,
  // two heads): the chunked training pair; 32 (d_model 64): the recurrent pair.
  REQUIRE(at::hasCUDA());
  for (const int64_t d_model : {128, 64}) {
    for (const std::string precision : {"fp32", "auto"}) {
      INFO("d_model " << d_model << ", precision " << precision);
      auto c = train::load_experiment(deltabench::testing::source_dir() + "/configs/mqar-tiny.toml");
      c.model.d_model = d_model;
      c.model.mixer = models::default_mixer(models::MixerKind::kLinearAttention);
      c.model.mixer.num_heads = 2;
      c.train.precision = precision;
      c.train.early_stop = 0;
      const auto r = fifty_steps_both_ways(c);
      std::cout << "linear attention d_model " << d_model << " " << precision << ": largest relative loss "
                << "difference, kernel against reference ops, over 50 steps: " << r.worst << "\n";
      CHECK(r.worst <= (precision == "fp32" ? 1e-3 : 2e-2));  // the DeltaNet test's bounds
      CHECK(std::abs(r.ker.final_accuracy - r.ref.final_accuracy) <= 0.05);
    }
  }
}

TEST_CASE("cuda: DeltaNet learns the tiny MQAR on the kernels", "[cuda][backward]") {
  REQUIRE(at::hasCUDA());
  const auto c = train::load_experiment(deltabench::testing::source_dir() + "/configs/mqar-tiny.toml");
  train::TrainOptions options;
  options.placement.device = "cuda";
  options.placement.backend = "kernel";
  options.progress = false;
  options.max_steps = 3000;
  const auto s = train::run_experiment(c, options);
  INFO(s.status << " after " << s.steps << " steps, best " << s.best_accuracy);
  CHECK(s.status == "early_stopped");
  CHECK(s.best_accuracy >= 0.99);
  CHECK(s.backend() == "train fwd kernel, bwd kernel; eval fwd kernel");
}

TEST_CASE("cuda: the captured training step gives the eager step's losses over 200 steps", "[cuda][graph]") {
  REQUIRE(at::hasCUDA());
  for (const auto kind : {models::MixerKind::kAttention, models::MixerKind::kDeltaNet, models::MixerKind::kGatedDeltaNet}) {
    for (const std::string precision : {"fp32", "auto"}) {
      INFO(models::to_string(kind) << ", precision " << precision);
      auto c = train::load_experiment(deltabench::testing::source_dir() + "/configs/mqar-tiny.toml");
      c.model.mixer = models::default_mixer(kind);
      c.model.mixer.num_heads = 2;
      c.model.mixer.chunk_size = 16;
      c.train.precision = precision;
      c.train.early_stop = 0;
      c.task.train_examples = 64 * 90 + 17;  // 91 batches an epoch, the last one partial: eager by its shape
      train::TrainOptions options;
      options.placement.device = "cuda";
      options.progress = false;
      options.max_steps = 200;
      options.cuda_graph = false;
      const auto eager = train::run_experiment(c, options);
      options.cuda_graph = true;
      const auto captured = train::run_experiment(c, options);
      INFO("eager: " << eager.train_step << " | captured: " << captured.train_step);
      CHECK(eager.train_step == "eager (capture off); evaluation eager (capture off)");
      CHECK(captured.train_step ==
            "captured (CUDA graph) after 3 eager steps; 2 eager steps for partial batches; evaluation captured (CUDA graph)");
      REQUIRE(eager.step_losses.size() == 200);
      REQUIRE(captured.step_losses.size() == 200);
      double worst = 0;
      for (size_t i = 0; i < 200; ++i) {
        worst = std::max(worst, std::abs(captured.step_losses[i] - eager.step_losses[i]) / std::abs(eager.step_losses[i]));
      }
      INFO("largest relative loss difference over 200 steps: " << worst);
      // The graph replays the eager step's kernels on the same data: equal to fp32 rounding.
      CHECK(worst <= (precision == "fp32" ? 1e-5 : 1e-3));
      // Evaluation replayed from its graph scores as the eager forward does.
      CHECK(captured.history.size() == eager.history.size());
      for (size_t e = 0; e < std::min(captured.history.size(), eager.history.size()); ++e) {
        CHECK(captured.history[e].accuracy == Approx(eager.history[e].accuracy).margin(precision == "fp32" ? 1e-9 : 0.01));
        CHECK(captured.history[e].test_loss == Approx(eager.history[e].test_loss).epsilon(precision == "fp32" ? 1e-5 : 1e-2));
      }
    }
  }
}

TEST_CASE("cuda: a diverging captured run is recorded as diverged at its step", "[cuda][graph]") {
  REQUIRE(at::hasCUDA());
  auto c = train::load_experiment(deltabench::testing::source_dir() + "/configs/mqar-tiny.toml");
  c.train.lr = 1e30;
  c.train.grad_clip = 0;
  train::TrainOptions options;
  options.placement.device = "cuda";
  options.progress = false;
  options.max_steps = 50;
  const auto s = train::run_experiment(c, options);
  CHECK(s.status == "diverged");
  CHECK(s.diverged_step > 1);
  CHECK(s.diverged_step <= 50);
  CHECK(s.train_step.rfind("captured", 0) == 0);
}

TEST_CASE("cuda: captured runs one after another give their graphs' memory back", "[cuda][graph]") {
  REQUIRE(at::hasCUDA());
  auto c = train::load_experiment(deltabench::testing::source_dir() + "/configs/mqar-tiny.toml");
  c.model.mixer = models::default_mixer(models::MixerKind::kGatedDeltaNet);
  c.model.mixer.chunk_size = 16;
  c.train.early_stop = 0;
  train::TrainOptions options;
  options.placement.device = "cuda";
  options.progress = false;
  options.max_steps = 20;
  const auto allocated = [] {
    return c10::cuda::CUDACachingAllocator::getDeviceStats(0).allocated_bytes[0].current;  // aggregate pool
  };
  (void)train::run_experiment(c, options);  // the first run's one-time allocations (cuBLAS workspaces)
  const auto before = allocated();
  for (int i = 0; i < 5; ++i) {
    const auto s = train::run_experiment(c, options);
    REQUIRE(s.train_step.rfind("captured", 0) == 0);
    // In the log for a diagnosis when it fails: which run kept what.
    std::cout << "captured run " << i + 2 << ": " << allocated() - before << " bytes allocated beyond the first run's\n";
  }
  INFO("allocated before " << before << " bytes, after five captured runs " << allocated());
  // A suite's worker trains hundreds of runs in one process: none may keep its graph's pool.
  CHECK(allocated() <= before + (1 << 20));
}

TEST_CASE("cuda: every run of a thread trains on one stream, not the default stream", "[cuda][graph]") {
  REQUIRE(at::hasCUDA());
  const c10::Device cuda(c10::kCUDA, 0);
  const auto current = [] { return c10::cuda::getCurrentCUDAStream(0); };
  const auto outside = current();
  c10::cuda::CUDAStream first = outside, second = outside;
  {
    const train::RunStreamGuard guard(cuda);
    first = current();
  }
  CHECK(current() == outside);
  {
    const train::RunStreamGuard guard(cuda);
    second = current();
  }
  CHECK(first == second);
  CHECK(first != c10::cuda::getDefaultCUDAStream(0));
}

TEST_CASE("cuda: a captured run killed after an epoch resumes on the GPU and ends as the unkilled run", "[cuda][graph]") {
  REQUIRE(at::hasCUDA());
  auto c = train::load_experiment(deltabench::testing::source_dir() + "/configs/mqar-tiny.toml");
  c.task.train_examples = 64 * 20;  // 20 steps an epoch
  c.model.embed_dropout = 0.1;       // the CUDA generator's state decides the masks
  c.train.epochs = 5;
  c.train.early_stop = 0;
  c.train.precision = "fp32";
  const testing::TempDir temp("deltabench-cuda-resume");
  const auto dir = temp.path();
  train::TrainOptions options;
  options.placement.device = "cuda";
  options.progress = false;
  options.commit = "test";
  options.resume_dir = (dir / "whole").string();
  options.resume_interval_s = 0;
  const auto whole = train::run_experiment(c, options);
  struct Killed {};
  options.resume_dir = (dir / "killed").string();
  options.on_progress = [](const train::Progress& p) {
    if (p.epoch_end && p.epoch == 2) throw Killed{};
  };
  CHECK_THROWS_AS(train::run_experiment(c, options), Killed);
  options.on_progress = nullptr;
  const auto resumed = train::run_experiment(c, options);
  INFO("whole: " << whole.train_step << " | resumed: " << resumed.train_step);
  CHECK(resumed.resumed_after_epoch == 2);
  // The resumed process warms up and captures its own graph: three eager steps after the resume.
  CHECK(resumed.train_step ==
        "captured (CUDA graph) after 3 eager steps; evaluation captured (CUDA graph); resumed after epoch 2");
  REQUIRE(resumed.step_losses.size() == whole.step_losses.size());
  double worst = 0;
  for (size_t i = 0; i < whole.step_losses.size(); ++i) {
    worst = std::max(worst, std::abs(resumed.step_losses[i] - whole.step_losses[i]) / std::abs(whole.step_losses[i]));
  }
  INFO("largest relative loss difference over " << whole.step_losses.size() << " steps: " << worst);
  CHECK(worst <= 1e-5);  // fp32: the same kernels on the same data, parameters, moments and dropout masks
  REQUIRE(resumed.history.size() == 5);
  CHECK(resumed.final_accuracy == Approx(whole.final_accuracy).margin(1e-9));
}
