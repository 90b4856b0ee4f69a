// GPU tests of tasks/dataset, models and train (ctest label "cuda"; run by scripts/device.sh).

#include "models/language_model.h"
#include "tasks/dataset.h"
#include "tasks/mqar.h"
#include "tests/support/catch.h"
#include "train/trainer.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <c10/core/GradMode.h>

using namespace deltabench;

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
  auto c = train::load_experiment(std::string(DELTABENCH_SOURCE_DIR) + "/configs/mqar-tiny.toml");
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
  // Training runs the reference ops (no backward kernel yet); so does evaluation at this preset's
  // head dim 32 and chunk 16, which the forward kernel does not serve (K and V of 64 or 128, chunk 64).
  CHECK(s.backend_train_forward == "reference");
  CHECK(s.backend_train_backward == "reference (ATen autograd)");
  CHECK(s.backend_eval_forward == "reference");
  // At head dim 64 and chunk 64 evaluation runs on the forward kernel, and the record says so.
  c.model.d_model = 128;
  c.model.mixer.chunk_size = 64;
  options.max_steps = 10;
  const auto k = train::run_experiment(c, options);
  CHECK(k.backend_train_forward == "reference");
  CHECK(k.backend_eval_forward == "kernel");
}
