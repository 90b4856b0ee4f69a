#include "kernels/common/cuda_dispatch.h"

#include "kernels/common/backend.h"
#include "kernels/common/chunk_train.h"
#include "kernels/common/decode.h"
#include "kernels/common/recurrent_train.h"

#ifdef DELTABENCH_HAVE_CUDA
#include "kernels/common/cuda_kernels.h"
#include "kernels/common/kernel_dtype.h"
#include "kernels/common/segments.h"
#include "kernels/common/sm90/forward.h"
#include "kernels/common/sm90/sm90_kernels.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/core/GradMode.h>
#include <c10/cuda/CUDAGuard.h>
#endif

#include <c10/util/Exception.h>
#include <c10/util/StringUtil.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <string_view>
#include <vector>

namespace deltabench::detail {

namespace {
// -1: not yet read from the environment (cuda_dispatch.h says why), then 0 or 1.
std::atomic<int> g_sm90_forward{-1};
std::atomic<int> g_sm90_train{-1};

// A switch's value: set, or read once from the environment variable `name` by `parse`.
bool switch_value(std::atomic<int>& value, const char* name, bool (*parse)(const char*)) {
  int on = value.load();
  if (on < 0) {
    int unread = -1;
    value.compare_exchange_strong(unread, parse(std::getenv(name)) ? 1 : 0);
    on = value.load();
  }
  return on == 1;
}

// An on-by-default switch's environment value: null or empty true, "1" true, "0" false; anything else throws,
// naming the variable and what 1 and 0 mean.
bool on_unless_zero(const char* value, std::string_view name, std::string_view one, std::string_view zero) {
  if (value == nullptr || *value == '\0') return true;
  const std::string_view v(value);
  TORCH_CHECK(v == "0" || v == "1", name, " is \"", v, "\": it takes 1 (", one, "; the default) or 0 (", zero, ")");
  return v == "1";
}

}  // namespace

bool sm90_forward_from_env(const char* value) {
  return on_unless_zero(value, "DELTABENCH_SM90_FORWARD", "the forward alone on the sm_90a forward where it serves",
                        "on the first chunked kernel");
}

void set_sm90_forward(bool on) { g_sm90_forward.store(on ? 1 : 0); }

bool sm90_forward() { return switch_value(g_sm90_forward, "DELTABENCH_SM90_FORWARD", sm90_forward_from_env); }

bool sm90_train_from_env(const char* value) {
  return on_unless_zero(value, "DELTABENCH_SM90_TRAIN", "train on the sm_90a training op where it serves",
                        "the chunked training pair");
}

void set_sm90_train(bool on) { g_sm90_train.store(on ? 1 : 0); }

bool sm90_train() { return switch_value(g_sm90_train, "DELTABENCH_SM90_TRAIN", sm90_train_from_env); }

#ifdef DELTABENCH_HAVE_CUDA
namespace {

// t itself when its data starts on a multiple of `bytes`, else an aligned copy (views can start anywhere).
at::Tensor aligned(const at::Tensor& t, std::uintptr_t bytes) {
  if (!t.defined() || reinterpret_cast<std::uintptr_t>(t.data_ptr()) % bytes == 0) return t;
  return t.clone();
}

// The column slices of M that step 1 writes (ChunkParams::transitions): ceil(K / V).
int64_t transition_slices(int64_t K, int64_t V) { return (K + V - 1) / V; }

// The segment-parallel pass (kernels/common/segments.h) with the kernel: p as for a whole-sequence
// call. Step 1 writes every segment's end state from zero and its transition in one launch, step 2
// joins them in order, step 3 runs every segment from its start state into p.o.
void segmented_forward(cuda::ChunkParams p, const Segments& segments, const at::Tensor& h0, at::Tensor& final_state,
                       const at::Device& device, cudaStream_t stream) {
  const int64_t S = static_cast<int64_t>(segments.sequence.size()), H = p.H, K = p.K, V = p.V;
  const int64_t transitions = transition_slices(K, V);
  const auto f32 = at::TensorOptions().device(device).dtype(at::kFloat);
  const auto starts = device_offsets(segments.starts, device);
  p.seq_starts = starts.data_ptr<int64_t>();
  p.N = S;

  auto parts = at::empty({1 + transitions, S, H, K, V}, f32);  // [0]: end states from zero; [z]: M E_z
  cuda::ChunkParams step1 = p;
  step1.o = nullptr;
  step1.h0 = nullptr;
  step1.ht = parts.data_ptr<float>();
  step1.transitions = transitions;
  cuda::chunk_forward(step1, stream);

  const auto M =  // [S, H, K, K] from the slices M E_z
      parts.narrow(0, 1, transitions).permute({1, 2, 3, 0, 4}).reshape({S, H, K, transitions * V}).narrow(-1, 0, K);
  const auto start_states = segment_start_states(segments, M, parts[0], h0).contiguous();

  at::Tensor ends = final_state.defined() ? at::empty({S, H, K, V}, f32) : at::Tensor();
  p.h0 = start_states.data_ptr<float>();
  p.ht = ends.defined() ? ends.data_ptr<float>() : nullptr;
  cuda::chunk_forward(p, stream);
  if (ends.defined()) final_state.copy_(ends.index_select(0, device_offsets(segments.last, device)));
}

}  // namespace

SequenceOutput cuda_chunk_forward(Family family, const SequenceShape& shape, const at::Tensor& q,
                                  const at::Tensor& k, const at::Tensor& v, const at::Tensor& beta,
                                  const at::Tensor& g, const SequenceOptions& options) {
  const auto dtype = kernel_dtype(q.scalar_type());
  const c10::cuda::CUDAGuard guard(q.device());
  if (sm90_forward() && sm90::serves(family, shape.K, shape.V, shape.N * shape.H, q.scalar_type(), false)) {
    using sm90::contiguous_aligned;
    const auto scale = options.scale.value_or(1.0 / std::sqrt(static_cast<double>(shape.K)));
    const auto cu = options.cu_seqlens.defined() ? options.cu_seqlens.to(q.options().dtype(at::kLong)) : at::Tensor();
    auto r = sm90::chunk_forward(family, contiguous_aligned(q), contiguous_aligned(k), contiguous_aligned(v),
                                 contiguous_aligned(beta, at::kFloat), contiguous_aligned(g, at::kFloat),
                                 contiguous_aligned(options.initial_state, at::kFloat), cu, scale,
                                 options.output_final_state, /*fuse_output=*/std::nullopt,
                                 options.kernel_segment_length);
    count_sm90_forward_call();
    SequenceOutput out;
    out.backend = Backend::kKernel;
    out.o = std::move(r.o);
    out.final_state = std::move(r.final_state);
    return out;
  }
  const auto qc = aligned(q.contiguous(), 16), kc = aligned(k.contiguous(), 16), vc = aligned(v.contiguous(), 16);
  const auto betac = beta.defined() ? beta.to(at::kFloat).contiguous() : at::Tensor();
  const auto gc = g.defined() ? g.to(at::kFloat).contiguous() : at::Tensor();
  const auto h0 =
      options.initial_state.defined() ? aligned(options.initial_state.to(at::kFloat).contiguous(), 32) : at::Tensor();
  std::vector<int64_t> host_starts = shape.seq_starts;  // packed: cu_seqlens; a batch: row b starts at b * T
  if (!options.cu_seqlens.defined()) {
    host_starts.resize(shape.B + 1);
    for (int64_t b = 0; b <= shape.B; ++b) host_starts[b] = b * shape.T;
  }
  SequenceOutput out;
  out.backend = Backend::kKernel;
  out.o = at::empty({shape.B, shape.T, shape.H, shape.V}, v.options().memory_format(at::MemoryFormat::Contiguous));
  if (options.output_final_state) {
    out.final_state = at::empty({shape.N, shape.H, shape.K, shape.V}, q.options().dtype(at::kFloat));
  }
  cuda::ChunkParams p;
  // The delta rules share the kernel's delta template (the decay is g's presence); linear attention has its own.
  p.family = family;
  p.dtype = *dtype;
  p.q = qc.data_ptr();
  p.k = kc.data_ptr();
  p.v = vc.data_ptr();
  p.beta = betac.defined() ? betac.data_ptr<float>() : nullptr;
  p.g = gc.defined() ? gc.data_ptr<float>() : nullptr;
  p.h0 = h0.defined() ? h0.data_ptr<float>() : nullptr;
  p.o = out.o.data_ptr();
  p.ht = out.final_state.defined() ? out.final_state.data_ptr<float>() : nullptr;
  p.N = shape.N;
  p.H = shape.H;
  p.K = shape.K;
  p.V = shape.V;
  p.scale = static_cast<float>(options.scale.value_or(1.0 / std::sqrt(static_cast<double>(shape.K))));
  const auto stream = at::cuda::getCurrentCUDAStream().stream();

  // Long sequences over few heads: the segment-parallel pass (not in the fp32 version 1).
  int64_t segment_length = p.dtype == cuda::Dtype::kFP32 ? -1 : options.kernel_segment_length;
  if (segment_length == 0) {
    const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
    segment_length = choose_segment_length(host_starts, shape.H, transition_slices(shape.K, shape.V), sms);
  }
  if (segment_length > 0) {
    const auto segments = split_sequences(host_starts, segment_length);
    if (segments.max_segments > 1) {
      segmented_forward(p, segments, h0, out.final_state, q.device(), stream);
      return out;
    }
  }
  // The starts made on the device, without a host copy: a captured training step runs this.
  const auto long_on = q.options().dtype(at::kLong);
  const auto starts = options.cu_seqlens.defined() ? options.cu_seqlens.to(long_on).contiguous()
                                                   : at::arange(0, (shape.B + 1) * shape.T, shape.T, long_on);
  p.seq_starts = starts.data_ptr<int64_t>();
  cuda::chunk_forward(p, stream);
  return out;
}

namespace {

// The decode kernel (kernels/common/decode.h) for a recurrent call without a gradient: the state
// starts as a copy of the initial state (or zeros) and ends as the final state.
SequenceOutput cuda_decode(Family family, const SequenceShape& shape, const at::Tensor& q, const at::Tensor& k,
                           const at::Tensor& v, const at::Tensor& beta, const at::Tensor& g,
                           const SequenceOptions& options) {
  const c10::cuda::CUDAGuard guard(q.device());
  SequenceInputs in;
  in.q = q.contiguous();
  in.k = k.contiguous();
  in.v = v.contiguous();
  if (beta.defined()) in.beta = beta.to(at::kFloat).contiguous();
  if (g.defined()) in.g = g.to(at::kFloat).contiguous();
  const auto f32 = q.options().dtype(at::kFloat);
  auto state = options.initial_state.defined() ? options.initial_state.to(f32, /*non_blocking=*/false, /*copy=*/true)
                                                     .contiguous()
                                               : at::zeros({shape.N, shape.H, shape.K, shape.V}, f32);
  SequenceOutput out;
  out.backend = Backend::kKernel;
  out.o = recurrent_decode(family, in, state, options.scale);
  if (options.output_final_state) out.final_state = state;
  return out;
}

}  // namespace

KernelPath kernel_path(Family family, const SequenceShape& shape, const at::Tensor& q, const at::Tensor& k,
                       const at::Tensor& v, const at::Tensor& beta, const at::Tensor& g, const SequenceOptions& options,
                       std::string* why) {
  const auto refuse = [&](std::string reason) {
    if (why) *why = std::move(reason);
    return KernelPath::kNone;
  };
  if (!q.is_cuda()) return refuse(c10::str("the tensors are on ", q.device().str(), ", and the kernel runs on CUDA"));
  if (!kernel_dtype(q.scalar_type())) {
    return refuse(c10::str("the inputs are ", c10::toString(q.scalar_type()), ", and the kernel takes bf16, fp16 or fp32"));
  }
  if (needs_grad({&q, &k, &v, &beta, &g, &options.initial_state})) {
    if (chunk_train_unavailable(shape, q).empty()) return KernelPath::kChunkTrain;
    const auto reason = recurrent_train_unavailable(shape, q);
    return reason.empty() ? KernelPath::kRecurrentTrain : refuse("a gradient is needed, and for training " + reason);
  }
  if (options.mode == Mode::kChunk && options.chunk_size == 64 &&
      (cuda::chunk_forward_supports(shape.K, shape.V) ||
       (sm90_forward() && sm90::serves(family, shape.K, shape.V, shape.N * shape.H, q.scalar_type(), false)))) {
    return KernelPath::kChunk;
  }
  if (options.mode == Mode::kRecurrent && !options.cu_seqlens.defined() &&
      cuda::recurrent_decode_supports(shape.K, shape.V)) {
    return KernelPath::kDecode;
  }
  if (cuda::recurrent_train_supports(shape.K, shape.V)) return KernelPath::kRecurrent;
  return refuse(c10::str("K = ", shape.K, " and V = ", shape.V,
                         ", and the kernels take K of 32, 64, 128 or 256 and V a multiple of 32"));
}
#else
SequenceOutput cuda_chunk_forward(Family, const SequenceShape&, const at::Tensor&, const at::Tensor&,
                                  const at::Tensor&, const at::Tensor&, const at::Tensor&, const SequenceOptions&) {
  TORCH_CHECK(false, "cuda_chunk_forward: this build has no CUDA kernels");
}

namespace {
SequenceOutput cuda_decode(Family, const SequenceShape&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                           const at::Tensor&, const at::Tensor&, const SequenceOptions&) {
  TORCH_CHECK(false, "cuda_decode: this build has no CUDA kernels");
}
}  // namespace

KernelPath kernel_path(Family, const SequenceShape&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                       const at::Tensor&, const at::Tensor&, const SequenceOptions&, std::string* why) {
  if (why) *why = "this build of deltabench has no CUDA kernels (nvcc was not found when it was configured)";
  return KernelPath::kNone;
}
#endif

namespace {

// What `auto` takes: the kernels measured faster than the reference ops on the shapes they serve.
// The chunk forward and decode; with a gradient the chunked training pair (kChunkTrain, head dims 64
// and 128, where its forward is the fused kernel) at every length, and the recurrent pair
// (kRecurrentTrain, head dims 32 and 256, and V of 256 or more) where the longest sequence has at least
// kAutoTrainMinLength tokens. In the models' captured training step on
// the H200 (Zoology's MQAR model, kernels/delta_rule/NOTES.md, "Version 1b") the recurrent pair was 8%
// (DeltaNet) and 23% (Gated DeltaNet) slower than the reference ops at L 64, within 1% or faster at
// L 256 and 6-16% faster at L 512. The chunked pair (first version, commit 954a83d, same H200 call): within
// 1% of the reference ops at L 64 (DeltaNet 6.88 against 6.93 ms, Gated DeltaNet 9.99 against 10.0),
// 17-25% faster at L 256 and L 512; with the layers' pieces on kernels too (commit 1188d2b, the step as
// `auto` now runs it), 1.7x faster at L 64 (DeltaNet 4.03 against 6.96 ms, Gated DeltaNet 5.75 against
// 10.1) and 2.2-2.5x at L 256 and 512 (train/NOTES.md). The training pair's forward alone (kRecurrent)
// is unmeasured against the reference: under `kernel` only.
constexpr int64_t kAutoTrainMinLength = 256;

// The kernels take V in tiles of this many columns (kernel_path's "V a multiple of 32").
constexpr int64_t kKernelVTile = 32;

int64_t longest_sequence(const SequenceShape& shape) {
  int64_t longest = 0;
  for (size_t i = 0; i + 1 < shape.seq_starts.size(); ++i) {
    longest = std::max(longest, shape.seq_starts[i + 1] - shape.seq_starts[i]);
  }
  return std::max(longest, shape.seq_starts.empty() ? shape.T : int64_t{0});
}

// The path `auto` takes where kernel_path gives `path` (kNone: the reference ops). The chunked pair
// wherever it serves, its forward fused or not: in the captured Zoology step on the H200 (c6ad403, one
// call, results/device/2026-12-05-h200-session-1.md) it was as fast as or faster than what auto took before
// at every head dim it serves: DeltaNet d_model 64 (K 32) 2.67 against the reference ops' 3.15 ms at L 64
// and 4.37 against the recurrent pair's 4.38 at L 256; Gated DeltaNet d_model 64 6.01 against 6.48 at
// L 256; Gated DeltaNet d_model 256 (K 128, V 256) 18.3 against 53.7; DeltaNet d_model 512 (K = V = 256)
// 36.2 against 112. The recurrent pair stays where the chunked pair does not serve, from 256 tokens.
KernelPath auto_path(Family family, KernelPath path, const SequenceShape& shape) {
  if (path == KernelPath::kRecurrentTrain) {
    return longest_sequence(shape) >= kAutoTrainMinLength ? path : KernelPath::kNone;
  }
  // kChunk at head dims only the sm_90a forward takes: at K = V = 256 the delta rules' forward is 7 times quicker than
  // the reference ops (H100, 16 x 2K, H 8: 1.927 against 13.41 ms, gated 2.197 against 15.57; 9f65170's call,
  // kernels/delta_rule/NOTES.md, version 3r measured). Its other dims (V 192, linear attention's wider V) are not
  // measured against the reference yet: `kernel` runs them, `auto` the reference.
  const bool sm90_measured = shape.K == 256 && shape.V == 256 && family != Family::kLinearAttention;
  const bool chunk_measured =
      path == KernelPath::kChunk && (chunk_train_fuses_forward(shape) /* the first kernel's dims */ || sm90_measured);
  const bool measured = path == KernelPath::kChunkTrain || chunk_measured || path == KernelPath::kDecode;
  return measured ? path : KernelPath::kNone;
}

}  // namespace

std::string kernel_unavailable(Family family, const SequenceShape& shape, const at::Tensor& q, const at::Tensor& k,
                               const at::Tensor& v, const at::Tensor& beta, const at::Tensor& g,
                               const SequenceOptions& options) {
  std::string why;
  kernel_path(family, shape, q, k, v, beta, g, options, &why);
  return why;
}

SequenceOutput dispatch(Family family, const SequenceShape& shape, const at::Tensor& q,
                        const at::Tensor& k, const at::Tensor& v, const at::Tensor& beta, const at::Tensor& g,
                        const SequenceOptions& options, reference::Fn recurrent, reference::Fn chunk) {
  const bool grad = needs_grad({&q, &k, &v, &beta, &g, &options.initial_state});
  // Under backend = kernel, a forward whose V the kernels' tiles of 32 do not divide (linear attention's
  // running denominator is a column of ones after the values: V + 1) runs on v and the initial state
  // with zero columns up to the next multiple; the output and final state are narrowed back. Zero
  // columns of v and of the state stay zero in every family's state (S decays, and takes k v^T and
  // k (v - W S) terms whose columns are v's): exact, and on the H200 within the kernels' bounds of the
  // reference (tests/kernels/cuda_kernels_test.cpp). Not with a gradient: the padded training path's
  // first GPU test (2026-12-04) gave every gradient off by O(1) while its forward matched, and is not
  // settled; and not under auto: linear attention's captured training step on the padded kernels was
  // 1.4-2.0x slower than on the reference ops (kernels/linear_attn/NOTES.md).
  if (options.backend == BackendChoice::kKernel && !grad && q.is_cuda() && shape.V % kKernelVTile != 0) {
    SequenceShape padded = shape;
    padded.V = (shape.V + kKernelVTile - 1) / kKernelVTile * kKernelVTile;
    const auto pad = [&](const at::Tensor& t) { return at::constant_pad_nd(t, {0, padded.V - shape.V}); };
    const auto vp = pad(v);
    SequenceOptions padded_options = options;
    if (options.initial_state.defined()) padded_options.initial_state = pad(options.initial_state);
    const auto path = kernel_path(family, padded, q, k, vp, beta, g, padded_options, nullptr);
    if (path != KernelPath::kNone) {
      auto out = dispatch(family, padded, q, k, vp, beta, g, padded_options, recurrent, chunk);
      out.o = out.o.narrow(-1, 0, shape.V);
      if (out.final_state.defined()) out.final_state = out.final_state.narrow(-1, 0, shape.V);
      return out;
    }
  }
  if (options.backend != BackendChoice::kReference) {
    std::string why;
    auto path = kernel_path(family, shape, q, k, v, beta, g, options, &why);
    TORCH_CHECK(path != KernelPath::kNone || options.backend != BackendChoice::kKernel, family_name(family),
                ": backend = kernel, but deltabench's CUDA kernels cannot serve this call: ", why,
                " (backend = auto takes the reference ops where the kernels cannot serve)");
    if (options.backend == BackendChoice::kAuto) path = auto_path(family, path, shape);
    if (path != KernelPath::kNone) {
      count_backend_call(Backend::kKernel, grad);
      switch (path) {
        case KernelPath::kChunk: return cuda_chunk_forward(family, shape, q, k, v, beta, g, options);
        case KernelPath::kDecode: return cuda_decode(family, shape, q, k, v, beta, g, options);
        case KernelPath::kRecurrent: return recurrent_forward(family, shape, q, k, v, beta, g, options);
        case KernelPath::kRecurrentTrain: return recurrent_train(family, shape, q, k, v, beta, g, options);
        case KernelPath::kChunkTrain: return chunk_train(family, shape, q, k, v, beta, g, options);
        case KernelPath::kNone: break;
      }
    }
  }
  count_backend_call(Backend::kReference, grad);
  auto out = run_reference(shape, q, k, v, beta, g, options, recurrent, chunk);
  out.backend = Backend::kReference;
  return out;
}

}  // namespace deltabench::detail
