#include "train/trainer.h"

#include "kernels/common/backend.h"
#include "models/language_model.h"
#include "models/pieces.h"
#include "tasks/dataset.h"
#include "tasks/metrics.h"
#include "tasks/registry.h"

#include "train/json_number.h"
#include "train/resume.h"
#include "train/step.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>
#ifdef DELTABENCH_HAVE_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>
#endif
#include <c10/core/GradMode.h>
#include <fmt/core.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <torch/serialize.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numbers>
#include <string>

namespace deltabench::train {
namespace {

using Clock = std::chrono::steady_clock;

struct Data {
  tasks::TaskData train, test;
};

Data make_data(const TaskConfig& t) {
  Data d;
  if (t.name == "mqar") {
    auto params = t.params;
    const auto defaults = tasks::Params("mqar", tasks::find_task("mqar").params, params);
    const std::string n = defaults.text("num_examples");
    params["num_examples"] = t.train_examples > 0 ? std::to_string(t.train_examples) : n;
    d.train = tasks::generate_task("mqar", params, tasks::Split::kTrain, t.train_seed);
    params["num_examples"] = t.test_examples > 0 ? std::to_string(t.test_examples) : n;
    d.test = tasks::generate_task("mqar", params, tasks::Split::kTest, t.test_seed);
  } else {
    d.train = tasks::generate_task(t.name, t.params, tasks::Split::kTrain, t.train_seed);
    d.test = tasks::generate_task(t.name, t.params, tasks::Split::kTest, t.train_seed);
  }
  return d;
}

void synchronize(const at::Device& device) {
  if (device.is_cuda()) at::detail::getCUDAHooks().deviceSynchronize(device.index() < 0 ? 0 : device.index());
}

// A JSON number, or null for NaN and infinities (which JSON cannot hold).

}  // namespace

bool excluded_from_weight_decay(const std::string& name) {
  return name.find("norm") != std::string::npos || name.ends_with("bias") || name.ends_with("A_log");
}

double scheduled_lr(const TrainConfig& t, int64_t epoch) {
  if (epoch < t.warmup_epochs) return t.lr * static_cast<double>(epoch + 1) / static_cast<double>(t.warmup_epochs + 1);
  const int64_t span = std::max<int64_t>(1, t.epochs - t.warmup_epochs);
  const double progress = static_cast<double>(epoch - t.warmup_epochs) / static_cast<double>(span);
  return t.min_lr + (t.lr - t.min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds)) return "?";
  const auto s = static_cast<int64_t>(std::llround(std::max(0.0, seconds)));
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02d}s", s / 60, s % 60);
  return fmt::format("{}h{:02d}m", s / 3600, (s % 3600) / 60);
}

std::string RunSummary::backend() const {
  return "train fwd " + backend_train_forward + ", bwd " + backend_train_backward + "; eval fwd " + backend_eval_forward;
}

// JSON through nlohmann-json: strings escaped, doubles at full precision (shortest round trip).
std::string to_json(const EpochMetrics& m) {
  const nlohmann::ordered_json j = {{"type", "epoch"},
                                    {"epoch", m.epoch},
                                    {"steps", m.steps},
                                    {"lr", json_number(m.lr)},
                                    {"train_loss", json_number(m.train_loss)},
                                    {"test_loss", json_number(m.test_loss)},
                                    {"accuracy", json_number(m.accuracy)},
                                    {"mqar_accuracy", json_number(m.mqar_accuracy)},
                                    {"micro_accuracy", json_number(m.micro_accuracy)},
                                    {"mad_accuracy", json_number(m.mad_accuracy)},
                                    {"wall_s", json_number(m.wall_s)}};
  return j.dump();
}

std::string to_json(const RunSummary& s, const ExperimentConfig& c, const TrainOptions& o) {
  const nlohmann::ordered_json j = {{"type", "summary"},
                                    {"name", c.name},
                                    {"seed", c.seed},
                                    {"config_hash", o.config_hash.empty() ? c.hash : o.config_hash},
                                    {"commit", o.commit},
                                    {"status", s.status},
                                    {"diverged_step", s.diverged_step},
                                    {"best_accuracy", json_number(s.best_accuracy)},
                                    {"best_epoch", s.best_epoch},
                                    {"final_accuracy", json_number(s.final_accuracy)},
                                    {"epochs", s.epochs},
                                    {"steps", s.steps},
                                    {"wall_s", json_number(s.wall_s)},
                                    {"tokens_per_s", json_number(s.tokens_per_s)},
                                    {"parameters", s.parameters},
                                    {"device", s.device},
                                    {"threads", s.threads},
                                    {"backend_train_forward", s.backend_train_forward},
                                    {"backend_train_backward", s.backend_train_backward},
                                    {"backend_eval_forward", s.backend_eval_forward},
                                    {"backend_pieces", s.backend_pieces},
                                    {"train_step", s.train_step}};
  return j.dump();
}

ScoredLogits scored_logits(models::LanguageModel& model, const at::Tensor& inputs, const at::Tensor& targets,
                           int64_t scored) {
  const auto index = tasks::scored_positions(targets, scored);                                // [b, S]
  const auto h = model->hidden(inputs);                                                       // [b, T, d]
  const auto picked = h.gather(1, index.unsqueeze(-1).expand({-1, -1, h.size(2)}));           // [b, S, d]
  return {model->head(picked), targets.gather(1, index)};
}

MemoryEstimate estimate_memory(const ExperimentConfig& c) {
  MemoryEstimate e;
  const auto [train_n, test_n] = example_counts(c.task);
  const double L = static_cast<double>(tasks::task_sequence_length(c.task.name, c.task.params));
  // Inputs and targets (int64) of both splits, on the host and again on the device.
  e.data_bytes = 2.0 * 2.0 * 8.0 * static_cast<double>(train_n + test_n) * L;
  const auto& m = c.model;
  const double V = static_cast<double>(m.vocab_size), d = static_cast<double>(m.d_model);
  const double layers = static_cast<double>(m.num_layers);
  const double ffn = m.state_mixer == models::StateMixerKind::kNone     ? 0.0
                     : m.state_mixer == models::StateMixerKind::kMlp    ? 2.0 * m.hidden_ratio
                                                                        : 3.0 * m.hidden_ratio;
  const bool tied = m.tie_embeddings && m.backbone == models::Backbone::kLanguageModel;
  const double embeddings = V * d * (tied ? 1.0 : 2.0) + static_cast<double>(m.max_position_embeddings) * d;
  const double per_layer = (8.0 + ffn) * d * d;  // q, k, v, o and gates (Gated DeltaNet's expand_v 2 included)
  // fp32 weights, gradients and AdamW's two moments.
  e.model_bytes = 4.0 * 4.0 * (embeddings + layers * per_layer);
  const double B = static_cast<double>(std::max(c.train.batch_size, c.train.eval_batch_size));
  // fp32 logits, their softmax and gradient; about 24 saved fp32 values per layer and width.
  const double logits = 3.0 * 4.0 * B * L * V, hidden = 24.0 * 4.0 * B * L * d * layers;
  e.activation_bytes = logits + hidden;
  const bool mqar = c.task.name == "mqar";
  if (e.data_bytes >= e.model_bytes && e.data_bytes >= e.activation_bytes) {
    e.largest = mqar ? "[task] train_examples" : "[task.params] num_train_examples";
  } else if (e.model_bytes >= e.activation_bytes) {
    e.largest = V * d >= layers * per_layer ? "[model] vocab_size" : "[model] d_model";
  } else {
    e.largest = logits >= hidden ? "[model] vocab_size" : "[train] batch_size";
  }
  return e;
}

void check_memory(const ExperimentConfig& c, double available, const std::string& where) {
  const auto e = estimate_memory(c);
  if (e.total() <= available) return;
  constexpr double GB = 1e9;
  throw ConfigError(fmt::format(
      "{}: {} makes this run need about {:.1f} GB (data {:.1f}, parameters with AdamW state {:.1f}, activations {:.1f}), "
      "more than the {:.1f} GB available on {}; reduce it",
      c.source, e.largest, e.total() / GB, e.data_bytes / GB, e.model_bytes / GB, e.activation_bytes / GB,
      available / GB, where));
}

RunSummary run_experiment(const ExperimentConfig& c, const TrainOptions& opt) {
  TrainConfig t = c.train;
  if (opt.epochs) t.epochs = *opt.epochs;
  const auto resolved = resolve_device(opt.placement.device, opt.placement.device_origin);
  const BackendChoice backend = resolve_backend(opt.placement, resolved);
  const Recompute recompute = parse_recompute(opt.placement.recompute, opt.placement.recompute_origin);
  const at::Device device = resolved.device;
  const bool autocast = device.is_cuda() && t.precision == "auto";
  const int64_t eval_batch = t.eval_batch_size > 0 ? t.eval_batch_size : t.batch_size;
  // Before any allocation: a size typo is an error naming its key, not gigabytes taken in silence.
  check_memory(c, available_bytes(at::kCPU) + (device.is_cuda() ? estimate_memory(c).total() : 0.0), "this machine");
  if (device.is_cuda()) check_memory(c, available_bytes(device), resolved.name);

  // The whole run on this thread's run stream (see RunStreamGuard).
  const RunStreamGuard stream(device);
  const Data data = make_data(c.task);
  tasks::DeviceDataset train_set(data.train, device), test_set(data.test, device);
  const int64_t V = c.model.vocab_size;
  if (data.train.vocab_size > V) {
    throw ConfigError(c.source + ": [model] vocab_size " + std::to_string(V) + " is smaller than the task's " +
                      std::to_string(data.train.vocab_size));
  }

  torch::manual_seed(c.seed);
  models::ModelConfig model_config = c.model;
  model_config.mixer.backend = backend;
  model_config.mixer.recompute = recompute;
  models::LanguageModel model(model_config);
  model->to(device);
  FusedAdamW optimizer(model, t, device);

  RunSummary summary;
  summary.device = resolved.name;
  summary.gpu_name = resolved.gpu_name;
  summary.threads = at::get_num_threads();
  summary.parameters = models::parameter_count(*model);
  std::ofstream metrics;
  if (!opt.metrics_path.empty()) {
    const std::filesystem::path p(opt.metrics_path);
    if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
    metrics.open(p);
    if (!metrics) throw ConfigError("cannot write metrics to " + opt.metrics_path);
  }
  if (opt.progress) {
    fmt::print("{}: {} on {} (backend {}) | {} train / {} test examples of length {} | {} parameters | {} epochs of {} "
               "steps\n",
               c.name, models::to_string(c.model.mixer.kind), resolved.name, backend_text(backend, recompute),
               train_set.size(), test_set.size(),
               train_set.seq_len(), summary.parameters, t.epochs, train_set.num_batches(t.batch_size));
    std::fflush(stdout);
  }

  const auto start = Clock::now();
  auto last_print = start;
  const auto since = [&](Clock::time_point from) { return std::chrono::duration<double>(Clock::now() - from).count(); };
  const int64_t steps_per_epoch = train_set.num_batches(t.batch_size);
  // The head runs only where there are targets: at most this many positions of an example.
  const int64_t train_scored = tasks::max_scored_positions(data.train.targets);
  const int64_t test_scored = tasks::max_scored_positions(data.test.targets);
  const int64_t total_steps = steps_per_epoch * t.epochs;
  int64_t tokens = 0;
  summary.status = "completed";
  BackendCounts train_calls, eval_calls;
  models::PieceCounts train_pieces;
  int64_t steps_before = 0;  // steps a resume state brought: not this process's rate
  double wall_before = 0;    // the time they took
  const auto report = [&](int64_t epoch, int64_t step, double loss, const EpochMetrics* evaluated) {
    // This process's part of the run: a resumed run's earlier time is not in its rate, nor in what the
    // runner subtracts from its own elapsed time for the shard's ETA.
    const double elapsed = since(start);
    const double rate = static_cast<double>(summary.steps - steps_before) / std::max(elapsed, 1e-9);
    const double eta = summary.steps > steps_before ? static_cast<double>(total_steps - summary.steps) / rate : NAN;
    if (opt.on_progress) {
      Progress p;
      p.epoch = epoch + 1, p.epochs = t.epochs, p.step = step, p.steps_per_epoch = steps_per_epoch;
      p.steps = summary.steps, p.total_steps = total_steps, p.loss = loss, p.elapsed_s = elapsed, p.eta_s = eta;
      p.epoch_end = evaluated != nullptr;
      p.accuracy = evaluated ? evaluated->accuracy : 0.0;
      opt.on_progress(p);
    } else if (opt.progress && evaluated) {
      const auto& m = *evaluated;
      fmt::print("epoch {}/{} | loss {:.4f} | test loss {:.4f} | accuracy {:.4f} (best {:.4f}) | lr {:.2e} | {:.1f} steps/s | ETA {}\n",
                 m.epoch, t.epochs, m.train_loss, m.test_loss, m.accuracy, summary.best_accuracy, m.lr, rate,
                 format_duration(eta));
    } else if (opt.progress) {
      fmt::print("  epoch {}/{} step {}/{} loss {:.4f} | {:.1f} steps/s | ETA {}\n", epoch + 1, t.epochs, step,
                 steps_per_epoch, loss, rate, format_duration(eta));
    }
    std::fflush(stdout);
    last_print = Clock::now();
  };

  StepOptions step_options;
  step_options.vocab_size = V;
  step_options.scored = train_scored;
  step_options.grad_clip = t.grad_clip;
  step_options.autocast = autocast;
  step_options.capture = opt.cuda_graph;
  step_options.capacity = opt.max_steps > 0 ? std::min(opt.max_steps, total_steps) : total_steps;
  TrainStep step(model, optimizer, step_options, device);
  StepOptions eval_options = step_options;
  eval_options.scored = test_scored;
  EvalStep eval_step(model, eval_options, device);

  // A resume state of this run (train/resume.h): its epochs are done; the run goes on after them.
  const std::string run_hash = opt.config_hash.empty() ? c.hash : opt.config_hash;
  int64_t first_epoch = 0;
  // The commits this run trained at, each from its first epoch: more than one where it went on from a state saved
  // at another commit (resume_any_commit).
  std::vector<std::pair<int64_t, std::string>> commits = {{1, opt.commit}};
  auto last_save = Clock::now();
  if (!opt.resume_dir.empty()) {
    std::string why_not;
    auto r = load_resume_state(opt.resume_dir, run_hash, t.epochs, opt.commit, opt.resume_any_commit, model, optimizer,
                               device, &why_not);
    if (r) {
      first_epoch = r->epochs_done;
      tokens = r->tokens;
      steps_before = r->summary.steps;
      wall_before = r->summary.wall_s;
      train_calls = r->train_calls;
      eval_calls = r->eval_calls;
      train_pieces = r->train_pieces;
      const RunSummary& before = r->summary;
      summary.steps = before.steps, summary.epochs = before.epochs;
      summary.best_accuracy = before.best_accuracy, summary.best_epoch = before.best_epoch;
      summary.final_accuracy = before.final_accuracy;
      summary.history = before.history, summary.step_losses = before.step_losses;
      summary.resumed_after_epoch = first_epoch;
      commits = r->commits;
      if (r->commit != opt.commit) commits.emplace_back(first_epoch + 1, opt.commit);
      step.resume_at(steps_before);
      if (opt.progress && !opt.on_progress) {
        fmt::print("resumed after epoch {} of {} ({} steps) from {}\n", first_epoch, t.epochs, steps_before,
                   opt.resume_dir);
      }
    } else if (!why_not.empty()) {
      fmt::print(stderr, "{}\n", why_not);
    }
  }
  const auto save_state = [&] {
    ResumeState state;
    state.config_hash = run_hash;
    state.commit = opt.commit;
    state.commits = commits;
    state.total_epochs = t.epochs;
    state.epochs_done = summary.epochs;
    state.tokens = tokens;
    state.summary = summary;
    state.summary.wall_s = wall_before + since(start);
    state.train_calls = train_calls;
    state.eval_calls = eval_calls;
    state.train_pieces = train_pieces;
    save_resume_state(opt.resume_dir, state, model, optimizer, device);
    last_save = Clock::now();
  };
  // Losses come back from the device when progress is reported and at the end of each epoch: the
  // first non-finite one marks the run diverged at its step.
  double epoch_loss_sum = 0;
  int64_t epoch_losses = 0;
  double last_loss = NAN;
  const auto absorb = [&] {
    for (const double value : step.read_losses()) {
      summary.step_losses.push_back(value);
      last_loss = value;
      if (!std::isfinite(value) && summary.status != "diverged") {
        summary.status = "diverged";
        summary.diverged_step = static_cast<int64_t>(summary.step_losses.size());
        if (opt.progress && !opt.on_progress) fmt::print("diverged: loss {} at step {}\n", value, summary.diverged_step);
      }
      if (summary.status != "diverged") epoch_loss_sum += value, ++epoch_losses;
    }
  };

  for (int64_t epoch = first_epoch; epoch < t.epochs && summary.status == "completed"; ++epoch) {
    const double lr = scheduled_lr(t, epoch);
    optimizer.set_lr(lr);
    train_set.start_epoch(c.seed, epoch);
    model->train();
    epoch_loss_sum = 0;
    epoch_losses = 0;
    const auto train_before = backend_counts();
    const auto pieces_before = models::piece_counts();
    for (int64_t b = 0; b < steps_per_epoch; ++b) {
      const auto batch = train_set.batch(b, t.batch_size);
      step.run(batch);
      summary.steps = step.steps();
      tokens += batch.inputs.numel();
      if ((opt.progress || opt.on_progress) && since(last_print) > opt.progress_interval_s) {
        absorb();
        if (summary.status == "diverged") break;
        report(epoch, b + 1, last_loss, nullptr);
      }
      if (opt.max_steps > 0 && summary.steps >= opt.max_steps) break;
    }
    absorb();
    train_calls += backend_counts() - train_before;
    train_pieces += models::piece_counts() - pieces_before;
    if (summary.status == "diverged") break;

    // Evaluation on the test set, in order, with the task's metric.
    model->eval();
    tasks::Evaluator evaluator;
    double test_loss = 0;
    const auto eval_before = backend_counts();
    {
      // Every batch is queued before anything is read back: one synchronisation per evaluation.
      test_set.start_epoch(0, 0, /*shuffle=*/false);
      std::vector<std::pair<at::Tensor, at::Tensor>> predictions;
      at::Tensor loss_sum = at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(device));
      for (int64_t b = 0; b < test_set.num_batches(eval_batch); ++b) {
        predictions.push_back(eval_step.run(test_set.batch(b, eval_batch), loss_sum));
      }
      for (const auto& [preds, targets] : predictions) evaluator.add_batch(preds, targets);
      test_loss = loss_sum.item<double>();
    }
    eval_calls += backend_counts() - eval_before;
    EpochMetrics m;
    m.epoch = epoch + 1;
    m.steps = summary.steps;
    m.lr = lr;
    m.train_loss = epoch_losses ? epoch_loss_sum / static_cast<double>(epoch_losses) : NAN;
    m.test_loss = test_loss / static_cast<double>(std::max<int64_t>(1, evaluator.scored_tokens()));
    m.mqar_accuracy = evaluator.mqar_accuracy();
    m.micro_accuracy = evaluator.micro_accuracy();
    m.mad_accuracy = evaluator.mad_accuracy();
    m.accuracy = data.test.metric == tasks::Metric::kMqarAccuracy ? m.mqar_accuracy : m.mad_accuracy;
    synchronize(device);
    m.wall_s = wall_before + since(start);
    summary.history.push_back(m);
    summary.epochs = m.epoch;
    summary.final_accuracy = m.accuracy;
    if (m.accuracy > summary.best_accuracy || summary.best_epoch == 0) {
      summary.best_accuracy = m.accuracy;
      summary.best_epoch = m.epoch;
    }
    if (metrics.is_open()) metrics << to_json(m) << "\n" << std::flush;
    // The state after this epoch, where another epoch follows (before the report: a kill then loses nothing).
    const bool early_stop = t.early_stop > 0 && m.accuracy >= t.early_stop;
    const bool step_limit = opt.max_steps > 0 && summary.steps >= opt.max_steps;
    const bool last = epoch + 1 >= t.epochs || early_stop || step_limit;
    if (!opt.resume_dir.empty() && !last && since(last_save) >= opt.resume_interval_s) save_state();
    if (opt.progress || opt.on_progress) report(epoch, epoch_losses, m.train_loss, &m);
    if (early_stop) summary.status = "early_stopped";
    if (step_limit) break;
  }

  synchronize(device);
  summary.wall_s = wall_before + since(start);
  summary.tokens_per_s = static_cast<double>(tokens) / summary.wall_s;
  // Softmax attention calls no deltabench sequence op: its attention is ATen's SDPA.
  const bool ours = train_calls.reference + train_calls.kernel + eval_calls.reference + eval_calls.kernel > 0;
  const std::string aten = c.model.mixer.kind == models::MixerKind::kAttention ? "aten (sdpa)" : "none";
  summary.backend_train_forward = ours ? forward_backend(train_calls) : aten;
  summary.backend_train_backward = ours ? backward_backend(train_calls) : (summary.steps > 0 ? aten : "none");
  summary.backend_eval_forward = ours ? forward_backend(eval_calls) : (summary.epochs > 0 ? aten : "none");
  summary.backend_pieces = models::pieces_summary(train_pieces);
  summary.train_step = step.mode() + "; evaluation " + eval_step.mode();
  if (first_epoch > 0) summary.train_step += fmt::format("; resumed after epoch {}", first_epoch);
  if (commits.size() > 1) {  // "; trained at commit a1 from epoch 1, b2 from epoch 7"
    std::vector<std::string> parts;
    for (const auto& [epoch, commit] : commits) parts.push_back(fmt::format("{} from epoch {}", commit, epoch));
    summary.train_step += fmt::format("; trained at commit {}", fmt::join(parts, ", "));
  }
  // What the sm_90a training op computed again rather than keep: its time (and memory) depend on it.
  if (recompute != Recompute::kNone) summary.train_step += fmt::format("; recompute {}", recompute_name(recompute));
  if (!opt.resume_dir.empty()) {  // the run ended: nothing to resume
    std::error_code ec;
    std::filesystem::remove(std::filesystem::path(opt.resume_dir) / "state.pt", ec);
    std::filesystem::remove(opt.resume_dir, ec);  // only when empty
  }
  const auto& checkpoint = opt.placement.checkpoint;
  if (!checkpoint.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(checkpoint, ec);
    if (ec) throw ConfigError(opt.placement.checkpoint_origin + ": cannot create \"" + checkpoint + "\": " + ec.message());
    torch::save(model, checkpoint + "/model.pt");
    torch::save(optimizer.state(), checkpoint + "/optimizer.pt");
  }
  if (metrics.is_open()) metrics << to_json(summary, c, opt) << "\n";
  return summary;
}

}  // namespace deltabench::train
