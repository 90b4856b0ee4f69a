#include "kernels/common/sm90/forward.h"

#include "kernels/common/segments.h"
#include "kernels/common/sm90/sm90_kernels.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAFunctions.h>
#include <torch/autograd.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace deltabench::sm90 {
namespace {

void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("sm90::chunk_forward: " + what);
}

std::string sizes(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

// A validated call: its shapes, the batch's offsets on the device (and the sequences' on the host), the dtype.
struct Call {
  Family family;
  int64_t B, T, H, K, V, N, chunks;
  at::Tensor seq_starts, chunk_starts;  // device, with cu_seqlens only
  std::vector<int64_t> host_seq;        // [N + 1] token offsets
  cuda::Dtype dtype;
  const int64_t* seq_ptr() const { return seq_starts.defined() ? seq_starts.data_ptr<int64_t>() : nullptr; }
  const int64_t* chunk_ptr() const { return chunk_starts.defined() ? chunk_starts.data_ptr<int64_t>() : nullptr; }
};

// `known`: cu_seqlens's offsets on the host where the caller has them (the backward: its forward's), so that
// they are not copied back from the device again (a wait for every kernel queued before).
Call validate(Family family, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& beta,
              const at::Tensor& g, const at::Tensor& h0, const at::Tensor& cu_seqlens,
              const std::vector<int64_t>* known = nullptr) {
  require(q.dim() == 4 && k.sizes() == q.sizes() && v.dim() == 4 && v.size(0) == q.size(0) && v.size(1) == q.size(1) &&
              v.size(2) == q.size(2),
          "q, k must be [B, T, H, K] and v [B, T, H, V] (got q " + sizes(q) + ", k " + sizes(k) + ", v " + sizes(v) + ")");
  require(q.is_cuda() && q.is_contiguous() && k.is_contiguous() && v.is_contiguous(), "q, k and v must be contiguous CUDA tensors");
  for (const auto& [name, t] : {std::pair<const char*, const at::Tensor*>{"k", &k}, {"v", &v}, {"beta", &beta}, {"g", &g},
                                {"h0", &h0}, {"cu_seqlens", &cu_seqlens}}) {
    // The sentence only where it fails: an undefined tensor has no device to name.
    if (t->defined() && t->device() != q.device()) {
      require(false, std::string(name) + " must be on q's device, " + q.device().str() + " (got " + t->device().str() + ")");
    }
  }
  require(q.scalar_type() == k.scalar_type() && q.scalar_type() == v.scalar_type() &&
              (q.scalar_type() == at::kBFloat16 || q.scalar_type() == at::kHalf),
          "q, k and v must all be bf16 or all fp16");
  const bool delta = family != Family::kLinearAttention;
  require(!delta || (beta.defined() && beta.scalar_type() == at::kFloat && beta.is_contiguous()),
          "the delta rules need beta [B, T, H], fp32 and contiguous");
  require(family != Family::kGatedDeltaRule || g.defined(), "the gated delta rule needs g");
  require(!g.defined() || (g.scalar_type() == at::kFloat && g.is_contiguous()), "g must be fp32 and contiguous");
  Call c;
  c.family = family;
  c.B = q.size(0), c.T = q.size(1), c.H = q.size(2), c.K = q.size(3), c.V = v.size(3);
  c.dtype = q.scalar_type() == at::kBFloat16 ? cuda::Dtype::kBF16 : cuda::Dtype::kFP16;
  // The batch: N sequences of T, or cu_seqlens' (with B = 1), and their chunks' offsets.
  c.N = c.B;
  c.chunks = c.B * ((c.T + cuda::sm90::kStateChunk - 1) / cuda::sm90::kStateChunk);
  for (int64_t b = 0; b <= c.B; ++b) c.host_seq.push_back(b * c.T);
  if (cu_seqlens.defined()) {
    require(c.B == 1, "with cu_seqlens B must be 1 (got " + std::to_string(c.B) + ")");
    if (known != nullptr) {
      require(static_cast<int64_t>(known->size()) == cu_seqlens.numel(),
              "the known offsets must be cu_seqlens's (" + std::to_string(cu_seqlens.numel()) + " of them, got " +
                  std::to_string(known->size()) + ")");
      c.host_seq = *known;
    } else {
      const auto cpu = cu_seqlens.to(at::kCPU, at::kLong).contiguous();
      c.host_seq.assign(cpu.data_ptr<int64_t>(), cpu.data_ptr<int64_t>() + cpu.numel());
    }
    c.N = static_cast<int64_t>(c.host_seq.size()) - 1;
    require(c.N >= 1 && c.host_seq.front() == 0 && c.host_seq.back() == c.T,
            "cu_seqlens must run from 0 to T (" + std::to_string(c.T) + ")");
    std::vector<int64_t> starts{0};
    for (int64_t n = 0; n < c.N; ++n) {
      const int64_t length = c.host_seq[n + 1] - c.host_seq[n];
      require(length >= 0, "cu_seqlens must not decrease");
      starts.push_back(starts.back() + (length + cuda::sm90::kStateChunk - 1) / cuda::sm90::kStateChunk);
    }
    c.chunks = starts.back();
    c.seq_starts = device_offsets(c.host_seq, q.device());
    c.chunk_starts = device_offsets(starts, q.device());
  }
  if (h0.defined()) {
    require(h0.dim() == 4 && h0.size(0) == c.N && h0.size(1) == c.H && h0.size(2) == c.K && h0.size(3) == c.V,
            "h0 must be [N, H, K, V] = [" + std::to_string(c.N) + ", " + std::to_string(c.H) + ", " + std::to_string(c.K) +
                ", " + std::to_string(c.V) + "] (got " + sizes(h0) + ")");
  }
  return c;
}

void check_segment_length(int64_t length) {
  require(length == -1 || length == 0 || (length > 0 && length % cuda::sm90::kStateChunk == 0),
          "segment_length must be 0 (chosen), -1 (whole sequences) or a positive multiple of 64 (got " +
              std::to_string(length) + ")");
}

// The forward's stages: W and U (the delta rules; U = v for linear attention), then h and v_new (and the final
// state where asked), then o where asked: by the state pass itself where `fuse_output` (h and v_new then not
// made), else by the output kernel from h and v_new.
struct Stages {
  at::Tensor w, u, h, v_new, o, ht;
  at::Tensor t;  // the UT transform's T, [chunks, H, 64, 64] fp16, where asked (inverse)
};

// The segments as the kernels' batch: their token offsets and their chunks' on the device. Segments are whole
// chunks (but a sequence's last), so the chunks keep the numbers they have in the whole sequences.
struct SegmentOffsets {
  at::Tensor seq, chunks;
  SegmentOffsets(const Segments& segments, const at::Device& device) {
    constexpr int64_t C = cuda::sm90::kStateChunk;
    std::vector<int64_t> chunk_starts{0};
    for (size_t i = 0; i < segments.sequence.size(); ++i) {
      chunk_starts.push_back(chunk_starts.back() + (segments.starts[i + 1] - segments.starts[i] + C - 1) / C);
    }
    seq = device_offsets(segments.starts, device);
    chunks = device_offsets(chunk_starts, device);
  }
  const int64_t* seq_ptr() const { return seq.data_ptr<int64_t>(); }
  const int64_t* chunk_ptr() const { return chunks.data_ptr<int64_t>(); }
};

// dht, dh0, h0 or ht of a segmented pass: [N, H, K, V] fp32, contiguous, on CUDA, or undefined.
void check_states(const char* who, std::initializer_list<std::pair<const char*, const at::Tensor*>> states, int64_t N,
                  int64_t H, int64_t K, int64_t V) {
  for (const auto& [name, t] : states) {
    if (t->defined() && !(t->is_cuda() && t->scalar_type() == at::kFloat && t->is_contiguous() &&
                          t->sizes() == at::IntArrayRef({N, H, K, V}))) {
      throw std::invalid_argument("sm90::" + std::string(who) + ": " + name + " must be [N, H, K, V] = [" +
                                  std::to_string(N) + ", " + std::to_string(H) + ", " + std::to_string(K) + ", " +
                                  std::to_string(V) + "], fp32, contiguous, on CUDA (got " + sizes(*t) + ")");
    }
  }
}

// The segments as p's batch (p describing the whole sequences, its states checked against them): p's offsets
// point into the returned ones, on the current device, which must outlive the passes that read them.
template <class Params>
SegmentOffsets as_segments(Params& p, const Segments& segments, const char* who,
                           std::initializer_list<std::pair<const char*, const at::Tensor*>> states) {
  check_states(who, states, static_cast<int64_t>(segments.last.size()), p.H, p.K, p.V);
  SegmentOffsets offsets(segments, at::Device(at::kCUDA, c10::cuda::current_device()));
  p.seq_starts = offsets.seq_ptr();
  p.chunk_starts = offsets.chunk_ptr();
  p.N = static_cast<int64_t>(segments.sequence.size());
  return offsets;
}

// side(stream) on a stream of the pool and main(stream) on the current one, at once; the current stream waits for
// both after. For a segmented pass's step 1, whose two passes (the transitions from identity columns, the ends
// from zero) read the same inputs and write apart: one after the other, each ran a grid of about one block an SM
// at 1 x 32K, H 16 (128 blocks over 128 chunks), and the second waited for the first's whole chunk loop; side by
// side they share the SMs where their shared memory lets two blocks in (the forward's pass at K 128; both passes
// at K 64). The same kernels on the same inputs: the same bits. Not under a CUDA graph capture, which the
// segments' offsets refuse first (as_segments).
template <class Side, class Main>
void side_by_side(Side&& side, Main&& main) {
  const auto current = at::cuda::getCurrentCUDAStream();
  const auto other = at::cuda::getStreamFromPool(false, current.device_index());
  at::cuda::CUDAEvent ready, done;
  ready.record(current);
  ready.block(other);
  side(other.stream());
  done.record(other);
  main(current.stream());
  done.block(current);
}

// The segment-parallel split of the call's sequences, or none (detail::plan_segments).
std::optional<Segments> plan_segments(const Call& c, int64_t segment_length) {
  return detail::plan_segments(c.host_seq, c.H, c.K, c.V, segment_length);
}

Stages forward_stages(const Call& c, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& beta,
                      const at::Tensor& g, const at::Tensor& h0, double scale, bool final_state, bool output,
                      std::optional<bool> fuse_output, int64_t segment_length, bool inverse = false,
                      const Stages* kept = nullptr) {
  const auto stream = at::cuda::getCurrentCUDAStream().stream();
  const float* g_ptr = g.defined() ? g.data_ptr<float>() : nullptr;
  // W, U, h and v_new are fp16 whatever the inputs' dtype (the kernels' Inner type: sm90_kernels.h).
  const auto inner = q.options().dtype(at::kHalf);
  Stages st;
  st.u = v;
  if (kept != nullptr && kept->w.defined()) {  // W, U and T from the forward (chunk_train's keep_ut)
    st.w = kept->w;
    st.u = kept->u;
    st.t = kept->t;
  } else if (c.family != Family::kLinearAttention) {
    st.w = at::empty(k.sizes(), inner);
    st.u = at::empty(v.sizes(), inner);
    cuda::sm90::UtFwdParams p;
    p.dtype = c.dtype;
    p.k = k.data_ptr();
    p.v = v.data_ptr();
    p.beta = beta.data_ptr<float>();
    p.g = g_ptr;
    p.w = st.w.data_ptr();
    p.u = st.u.data_ptr();
    if (inverse) {
      st.t = at::empty({c.chunks, c.H, cuda::sm90::kStateChunk, cuda::sm90::kStateChunk}, inner);
      p.t = st.t.data_ptr();
    }
    p.seq_starts = c.seq_ptr();
    p.chunk_starts = c.chunk_ptr();
    p.chunks = c.chunks;
    p.N = c.N, p.T = c.T, p.H = c.H, p.K = c.K, p.V = c.V;
    cuda::sm90::chunk_ut_forward(p, stream);
  }
  // At K 256 the state pass holds S [256 x 64] in its accumulators (128 registers a thread) and has no room for the
  // fused output's O and P: the output kernel follows it. Where the caller leaves it to fuses_output, the pass's
  // grid decides: the segments' (step 3's) or the sequences', times heads and V's 64-column slices.
  const auto segments = plan_segments(c, segment_length);
  const int64_t pass_blocks = (segments ? static_cast<int64_t>(segments->sequence.size()) : c.N) * c.H *
                              (c.V / cuda::sm90::kStateColumns);
  const bool fused =
      output && c.K <= 128 &&
      fuse_output.value_or(fuses_output(c.family, pass_blocks,
                                        at::cuda::getCurrentDeviceProperties()->multiProcessorCount));
  if (!fused) {
    st.h = at::empty({c.chunks, c.H, c.K, c.V}, inner);
    st.v_new = at::empty(v.sizes(), inner);
  }
  if (output) st.o = at::empty_like(v);
  if (final_state) st.ht = at::empty({c.N, c.H, c.K, c.V}, q.options().dtype(at::kFloat));
  const auto h0_f32 = h0.defined() ? h0.to(at::kFloat).contiguous() : at::Tensor();
  {
    cuda::sm90::StateFwdParams p;
    p.dtype = c.dtype;
    p.w = st.w.defined() ? st.w.data_ptr() : nullptr;
    p.u = st.u.data_ptr();
    p.k = k.data_ptr();
    p.g = g_ptr;
    p.h0 = h0_f32.defined() ? h0_f32.data_ptr<float>() : nullptr;
    p.h = fused ? nullptr : st.h.data_ptr();
    p.v_new = fused ? nullptr : st.v_new.data_ptr();
    p.ht = final_state ? st.ht.data_ptr<float>() : nullptr;
    if (fused) {
      p.q = q.data_ptr();
      p.o = st.o.data_ptr();
      p.scale = static_cast<float>(scale);
    }
    p.seq_starts = c.seq_ptr();
    p.chunk_starts = c.chunk_ptr();
    p.N = c.N, p.T = c.T, p.H = c.H, p.K = c.K, p.V = c.V;
    if (segments) {
      detail::segmented_state_forward(p, *segments, h0_f32, st.ht);
    } else {
      cuda::sm90::chunk_state_forward(p, stream);
    }
  }
  if (output && !fused) {
    cuda::sm90::OutputFwdParams p;
    p.dtype = c.dtype;
    p.q = q.data_ptr();
    p.k = k.data_ptr();
    p.v_new = st.v_new.data_ptr();
    p.h = st.h.data_ptr();
    p.g = g_ptr;
    p.o = st.o.data_ptr();
    p.seq_starts = c.seq_ptr();
    p.chunk_starts = c.chunk_ptr();
    p.chunks = c.chunks;
    p.N = c.N, p.T = c.T, p.H = c.H, p.K = c.K, p.V = c.V;
    p.scale = static_cast<float>(scale);
    cuda::sm90::chunk_output_forward(p, stream);
  }
  return st;
}

}  // namespace

ForwardOutputs chunk_forward(Family family, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             const at::Tensor& beta, const at::Tensor& g, const at::Tensor& h0,
                             const at::Tensor& cu_seqlens, double scale, bool final_state,
                             std::optional<bool> fuse_output, int64_t segment_length) {
  check_segment_length(segment_length);
  const auto c = validate(family, q, k, v, beta, g, h0, cu_seqlens);
  if (segment_length == 0) {  // no backward follows: the forward's own plan (detail::model_segment_length)
    const auto length = detail::model_segment_length(c.host_seq, c.H, c.K, c.V, /*forward_alone=*/true);
    segment_length = length > 0 ? length : -1;
  }
  auto st = forward_stages(c, q, k, v, beta, g, h0, scale, final_state, true, fuse_output, segment_length);
  return {std::move(st.o), std::move(st.ht)};
}

namespace {

struct TrainConfig {
  Family family = Family::kDeltaRule;
  double scale = 1;
  bool final_state = false;
  at::Tensor cu_seqlens;
  int64_t segment_length = 0;  // forward_stages's, in the forward and the backward's recomputation
  bool keep_ut = false;        // chunk_train's
  bool keep_state = false;     // chunk_train's
};

class Sm90Train : public torch::autograd::Function<Sm90Train> {
 public:
  // beta, g and h0 optional: autograd's record of a Function's inputs asks every tensor input its device, which an
  // undefined tensor does not have (torch 2.11).
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k,
                                                const at::Tensor& v, const std::optional<at::Tensor>& beta_in,
                                                const std::optional<at::Tensor>& g_in,
                                                const std::optional<at::Tensor>& h0_in, const TrainConfig& cfg) {
    const auto beta = beta_in.value_or(at::Tensor()), g = g_in.value_or(at::Tensor()), h0 = h0_in.value_or(at::Tensor());
    const auto c = validate(cfg.family, q, k, v, beta, g, h0, cfg.cu_seqlens);
    require(c.V <= 128, "training takes V up to 128 (got " + std::to_string(c.V) + ")");
    const bool keep = cfg.keep_ut && cfg.family != Family::kLinearAttention;
    require(!cfg.keep_state || cfg.keep_ut || cfg.family == Family::kLinearAttention,
            "keep_state needs keep_ut: the backward would recompute W and U and not h");
    // The output fused into the state pass where fuses_output says. Where h and v_new are kept the pass writes
    // them, and the output kernel reads them.
    const auto fuse = cfg.keep_state ? std::optional<bool>(false) : std::nullopt;
    auto st = forward_stages(c, q, k, v, beta, g, h0, cfg.scale, cfg.final_state, true, fuse, cfg.segment_length, keep);
    const auto h = cfg.keep_state ? st.h : at::Tensor(), v_new = cfg.keep_state ? st.v_new : at::Tensor();
    if (keep) {
      ctx->save_for_backward({q, k, v, beta, g, h0, cfg.cu_seqlens, st.w, st.u, st.t, h, v_new});
    } else {
      ctx->save_for_backward({q, k, v, beta, g, h0, cfg.cu_seqlens, {}, {}, {}, h, v_new});
    }
    ctx->saved_data["family"] = static_cast<int64_t>(cfg.family);
    ctx->saved_data["scale"] = cfg.scale;
    ctx->saved_data["segment_length"] = cfg.segment_length;
    ctx->saved_data["host_seq"] = c.host_seq;
    if (!cfg.final_state) return {st.o};
    return {st.o, st.ht};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &beta = saved[3], &g = saved[4], &h0 = saved[5], &cu = saved[6];
    const auto family = static_cast<Family>(ctx->saved_data["family"].toInt());
    const double scale = ctx->saved_data["scale"].toDouble();
    const auto host_seq = ctx->saved_data["host_seq"].toIntVector();
    const auto c = validate(family, q, k, v, beta, g, h0, cu, cu.defined() ? &host_seq : nullptr);
    const bool delta = family != Family::kLinearAttention;
    const auto stream = at::cuda::getCurrentCUDAStream().stream();
    const float* g_ptr = g.defined() ? g.data_ptr<float>() : nullptr;
    // h and v_new recomputed, and W, U and T (for the UT transform's backward) where the forward kept none, as the
    // forward made them (the same kernels on the same inputs: the same bits).
    Stages kept;
    kept.w = saved[7], kept.u = saved[8], kept.t = saved[9];
    kept.h = saved[10], kept.v_new = saved[11];  // keep_state's: then no forward pass here
    const auto st = kept.h.defined() ? kept
                                     : forward_stages(c, q, k, v, beta, g, h0, scale, false, false, false,
                                                      ctx->saved_data["segment_length"].toInt(), delta, &kept);
    const auto f32 = q.options().dtype(at::kFloat), inner = q.options().dtype(at::kHalf);
    // dO and dh_T scaled by 2^-e, e the exponent of their largest magnitude, so that it lies in [1, 2); every
    // gradient is linear in them, and the outputs are scaled back at the end: both exact (powers of two). dO is
    // scaled by the three kernels that read it, where they round it to fp16 (dout_scale), dh_T here. A loss
    // averaged over many tokens gives dO near 1e-5, and its products with the softmax scale and the decays e^G
    // fell below fp16's normal range (6.1e-5) in the kernels' Inner operands, where they keep a few bits or none:
    // a Gated DeltaNet model's autocast gradients were 1.7% off (kernels/delta_rule/NOTES.md, version 3j). On the
    // device alone (no wait for the stream, as a captured step needs); a dO that is zero, infinite or NaN is left
    // as is.
    const auto& gout = grads[0];
    const auto ght = grads.size() > 1 ? grads[1] : at::Tensor();
    const auto exponent = detail::gradient_exponent(gout, ght, q.device());
    const auto up = at::exp2(-exponent), down = at::exp2(exponent);
    // dO as autograd gives it, in o's dtype, is scaled by the kernels; in another dtype, here, before its cast,
    // which fp16's range would otherwise cut.
    const bool cast = gout.defined() && gout.scalar_type() != q.scalar_type();
    const auto dout = !gout.defined() ? at::zeros_like(v)
                      : cast          ? (gout * up).to(q.scalar_type()).contiguous()
                                      : gout.contiguous();
    const float* dout_scale = cast ? nullptr : up.data_ptr<float>();
    const auto dht = ght.defined() ? (ght.to(at::kFloat) * up).contiguous() : at::Tensor();

    auto dv_local = at::empty(v.sizes(), inner);
    {
      cuda::sm90::DvLocalParams p;
      p.dtype = c.dtype, p.q = q.data_ptr(), p.k = k.data_ptr(), p.dout = dout.data_ptr(), p.g = g_ptr;
      p.dout_scale = dout_scale;
      p.dv_local = dv_local.data_ptr();
      p.seq_starts = c.seq_ptr(), p.chunk_starts = c.chunk_ptr(), p.chunks = c.chunks;
      p.N = c.N, p.T = c.T, p.H = c.H, p.K = c.K, p.V = c.V, p.scale = static_cast<float>(scale);
      cuda::sm90::chunk_dv_local(p, stream);
    }
    auto dh = at::empty({c.chunks, c.H, c.K, c.V}, inner), dv_new = at::empty(v.sizes(), inner);
    auto dh0 = h0.defined() ? at::empty({c.N, c.H, c.K, c.V}, f32) : at::Tensor();
    {
      cuda::sm90::StateBwdParams p;
      p.dtype = c.dtype, p.q = q.data_ptr(), p.k = k.data_ptr(), p.w = delta ? st.w.data_ptr() : nullptr, p.g = g_ptr;
      p.dout = dout.data_ptr(), p.dout_scale = dout_scale, p.dv_local = dv_local.data_ptr();
      p.dht = dht.defined() ? dht.data_ptr<float>() : nullptr;
      p.dh = dh.data_ptr(), p.dv_new = dv_new.data_ptr(), p.dh0 = dh0.defined() ? dh0.data_ptr<float>() : nullptr;
      p.seq_starts = c.seq_ptr(), p.chunk_starts = c.chunk_ptr();
      p.N = c.N, p.T = c.T, p.H = c.H, p.K = c.K, p.V = c.V, p.scale = static_cast<float>(scale);
      // Segment-parallel where the forward's pass was (the same split: both run one block a head and 64 columns).
      if (const auto segments = plan_segments(c, ctx->saved_data["segment_length"].toInt())) {
        detail::segmented_state_backward(p, *segments, dht, dh0);
      } else {
        cuda::sm90::chunk_state_backward(p, stream);
      }
    }
    // dq, and the delta rules' dk and dv, written by the kernels in the inputs' dtype and scaled back there; the
    // rest, small or (linear attention's dk and dv) not from a last kernel, scaled back in their casts below.
    auto dq = at::empty(q.sizes(), q.options()), dk = at::empty(k.sizes(), f32);
    auto dw = delta ? at::empty(k.sizes(), k.options().dtype(at::kHalf)) : at::Tensor();  // fp16, as the UT backward reads it
    auto dG = g.defined() ? at::empty(g.sizes(), f32) : at::Tensor();
    {
      cuda::sm90::DqkwParams p;
      p.dtype = c.dtype, p.q = q.data_ptr(), p.k = k.data_ptr(), p.dout = dout.data_ptr(), p.g = g_ptr;
      p.dout_scale = dout_scale;
      p.v_new = st.v_new.data_ptr(), p.dv_new = delta ? dv_new.data_ptr() : nullptr;
      p.h = st.h.data_ptr(), p.dh = dh.data_ptr();
      p.dq_out = dq.data_ptr(), p.grad_scale = down.data_ptr<float>();
      p.dk = dk.data_ptr<float>(), p.dw = delta ? dw.data_ptr() : nullptr;
      p.dg = dG.defined() ? dG.data_ptr<float>() : nullptr;
      p.seq_starts = c.seq_ptr(), p.chunk_starts = c.chunk_ptr(), p.chunks = c.chunks;
      p.N = c.N, p.T = c.T, p.H = c.H, p.K = c.K, p.V = c.V, p.scale = static_cast<float>(scale);
      cuda::sm90::chunk_dqkw(p, stream);
    }
    at::Tensor dv, dbeta, dk_out, dg;
    if (delta) {
      dk_out = at::empty(k.sizes(), k.options());
      dv = at::empty(v.sizes(), v.options());
      dbeta = at::empty(beta.sizes(), f32);
      cuda::sm90::UtBwdParams p;
      p.dtype = c.dtype, p.k = k.data_ptr(), p.v = v.data_ptr(), p.beta = beta.data_ptr<float>(), p.g = g_ptr;
      p.dw = dw.data_ptr(), p.du = dv_new.data_ptr();
      p.dk = dk.data_ptr<float>(), p.dk_out = dk_out.data_ptr(), p.dv_out = dv.data_ptr(), p.dbeta = dbeta.data_ptr<float>();
      p.grad_scale = down.data_ptr<float>();
      p.dg = dG.defined() ? dG.data_ptr<float>() : nullptr;
      if (dG.defined()) {  // g's gradient itself, summed within the chunks and scaled back by the kernel
        dg = at::empty(g.sizes(), f32);
        p.dg_out = dg.data_ptr<float>();
      }
      p.t = st.t.data_ptr();
      p.seq_starts = c.seq_ptr(), p.chunk_starts = c.chunk_ptr(), p.chunks = c.chunks;
      p.N = c.N, p.T = c.T, p.H = c.H, p.K = c.K, p.V = c.V;
      cuda::sm90::chunk_ut_backward(p, stream);
    } else {
      dv = dv_new.to(at::kFloat);  // U = v
    }
    // Scaled back: in place where t is already of the output's dtype, else in the cast to it (one pass either way).
    const auto back = [&](const at::Tensor& t, at::ScalarType type) {
      if (!t.defined()) return t;
      auto out = t.scalar_type() == type ? t : at::empty(t.sizes(), t.options().dtype(type));
      return at::mul_out(out, t, down);
    };
    if (!delta) {  // linear attention: dk from chunk_dqkw, dv the state pass's dv_new, both still to scale back
      dk_out = back(dk, k.scalar_type());
      dv = back(dv, v.scalar_type());
      // dg from dG: sums within each chunk, on the device alone for equal rows (the delta rules' UT backward
      // writes them itself).
      if (dG.defined()) {
        const auto seq = c.seq_starts.defined() ? c.host_seq : std::vector<int64_t>{};
        dg = back(detail::chunk_suffix_sums(dG.view({-1, c.H}), c.B, c.T, seq).view(g.sizes()), at::kFloat);
      }
    }
    return {dq, dk_out, dv, back(dbeta, at::kFloat), dg, back(dh0, at::kFloat), at::Tensor()};
  }
};

}  // namespace

ForwardOutputs chunk_train(Family family, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& beta,
                           const at::Tensor& g, const at::Tensor& h0, const at::Tensor& cu_seqlens, double scale,
                           bool final_state, int64_t segment_length, bool keep_ut, bool keep_state) {
  check_segment_length(segment_length);
  TrainConfig cfg;
  cfg.keep_ut = keep_ut;
  cfg.keep_state = keep_state;
  cfg.family = family;
  cfg.scale = scale;
  cfg.final_state = final_state;
  cfg.cu_seqlens = cu_seqlens;
  cfg.segment_length = segment_length;
  const auto optional = [](const at::Tensor& t) { return t.defined() ? std::optional<at::Tensor>(t) : std::nullopt; };
  const auto out = Sm90Train::apply(q, k, v, optional(beta), optional(g), optional(h0), cfg);
  return {out[0], final_state ? out[1] : at::Tensor()};
}

bool serves(Family family, int64_t K, int64_t V, int64_t NH, at::ScalarType dtype, bool train) {
  const bool delta = family != Family::kLinearAttention;
  const bool v_ok = train ? (V == 64 || V == 128) : V > 0 && V % 64 == 0 && (!delta || V <= 256);
  const bool k_ok = K == 64 || K == 128 || (K == 256 && !train);  // the backward's kernels take 64 and 128
  return (dtype == at::kBFloat16 || dtype == at::kHalf) && k_ok && v_ok && NH <= 65535 && cuda::sm90::available();
}

at::Tensor contiguous_aligned(const at::Tensor& t, std::optional<at::ScalarType> dtype) {
  if (!t.defined()) return t;
  auto c = (dtype ? t.to(*dtype) : t).contiguous();
  return reinterpret_cast<std::uintptr_t>(c.data_ptr()) % 16 == 0 ? c : c.clone();
}

namespace detail {

int64_t model_segment_length(const std::vector<int64_t>& host_seq, int64_t H, int64_t K, int64_t V,
                             bool forward_alone) {
  // The cost model's waves counted in blocks that run at once: the forward's state pass and the backward's
  // single-buffered one (the pipeline a segmented backward takes at K 128) fit two blocks an SM at K 64 and
  // 128. With one an SM the model chose 8192 at 1 x 32K, H 16, K = V = 128; 4096 was the quicker there for
  // the op's forward + backward (H100: 4.68 against 4.78 ms, gated 5.26 against 5.39; 2048: 4.98 and 5.55;
  // kernels/delta_rule/NOTES.md, version 3p measured), and two an SM chooses it. The forward alone loses by it:
  // at 8 x 4K, H 8, K = V = 64 two an SM split it in four, 0.420 ms against 0.331 whole (gated 0.496 against
  // 0.435), where forward + backward gained (1.171 against 1.231, 1.298 against 1.479; twelfth run, one call);
  // one an SM keeps that whole and gives 8192 at 1 x 32K. At K 256 the forward's pass takes 186 KB of shared
  // memory: one an SM.
  const int64_t blocks_per_sm = forward_alone || K > 128 ? 1 : 2;
  const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const int64_t blocks = H * (V / cuda::sm90::kStateColumns);
  return choose_segment_length(host_seq, blocks, (K + V - 1) / V, blocks_per_sm * sms);
}

std::optional<Segments> plan_segments(const std::vector<int64_t>& host_seq, int64_t H, int64_t K, int64_t V,
                                      int64_t segment_length) {
  if (segment_length == 0) segment_length = model_segment_length(host_seq, H, K, V, /*forward_alone=*/false);
  if (segment_length <= 0) return std::nullopt;
  auto segments = split_sequences(host_seq, segment_length);
  if (segments.max_segments <= 1) return std::nullopt;
  return segments;
}

void segmented_state_forward(cuda::sm90::StateFwdParams p, const Segments& segments, const at::Tensor& h0,
                             const at::Tensor& ht) {
  const auto offsets = as_segments(p, segments, "segmented_state_forward", {{"h0", &h0}, {"ht", &ht}});
  const int64_t S = p.N, H = p.H, K = p.K, V = p.V;
  const auto device = offsets.seq.device();
  const auto stream = at::cuda::getCurrentCUDAStream().stream();
  const auto f32 = at::TensorOptions().device(device).dtype(at::kFloat);

  auto state_only = p;  // nothing written per chunk, no output
  state_only.h = state_only.v_new = nullptr;
  state_only.q = nullptr;
  state_only.o = nullptr;
  const auto identity = at::eye(K, f32).expand({S, H, K, K}).contiguous();
  const auto M = at::empty({S, H, K, K}, f32), L = at::empty({S, H, K, V}, f32);
  auto m = state_only;
  m.u = nullptr;
  m.V = K;
  m.h0 = identity.data_ptr<float>();
  m.ht = M.data_ptr<float>();
  auto l = state_only;
  l.h0 = nullptr;
  l.ht = L.data_ptr<float>();
  side_by_side([&](cudaStream_t side) { cuda::sm90::chunk_state_forward(m, side); },
               [&](cudaStream_t main) { cuda::sm90::chunk_state_forward(l, main); });

  const auto start_states = segment_start_states(segments, M, L, h0).contiguous();
  const auto ends = ht.defined() ? at::empty({S, H, K, V}, f32) : at::Tensor();
  p.h0 = start_states.data_ptr<float>();
  p.ht = ends.defined() ? ends.data_ptr<float>() : nullptr;
  cuda::sm90::chunk_state_forward(p, stream);
  if (ends.defined()) ht.copy_(ends.index_select(0, device_offsets(segments.last, device)));
}

void segmented_state_backward(cuda::sm90::StateBwdParams p, const Segments& segments, const at::Tensor& dht,
                              const at::Tensor& dh0) {
  const auto offsets = as_segments(p, segments, "segmented_state_backward", {{"dht", &dht}, {"dh0", &dh0}});
  const int64_t S = p.N, H = p.H, K = p.K, V = p.V;
  const auto device = offsets.seq.device();
  const auto stream = at::cuda::getCurrentCUDAStream().stream();
  const auto f32 = at::TensorOptions().device(device).dtype(at::kFloat);

  // Step 1, for dh0 alone: each segment's start gradient from a zero end (L), and its transition from identity
  // columns without dO (M).
  auto state_only = p;
  state_only.dh = state_only.dv_new = nullptr;
  // Their pipeline chosen for both grids together, which run side by side (below): at K 128 where they would share
  // SMs, single buffers, two blocks an SM; each grid alone would take double buffers at 1 x 32K, H 16 (128 blocks,
  // one an SM), and the two then could not share. The same bits either way (the pipelines' test).
  if (state_only.buffers == 0) {
    const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
    const int64_t blocks = (K + V) / cuda::sm90::kStateColumns * S * H;
    state_only.buffers = cuda::sm90::state_backward_buffers(blocks, K, sms);
  }
  const auto identity = at::eye(K, f32).expand({S, H, K, K}).contiguous();
  const auto M = at::empty({S, H, K, K}, f32), L = at::empty({S, H, K, V}, f32);
  auto m = state_only;
  m.q = m.dout = m.dv_local = nullptr;
  m.V = K;
  m.dht = identity.data_ptr<float>();
  m.dh0 = M.data_ptr<float>();
  auto l = state_only;
  l.dht = nullptr;
  l.dh0 = L.data_ptr<float>();
  side_by_side([&](cudaStream_t side) { cuda::sm90::chunk_state_backward(m, side); },
               [&](cudaStream_t main) { cuda::sm90::chunk_state_backward(l, main); });

  // Step 2: every segment's end gradient, joined from each sequence's end backwards.
  const auto back = backwards(segments);
  const auto ends = segment_start_states(back, M, L, dht).contiguous();
  // Step 3: the pass from them; a sequence's dh0 is its first segment's.
  const auto starts = dh0.defined() ? at::empty({S, H, K, V}, f32) : at::Tensor();
  p.dht = ends.data_ptr<float>();
  p.dh0 = starts.defined() ? starts.data_ptr<float>() : nullptr;
  if (p.dh != nullptr || p.dh0 != nullptr) cuda::sm90::chunk_state_backward(p, stream);
  if (dh0.defined()) dh0.copy_(starts.index_select(0, device_offsets(back.last, device)));
}

at::Tensor gradient_exponent(const at::Tensor& dout, const at::Tensor& dht, at::Device device) {
  auto amax = at::zeros({}, at::TensorOptions().device(device).dtype(at::kFloat));
  for (const auto* t : {&dout, &dht}) {
    if (t->defined()) amax = at::maximum(amax, at::linalg_vector_norm(*t, INFINITY, std::nullopt, false, at::kFloat));
  }
  const auto exponent = at::floor(at::log2(amax));
  return at::where(at::isfinite(exponent), exponent.clamp(-100, 100), at::zeros_like(exponent));
}

at::Tensor chunk_suffix_sums(const at::Tensor& dG, int64_t B, int64_t T, const std::vector<int64_t>& seq) {
  const int64_t chunk = cuda::sm90::kStateChunk, H = dG.size(1);
  if (seq.empty()) {
    // Each row padded to whole chunks, each chunk summed from its end: on the device alone.
    const int64_t padded = (T + chunk - 1) / chunk * chunk;
    const auto rows = at::constant_pad_nd(dG.to(at::kDouble).view({B, T, H}), {0, 0, 0, padded - T});
    const auto sums = rows.view({B, padded / chunk, chunk, H}).flip(2).cumsum(2).flip(2);
    return sums.view({B, padded, H}).narrow(1, 0, T).reshape({B * T, H}).to(at::kFloat);
  }
  // The total over the batch up to t's chunk's last token, minus the part before t.
  std::vector<int64_t> last;  // per token: the index of its chunk's last token
  last.reserve(static_cast<size_t>(dG.size(0)));
  for (size_t n = 0; n + 1 < seq.size(); ++n) {
    for (int64_t t = seq[n]; t < seq[n + 1]; ++t) {
      const int64_t chunk_end = seq[n] + ((t - seq[n]) / chunk + 1) * chunk;
      last.push_back(std::min(chunk_end, seq[n + 1]) - 1);
    }
  }
  const auto idx = device_offsets(last, dG.device());  // pinned and asynchronous on CUDA: no wait for the stream
  const auto d = dG.to(at::kDouble);
  const auto prefix = d.cumsum(0);
  return (prefix.index_select(0, idx) - prefix + d).to(at::kFloat);
}

}  // namespace detail

}  // namespace deltabench::sm90
