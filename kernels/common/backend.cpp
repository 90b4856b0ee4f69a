#include "kernels/common/backend.h"

#include <c10/core/GradMode.h>

#include <atomic>
#include <string_view>

namespace deltabench {
namespace {

std::atomic<int64_t> g_reference{0}, g_reference_with_grad{0}, g_kernel{0}, g_kernel_with_grad{0}, g_kernel_sm90{0},
    g_kernel_sm90_forward{0};

}  // namespace

std::string_view backend_name(Backend backend) { return backend == Backend::kKernel ? "kernel" : "reference"; }

std::string_view backend_choice_name(BackendChoice choice) {
  switch (choice) {
    case BackendChoice::kAuto: return "auto";
    case BackendChoice::kReference: return "reference";
    case BackendChoice::kKernel: return "kernel";
  }
  return "?";
}

std::optional<BackendChoice> backend_choice_from_name(std::string_view name) {
  for (const auto choice : {BackendChoice::kAuto, BackendChoice::kReference, BackendChoice::kKernel}) {
    if (backend_choice_name(choice) == name) return choice;
  }
  return std::nullopt;
}

std::string_view recompute_name(Recompute recompute) {
  switch (recompute) {
    case Recompute::kNone: return "none";
    case Recompute::kState: return "state";
    case Recompute::kAll: return "all";
  }
  return "?";
}

std::optional<Recompute> recompute_from_name(std::string_view name) {
  for (const auto recompute : {Recompute::kNone, Recompute::kState, Recompute::kAll}) {
    if (recompute_name(recompute) == name) return recompute;
  }
  return std::nullopt;
}

BackendCounts backend_counts() {
  return {g_reference.load(), g_reference_with_grad.load(), g_kernel.load(), g_kernel_with_grad.load(),
          g_kernel_sm90.load(), g_kernel_sm90_forward.load()};
}

BackendCounts operator-(const BackendCounts& a, const BackendCounts& b) {
  return {a.reference - b.reference, a.reference_with_grad - b.reference_with_grad, a.kernel - b.kernel,
          a.kernel_with_grad - b.kernel_with_grad, a.kernel_sm90 - b.kernel_sm90,
          a.kernel_sm90_forward - b.kernel_sm90_forward};
}

BackendCounts& operator+=(BackendCounts& a, const BackendCounts& b) {
  a.reference += b.reference;
  a.reference_with_grad += b.reference_with_grad;
  a.kernel += b.kernel;
  a.kernel_with_grad += b.kernel_with_grad;
  a.kernel_sm90 += b.kernel_sm90;
  a.kernel_sm90_forward += b.kernel_sm90_forward;
  return a;
}

namespace {

// The names of the backends that ran, sm_90a's first, joined by " + "; "none" where none did.
std::string joined(int64_t sm90, int64_t kernel, int64_t reference, std::string_view reference_name) {
  std::string ran;
  const auto add = [&ran](std::string_view what) {
    if (!ran.empty()) ran += " + ";
    ran += what;
  };
  if (sm90 > 0) add("kernel (sm_90a)");
  if (kernel > sm90) add("kernel");
  if (reference > 0) add(reference_name);
  return ran.empty() ? "none" : ran;
}

}  // namespace

std::string forward_backend(const BackendCounts& p) {
  return joined(p.kernel_sm90 + p.kernel_sm90_forward, p.kernel, p.reference, "reference");
}

std::string backward_backend(const BackendCounts& p) {
  return joined(p.kernel_sm90, p.kernel_with_grad, p.reference_with_grad, "reference (ATen autograd)");
}

namespace detail {

void count_backend_call(Backend backend, bool with_grad) {
  if (backend == Backend::kKernel) {
    g_kernel.fetch_add(1, std::memory_order_relaxed);
    if (with_grad) g_kernel_with_grad.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  g_reference.fetch_add(1, std::memory_order_relaxed);
  if (with_grad) g_reference_with_grad.fetch_add(1, std::memory_order_relaxed);
}

void count_sm90_train_call() { g_kernel_sm90.fetch_add(1, std::memory_order_relaxed); }

void count_sm90_forward_call() { g_kernel_sm90_forward.fetch_add(1, std::memory_order_relaxed); }

bool needs_grad(std::initializer_list<const at::Tensor*> tensors) {
  if (!c10::GradMode::is_enabled()) return false;
  for (const auto* t : tensors) {
    if (t->defined() && t->requires_grad()) return true;
  }
  return false;
}

}  // namespace detail
}  // namespace deltabench
