#include "train/step.h"

#include "tasks/task.h"
#include "train/trainer.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/detail/CUDAHooksInterface.h>
#ifdef DELTABENCH_HAVE_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#endif
#include <c10/util/Exception.h>
#include <fmt/core.h>

#include <algorithm>
#include <exception>
#include <map>
#include <optional>
#include <stdexcept>

namespace deltabench::train {

AutocastGuard::AutocastGuard(bool on, bool cache) : on_(on) {
  if (!on_) return;
  cache_before_ = at::autocast::is_autocast_cache_enabled();
  at::autocast::set_autocast_cache_enabled(cache);
  at::autocast::set_autocast_enabled(at::kCUDA, true);
  at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (!on_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(at::kCUDA, false);
  at::autocast::set_autocast_cache_enabled(cache_before_);
}

#ifdef DELTABENCH_HAVE_CUDA
struct RunStreamGuard::Impl {
  std::optional<c10::cuda::CUDAStreamGuard> guard;
};

RunStreamGuard::RunStreamGuard(const at::Device& device) : impl_(std::make_unique<Impl>()) {
  if (!device.is_cuda()) return;
  const c10::DeviceIndex index = device.index() < 0 ? c10::cuda::current_device() : device.index();
  thread_local std::map<c10::DeviceIndex, c10::cuda::CUDAStream> streams;
  auto it = streams.find(index);
  if (it == streams.end()) it = streams.emplace(index, c10::cuda::getStreamFromPool(false, index)).first;
  impl_->guard.emplace(it->second);
}
#else
struct RunStreamGuard::Impl {};

RunStreamGuard::RunStreamGuard(const at::Device& device) : impl_(std::make_unique<Impl>()) {
  TORCH_CHECK(!device.is_cuda(), "RunStreamGuard: this build has no CUDA, asked for ", device);
}
#endif

RunStreamGuard::~RunStreamGuard() = default;

FusedAdamW::FusedAdamW(models::LanguageModel& model, const TrainConfig& t, const at::Device& device)
    : lr_value_(t.lr), beta1_(t.beta1), beta2_(t.beta2), eps_(t.eps), device_lr_(device.is_cuda()) {
  groups_.resize(2);
  groups_[0].weight_decay = t.weight_decay;
  groups_[1].weight_decay = 0.0;
  for (const auto& p : model->named_parameters()) {
    auto& g = groups_[excluded_from_weight_decay(p.key()) ? 1 : 0];
    const auto& w = p.value();
    g.params.push_back(w);
    g.exp_avg.push_back(at::zeros_like(w, at::MemoryFormat::Preserve));
    g.exp_avg_sq.push_back(at::zeros_like(w, at::MemoryFormat::Preserve));
    // One fp32 count per parameter, as torch.optim keeps it; on the device where the update is captured.
    g.steps.push_back(at::zeros({}, at::TensorOptions().dtype(at::kFloat).device(device_lr_ ? device : at::kCPU)));
  }
  if (device_lr_) lr_ = at::full({}, t.lr, at::TensorOptions().dtype(at::kFloat).device(device));
}

void FusedAdamW::set_lr(double lr) {
  lr_value_ = lr;
  if (device_lr_) lr_.fill_(lr);
}

void FusedAdamW::zero_grad() {
  for (auto& g : groups_) {
    for (auto& p : g.params) p.mutable_grad() = at::Tensor();
  }
}

std::vector<at::Tensor> FusedAdamW::grads() const {
  std::vector<at::Tensor> out;
  for (const auto& g : groups_) {
    for (const auto& p : g.params) {
      if (p.grad().defined()) out.push_back(p.grad());
    }
  }
  return out;
}

std::vector<at::Tensor> FusedAdamW::state() const {
  std::vector<at::Tensor> out;
  for (const auto& g : groups_) out.insert(out.end(), g.exp_avg.begin(), g.exp_avg.end());
  for (const auto& g : groups_) out.insert(out.end(), g.exp_avg_sq.begin(), g.exp_avg_sq.end());
  for (const auto& g : groups_) out.insert(out.end(), g.steps.begin(), g.steps.end());
  return out;
}

void FusedAdamW::load_state(const std::vector<at::Tensor>& state) {
  const auto into = this->state();
  if (state.size() != into.size()) {
    throw std::invalid_argument("AdamW state: expected " + std::to_string(into.size()) + " tensors, got " +
                                std::to_string(state.size()));
  }
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < into.size(); ++i) {
    if (state[i].sizes() != into[i].sizes()) {
      throw std::invalid_argument(c10::str("AdamW state: tensor ", i, " has shape ", state[i].sizes(), ", expected ",
                                           into[i].sizes()));
    }
    into[i].copy_(state[i]);  // state() hands out the optimizer's own tensors
  }
}

void FusedAdamW::step() {
  for (auto& g : groups_) {
    std::vector<at::Tensor> params, grads, exp_avg, exp_avg_sq, steps;
    for (size_t i = 0; i < g.params.size(); ++i) {
      if (!g.params[i].grad().defined()) continue;  // as torch.optim: a parameter without a gradient is left alone
      params.push_back(g.params[i]);
      grads.push_back(g.params[i].grad());
      exp_avg.push_back(g.exp_avg[i]);
      exp_avg_sq.push_back(g.exp_avg_sq[i]);
      steps.push_back(g.steps[i]);
    }
    if (params.empty()) continue;
    at::NoGradGuard no_grad;
    at::_foreach_add_(steps, 1);
    if (device_lr_) {
      at::_fused_adamw_(params, grads, exp_avg, exp_avg_sq, {}, steps, lr_, beta1_, beta2_, g.weight_decay, eps_,
                        /*amsgrad=*/false, /*maximize=*/false);
    } else {
      at::_fused_adamw_(params, grads, exp_avg, exp_avg_sq, {}, steps, lr_value_, beta1_, beta2_, g.weight_decay, eps_,
                        /*amsgrad=*/false, /*maximize=*/false);
    }
  }
}

void clip_grad_norm(const std::vector<at::Tensor>& grads, double max_norm) {
  if (grads.empty()) return;
  at::NoGradGuard no_grad;
  const auto norms = at::_foreach_norm(grads, 2);
  const auto total = at::linalg_vector_norm(at::stack(norms), 2);
  // clip_grad_norm_'s coefficient, clamped at 1 on the device: max_norm / (norm + 1e-6).
  const auto coefficient = at::clamp_max(at::reciprocal(total + 1e-6) * max_norm, 1.0);
  at::_foreach_mul_(grads, coefficient);
}

#ifdef DELTABENCH_HAVE_CUDA
struct TrainStep::Graph {
  at::cuda::CUDAGraph graph;
};

namespace {
// Records `work` into `graph`. Returns the empty string, or why the capture failed: the capture is
// ended and the CUDA runtime's last error cleared, so the caller can go on eagerly.
template <class Work>
std::string try_capture(at::cuda::CUDAGraph& graph, Work&& work) {
  try {
    graph.capture_begin();
    try {
      work();
    } catch (...) {
      try {
        graph.capture_end();
      } catch (...) {
      }
      throw;
    }
    graph.capture_end();
    return {};
  } catch (const std::exception& e) {
    (void)cudaGetLastError();
    const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
    std::string why = c10_error ? c10_error->what_without_backtrace() : e.what();
    return why.empty() ? "unknown error" : why;
  }
}
}  // namespace
#else
struct TrainStep::Graph {};
#endif

TrainStep::TrainStep(models::LanguageModel& model, FusedAdamW& optimizer, const StepOptions& options,
                     const at::Device& device)
    : model_(model), optimizer_(optimizer), options_(options), device_(device) {
  const auto on = at::TensorOptions().device(device);
  losses_ = at::full({std::max<int64_t>(1, options.capacity)}, NAN, on.dtype(at::kFloat));
  index_ = at::zeros({1}, on.dtype(at::kLong));
#ifndef DELTABENCH_HAVE_CUDA
  options_.capture = false;
#endif
  if (!device.is_cuda()) options_.capture = false;
}

TrainStep::~TrainStep() {
  // A graph's private memory pool is freed only when every tensor allocated in it is: the gradients
  // the captured backward allocated there go first, then the graph, then the cached blocks. On the
  // H200 a process that captured forty steps in turn (the training-step benchmark) had 56 GiB left in
  // private pools without this (results/device/2026-12-03-h200-train-step.md).
  optimizer_.zero_grad();
  static_inputs_ = at::Tensor();
  static_targets_ = at::Tensor();
#ifdef DELTABENCH_HAVE_CUDA
  if (graph_) {
    graph_.reset();
    c10::cuda::CUDACachingAllocator::emptyCache();
  }
#endif
}

void TrainStep::body(const at::Tensor& inputs, const at::Tensor& targets) {
  at::Tensor loss;
  {
    AutocastGuard guard(options_.autocast, /*cache=*/graph_ == nullptr && captured_at_ < 0);
    const auto out = scored_logits(model_, inputs, targets, options_.scored);
    loss = at::cross_entropy_loss(out.logits.reshape({-1, options_.vocab_size}).to(at::kFloat),
                                  out.targets.reshape(-1), {}, at::Reduction::Mean, tasks::kIgnoreIndex);
  }
  {
    at::NoGradGuard no_grad;
    losses_.index_copy_(0, index_, loss.detach().reshape({1}));
    index_.add_(1);
  }
  loss.backward();
  if (options_.grad_clip > 0) clip_grad_norm(optimizer_.grads(), options_.grad_clip);
  optimizer_.step();
}

void TrainStep::capture(const tasks::Batch& batch) {
#ifdef DELTABENCH_HAVE_CUDA
  static_inputs_ = batch.inputs.clone();
  static_targets_ = batch.targets.clone();
  // The captured backward allocates the gradients in the graph's pool; they stay there for its replays.
  optimizer_.zero_grad();
  auto graph = std::make_unique<Graph>();
  captured_at_ = issued_ - first_;
  failure_ = try_capture(graph->graph, [&] { body(static_inputs_, static_targets_); });
  if (!failure_.empty()) {
    captured_at_ = -1;
    optimizer_.zero_grad();
    at::detail::getCUDAHooks().deviceSynchronize(device_.index() < 0 ? 0 : device_.index());
    body(batch.inputs, batch.targets);  // this step, eagerly
    return;
  }
  graph_ = std::move(graph);
  graph_->graph.replay();  // capturing recorded the step; replaying runs it
#else
  (void)batch;
#endif
}

void TrainStep::run(const tasks::Batch& batch) {
  TORCH_CHECK(issued_ < losses_.size(0), "TrainStep: more steps than the ", losses_.size(0), " it was sized for");
  const bool full = static_inputs_.defined() ? batch.inputs.sizes() == static_inputs_.sizes() : true;
#ifdef DELTABENCH_HAVE_CUDA
  if (graph_ && full) {
    static_inputs_.copy_(batch.inputs, /*non_blocking=*/true);
    static_targets_.copy_(batch.targets, /*non_blocking=*/true);
    graph_->graph.replay();
    ++issued_;
    return;
  }
  if (options_.capture && !graph_ && failure_.empty() && issued_ - first_ >= options_.warmup && full) {
    capture(batch);
    ++issued_;
    return;
  }
#endif
  if (graph_) ++eager_after_capture_;
  optimizer_.zero_grad();
  body(batch.inputs, batch.targets);
  ++issued_;
}

void TrainStep::resume_at(int64_t steps) {
  TORCH_CHECK(issued_ == 0, "TrainStep::resume_at: steps were run already");
  TORCH_CHECK(steps >= 0 && steps < losses_.size(0), "TrainStep::resume_at: step ", steps, " outside the ",
              losses_.size(0), " the run was sized for");
  issued_ = read_ = first_ = steps;
  index_.fill_(steps);
}

std::vector<double> TrainStep::read_losses() {
  std::vector<double> out;
  if (issued_ == read_) return out;
  const auto host = losses_.slice(0, read_, issued_).to(at::kCPU, at::kDouble).contiguous();
  out.assign(host.data_ptr<double>(), host.data_ptr<double>() + host.numel());
  read_ = issued_;
  return out;
}

std::string TrainStep::mode() const {
  if (graph_) {
    std::string s = fmt::format("captured (CUDA graph) after {} eager steps", captured_at_);
    if (eager_after_capture_ > 0) s += fmt::format("; {} eager steps for partial batches", eager_after_capture_);
    return s;
  }
  if (!failure_.empty()) return "eager: the step could not be captured: " + failure_;
  if (!device_.is_cuda()) return "eager (cpu)";
  if (!options_.capture) return "eager (capture off)";
  return fmt::format("eager (fewer than {} full batches before capture)", options_.warmup + 1);
}

#ifdef DELTABENCH_HAVE_CUDA
struct EvalStep::Graph {
  at::cuda::CUDAGraph graph;
};
#else
struct EvalStep::Graph {};
#endif

EvalStep::EvalStep(models::LanguageModel& model, const StepOptions& options, const at::Device& device)
    : model_(model), options_(options), device_(device) {
#ifndef DELTABENCH_HAVE_CUDA
  options_.capture = false;
#endif
  if (!device.is_cuda()) options_.capture = false;
}

EvalStep::~EvalStep() {
  static_out_ = {};  // tensors of the graph's pool before the graph (see ~TrainStep)
  static_inputs_ = at::Tensor();
  static_targets_ = at::Tensor();
  graph_.reset();
}

EvalStep::Outputs EvalStep::forward(const at::Tensor& inputs, const at::Tensor& targets) {
  at::NoGradGuard no_grad;
  AutocastGuard guard(options_.autocast, /*cache=*/!options_.capture);
  const auto out = scored_logits(model_, inputs, targets, options_.scored);
  const auto logits = out.logits.to(at::kFloat);
  const auto loss = at::cross_entropy_loss(logits.reshape({-1, options_.vocab_size}), out.targets.reshape(-1), {},
                                           at::Reduction::Sum, tasks::kIgnoreIndex);
  return {logits.argmax(-1), out.targets, loss};
}

std::pair<at::Tensor, at::Tensor> EvalStep::run(const tasks::Batch& batch, at::Tensor& loss_sum) {
#ifdef DELTABENCH_HAVE_CUDA
  const bool full = !static_inputs_.defined() || batch.inputs.sizes() == static_inputs_.sizes();
  if (options_.capture && !graph_ && failure_.empty() && full) {
    static_inputs_ = batch.inputs.clone();
    static_targets_ = batch.targets.clone();
    (void)forward(static_inputs_, static_targets_);  // warm-up outside the graph
    auto graph = std::make_unique<Graph>();
    failure_ = try_capture(graph->graph, [&] { static_out_ = forward(static_inputs_, static_targets_); });
    if (failure_.empty()) {
      graph_ = std::move(graph);
    } else {
      static_out_ = {};
    }
  }
  if (graph_ && full) {
    static_inputs_.copy_(batch.inputs, /*non_blocking=*/true);
    static_targets_.copy_(batch.targets, /*non_blocking=*/true);
    graph_->graph.replay();
    loss_sum += static_out_.loss;
    return {static_out_.preds.clone(), static_out_.targets.clone()};
  }
#endif
  const auto out = forward(batch.inputs, batch.targets);
  loss_sum += out.loss;
  return {out.preds, out.targets};
}

std::string EvalStep::mode() const {
  if (graph_) return "captured (CUDA graph)";
  if (!failure_.empty()) return "eager: the forward could not be captured: " + failure_;
  if (!device_.is_cuda()) return "eager (cpu)";
  return options_.capture ? "eager (no full batch)" : "eager (capture off)";
}

}  // namespace deltabench::train
