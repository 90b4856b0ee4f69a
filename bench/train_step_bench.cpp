// One training step of the models the suites train: forward, loss at the scored positions, backward,
// clipping and the fused AdamW (train/step.h), eager or replayed from a captured CUDA graph. Zoology's
// MQAR model (vocabulary 8192, d_model 128, 2 layers, LayerNorm, no MLPs, tied head) at its three
// shapes on a GPU; the quick suite's MQAR model (vocabulary 128, d_model 64, L 64, B 64) on a CPU.
// bench/train_step_fla.py times the same model in PyTorch + FLA beside it.
//
//   build/bench/train_step_bench --benchmark_counters_tabular=true              (CPU)
//   build/bench/train_step_bench --device=cuda --benchmark_out=train_step.json   (GPU)

#include "bench/device_flag.h"
#include "kernels/common/cuda_dispatch.h"
#include "kernels/common/scoped_switch.h"
#ifdef DELTABENCH_HAVE_CUDA
#include "kernels/common/sm90/sm90_kernels.h"
#endif
#include "models/language_model.h"
#include "tasks/dataset.h"
#include "tasks/registry.h"
#include "train/step.h"

#include <ATen/ATen.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <benchmark/benchmark.h>

#include <map>
#include <utility>
#include <vector>
#include <string>

namespace {

using deltabench::models::MixerKind;

at::Device g_device(at::kCPU);

// Whether the sm_90a training op can run here (a CUDA build, a compute capability 9.0 device).
bool sm90_available() {
#ifdef DELTABENCH_HAVE_CUDA
  return deltabench::cuda::sm90::available();
#else
  return false;
#endif
}

void synchronize() {
  if (g_device.is_cuda()) at::detail::getCUDAHooks().deviceSynchronize(0);
}

struct Shape {
  int64_t vocab, d_model, L, B, pairs;
};

deltabench::models::ModelConfig model_config(MixerKind kind, const Shape& s, deltabench::BackendChoice backend) {
  deltabench::models::ModelConfig c;
  c.vocab_size = s.vocab;
  c.d_model = s.d_model;
  c.num_layers = 2;
  c.norm = deltabench::models::NormKind::kLayerNorm;
  c.state_mixer = deltabench::models::StateMixerKind::kNone;
  c.mixer = deltabench::models::default_mixer(kind);
  if (kind == MixerKind::kDeltaNet || kind == MixerKind::kGatedDeltaNet) c.mixer.num_heads = 2;  // Zoology's
  if (kind == MixerKind::kAttention) c.max_position_embeddings = s.L;  // as the zoology-mqar suite
  c.mixer.backend = backend;
  return c;
}

// Args: mixer, vocab, d_model, L, B, pairs, captured (0 eager, 1 a CUDA graph after warm-up), kernel
// (0: backend reference, the reference ops and ATen's forms of every piece; 1: backend kernel,
// deltabench's training kernels and its kernels for every piece, the LayerNorms and the embedding's
// gradient among them, not registered since auto equals it wherever every kernel serves (the numbers keep
// the meaning they had in earlier measurements); 2: backend auto, which takes each of those where it
// serves, with the chunked training pair (set_sm90_train off: what runs train off Hopper); 3: auto with the
// chunked pair on the sm_90a training op (Hopper, K and V of 64 or 128), as the user's runs do on Hopper since
// it became the default, against 2 in the same run; 4: backend kernel with the sm_90a training op on, for
// linear attention, whose normalised form takes the training op only under kernel (its denominator apart), where
// auto keeps the reference ops below kAutoApartMinLength tokens. Attention runs SDPA under every backend, so its
// 2 against 0 is the gain of the pieces' kernels alone).
void BM_train_step(benchmark::State& state) {
  const auto kind = static_cast<MixerKind>(state.range(0));
  const Shape shape{state.range(1), state.range(2), state.range(3), state.range(4), state.range(5)};
  const bool captured = state.range(6) != 0;
  const int64_t backend_arg = state.range(7);
  const auto backend = backend_arg == 2 || backend_arg == 3 ? deltabench::BackendChoice::kAuto
                       : backend_arg == 1 || backend_arg == 4 ? deltabench::BackendChoice::kKernel
                                                              : deltabench::BackendChoice::kReference;
  const bool sm90 = backend_arg >= 3;
  if (sm90 && !sm90_available()) {
    state.SkipWithError("the sm_90a training op runs on compute capability 9.0 only");
    return;
  }
  const deltabench::detail::ScopedKernelSwitch sm90_switch(deltabench::detail::set_sm90_train,
                                                           deltabench::detail::sm90_train, sm90);
  const deltabench::train::RunStreamGuard stream(g_device);
  const std::map<std::string, std::string> params = {{"vocab_size", std::to_string(shape.vocab)},
                                                     {"seq_len", std::to_string(shape.L)},
                                                     {"num_kv_pairs", std::to_string(shape.pairs)},
                                                     {"num_examples", std::to_string(shape.B)},
                                                     {"random_non_queries", "false"}};
  const auto data = deltabench::tasks::generate_task("mqar", params, deltabench::tasks::Split::kTrain, 0);
  deltabench::tasks::DeviceDataset set(data, g_device);
  set.start_epoch(0, 0, false);
  const auto batch = set.batch(0, shape.B);

  torch::manual_seed(0);
  deltabench::models::LanguageModel model(
      model_config(kind, shape, backend));
  model->to(g_device);
  model->train();
  deltabench::train::TrainConfig t;
  t.lr = 1e-3;
  t.weight_decay = 0.1;
  deltabench::train::FusedAdamW optimizer(model, t, g_device);
  deltabench::train::StepOptions o;
  o.vocab_size = shape.vocab;
  o.scored = deltabench::tasks::max_scored_positions(data.targets);
  o.grad_clip = 1.0;
  o.autocast = g_device.is_cuda();
  o.capture = captured;
  o.capacity = 1'000'000;
  deltabench::train::TrainStep step(model, optimizer, o, g_device);
  for (int i = 0; i < 5; ++i) step.run(batch);  // warm-up: the allocator, cuBLAS, and the capture
  synchronize();
  if (captured && !step.captured()) {
    state.SkipWithError(("the step was not captured: " + step.mode()).c_str());
    return;
  }
  for (auto _ : state) {
    step.run(batch);
    synchronize();
  }
  if (step.steps() > 0) (void)step.read_losses();
  state.SetLabel(std::string(deltabench::models::to_string(kind)) + (captured ? "/captured" : "/eager") +
                 "/" + std::string(deltabench::backend_choice_name(backend)) + (sm90 ? "/sm90" : "") + "/" +
                 (g_device.is_cuda() ? "cuda" : "cpu"));
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(shape.B * shape.L),
                                                  benchmark::Counter::kIsIterationInvariantRate);
}

void register_all() {
  // A GPU case: mixer k on shape s, captured or eager, backend kernel (0 reference, 1 kernel, 2 auto, each
  // with the sm_90a training op off; 3 auto with it on, Hopper's default).
  const auto add = [](int64_t k, const Shape& s, int captured, int kernel) {
    benchmark::RegisterBenchmark("train_step", BM_train_step)
        ->Args({k, s.vocab, s.d_model, s.L, s.B, s.pairs, captured, kernel})
        ->ArgNames({"mixer", "V", "d", "L", "B", "pairs", "graph", "kernel"})
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->MinTime(0.3);
  };
  const MixerKind kinds[] = {MixerKind::kAttention, MixerKind::kLinearAttention, MixerKind::kDeltaNet,
                             MixerKind::kGatedDeltaNet};
  for (const auto kind : kinds) {
    const auto k = static_cast<int64_t>(kind);
    if (g_device.is_cuda()) {
      // Zoology's MQAR model at its three (L, B) shapes, with its pairs per length.
      for (const Shape s : {Shape{8192, 128, 64, 512, 4}, Shape{8192, 128, 256, 256, 16}, Shape{8192, 128, 512, 128, 64}}) {
        // Every mixer eager and captured on the reference ops, and captured under auto (as a run trains off
        // Hopper; kernel:3 below as one trains on it).
        // Where every kernel serves (DeltaNet and Gated DeltaNet here, attention's pieces) auto is the
        // kernel backend, so that is not timed twice. Linear attention's normalised form (this model's)
        // carries V + 1 value columns under auto, which the training kernels (V a multiple of 32) do not
        // take: its op stays on the reference ops and its pieces (LayerNorm, embedding) take the kernels.
        // Under the kernel backend its denominator goes apart and the op on v takes the training kernels
        // (models/linear_attention.h): timed beside auto, for auto to take it where it wins.
        std::vector<std::pair<int, int>> cases = {{0, 0}, {1, 0}, {1, 2}};
        if (kind == MixerKind::kLinearAttention) cases.emplace_back(1, 1);
        // Linear attention under kernel on the sm_90a training op (Hopper), beside auto there (kernel:3).
        if (kind == MixerKind::kLinearAttention && sm90_available()) {
          cases.emplace_back(1, 3);
          cases.emplace_back(1, 4);
        }
        // The delta rules (K 64; V 64, Gated DeltaNet's 128) on the sm_90a training op, on a Hopper GPU.
        const bool delta = kind == MixerKind::kDeltaNet || kind == MixerKind::kGatedDeltaNet;
        if (delta && sm90_available()) cases.emplace_back(1, 3);
        for (const auto& [captured, kernel] : cases) {
          add(k, s, captured, kernel);
        }
      }
      // The grid's other DeltaNet and Gated DeltaNet widths (two heads: d_model 64, 256 and 512 give K 32,
      // 128 and 256, Gated DeltaNet's V twice K), which the fused forward does not take: auto trains them on
      // the recurrent pair at L 256 and on the reference ops below 256 tokens, kernel on the chunked pair with
      // the stages' forward (kernels/delta_rule/NOTES.md). At L 256, and d_model 64 (K 32, as MAD's layers
      // have) at L 64 too. Both captured.
      if (kind == MixerKind::kDeltaNet || kind == MixerKind::kGatedDeltaNet) {
        for (const Shape s : {Shape{8192, 64, 64, 512, 4}, Shape{8192, 64, 256, 256, 16}, Shape{8192, 256, 256, 256, 16},
                              Shape{8192, 512, 256, 256, 16}}) {
          for (const int kernel : {2, 1}) {
            add(k, s, /*captured=*/1, kernel);
          }
        }
      }
      // Linear attention at head dim 32 (d_model 64, two heads; MAD's layers have K 32 at d_model 128, four
      // heads), L 64 and 256, auto against kernel: for the length from which auto puts its denominator
      // apart at that head dim (kAutoApartMinLength, measured at K 64 only). MAD's runs take L 128.
      if (kind == MixerKind::kLinearAttention) {
        for (const Shape s : {Shape{8192, 64, 64, 512, 4}, Shape{8192, 64, 256, 256, 16}}) {
          for (const int kernel : {2, 1}) {
            add(k, s, /*captured=*/1, kernel);
          }
        }
        // Zoology's L 128 (B 512, 8 pairs), at d_model 128, which zoology-mqar's linear attention runs have still
        // to train: auto (the reference ops) against kernel on the sm_90a op, on Hopper.
        if (sm90_available()) {
          for (const int kernel : {3, 4}) add(k, Shape{8192, 128, 128, 512, 8}, /*captured=*/1, kernel);
        }
      }
    } else {
      // The quick suite's MQAR model at d_model 64.
      benchmark::RegisterBenchmark("train_step", BM_train_step)
          ->Args({k, 128, 64, 64, 64, 4, 0, 0})
          ->ArgNames({"mixer", "V", "d", "L", "B", "pairs", "graph", "kernel"})
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  g_device = deltabench::bench::take_device_flag(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  register_all();
  benchmark::AddCustomContext("device", g_device.str());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
