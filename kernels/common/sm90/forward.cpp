#include "kernels/common/sm90/forward.h"

#include "kernels/common/sm90/sm90_kernels.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>

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

}  // namespace

ForwardOutputs chunk_forward(Family family, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             const at::Tensor& beta, const at::Tensor& g, const at::Tensor& h0,
                             const at::Tensor& cu_seqlens, double scale, bool final_state) {
  require(q.dim() == 4 && k.sizes() == q.sizes() && v.dim() == 4 && v.size(0) == q.size(0) && v.size(1) == q.size(1) &&
              v.size(2) == q.size(2),
          "q, k must be [B, T, H, K] and v [B, T, H, V] (got q " + sizes(q) + ", k " + sizes(k) + ", v " + sizes(v) + ")");
  require(q.is_cuda() && q.is_contiguous() && k.is_contiguous() && v.is_contiguous(), "q, k and v must be contiguous CUDA tensors");
  for (const auto& [name, t] : {std::pair<const char*, const at::Tensor*>{"k", &k}, {"v", &v}, {"beta", &beta}, {"g", &g},
                                {"h0", &h0}, {"cu_seqlens", &cu_seqlens}}) {
    require(!t->defined() || t->device() == q.device(),
            std::string(name) + " must be on q's device, " + q.device().str() + " (got " + t->device().str() + ")");
  }
  require(q.scalar_type() == k.scalar_type() && q.scalar_type() == v.scalar_type() &&
              (q.scalar_type() == at::kBFloat16 || q.scalar_type() == at::kHalf),
          "q, k and v must all be bf16 or all fp16");
  const bool delta = family != Family::kLinearAttention;
  require(!delta || (beta.defined() && beta.scalar_type() == at::kFloat && beta.is_contiguous()),
          "the delta rules need beta [B, T, H], fp32 and contiguous");
  require(family != Family::kGatedDeltaRule || g.defined(), "the gated delta rule needs g");
  require(!g.defined() || (g.scalar_type() == at::kFloat && g.is_contiguous()), "g must be fp32 and contiguous");
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), K = q.size(3), V = v.size(3);
  const auto options = q.options();
  const auto stream = at::cuda::getCurrentCUDAStream().stream();
  const auto dtype = q.scalar_type() == at::kBFloat16 ? cuda::Dtype::kBF16 : cuda::Dtype::kFP16;

  // The batch: N sequences of T, or cu_seqlens' (with B = 1), and their chunks' offsets.
  int64_t N = B, chunks = B * ((T + cuda::sm90::kStateChunk - 1) / cuda::sm90::kStateChunk);
  at::Tensor seq_starts, chunk_starts;
  if (cu_seqlens.defined()) {
    require(B == 1, "with cu_seqlens B must be 1 (got " + std::to_string(B) + ")");
    const auto cpu = cu_seqlens.to(at::kCPU, at::kLong);
    N = cpu.numel() - 1;
    require(N >= 1 && cpu[0].item<int64_t>() == 0 && cpu[N].item<int64_t>() == T,
            "cu_seqlens must run from 0 to T (" + std::to_string(T) + ")");
    std::vector<int64_t> starts{0};
    for (int64_t n = 0; n < N; ++n) {
      const int64_t length = cpu[n + 1].item<int64_t>() - cpu[n].item<int64_t>();
      require(length >= 0, "cu_seqlens must not decrease");
      starts.push_back(starts.back() + (length + cuda::sm90::kStateChunk - 1) / cuda::sm90::kStateChunk);
    }
    chunks = starts.back();
    seq_starts = cpu.to(q.device());
    chunk_starts = at::tensor(starts, at::kLong).to(q.device());
  }
  const int64_t* seq_ptr = seq_starts.defined() ? seq_starts.data_ptr<int64_t>() : nullptr;
  const int64_t* chunk_ptr = chunk_starts.defined() ? chunk_starts.data_ptr<int64_t>() : nullptr;
  const float* g_ptr = g.defined() ? g.data_ptr<float>() : nullptr;

  // W, U, h and v_new are fp16 whatever the inputs' dtype (the kernels' Inner type: sm90_kernels.h).
  const auto inner = options.dtype(at::kHalf);
  at::Tensor w, u = v;
  if (delta) {
    w = at::empty(k.sizes(), inner);
    u = at::empty(v.sizes(), inner);
    cuda::sm90::UtFwdParams p;
    p.dtype = dtype;
    p.k = k.data_ptr();
    p.v = v.data_ptr();
    p.beta = beta.data_ptr<float>();
    p.g = g_ptr;
    p.w = w.data_ptr();
    p.u = u.data_ptr();
    p.seq_starts = seq_ptr;
    p.chunk_starts = chunk_ptr;
    p.chunks = chunks;
    p.N = N, p.T = T, p.H = H, p.K = K, p.V = V;
    cuda::sm90::chunk_ut_forward(p, stream);
  }
  auto h = at::empty({chunks, H, K, V}, inner);
  auto v_new = at::empty(v.sizes(), inner);
  ForwardOutputs out;
  if (final_state) out.final_state = at::empty({N, H, K, V}, options.dtype(at::kFloat));
  at::Tensor h0_f32;
  if (h0.defined()) {
    require(h0.dim() == 4 && h0.size(0) == N && h0.size(1) == H && h0.size(2) == K && h0.size(3) == V,
            "h0 must be [N, H, K, V] = [" + std::to_string(N) + ", " + std::to_string(H) + ", " + std::to_string(K) + ", " +
                std::to_string(V) + "] (got " + sizes(h0) + ")");
    h0_f32 = h0.to(at::kFloat).contiguous();
  }
  {
    cuda::sm90::StateFwdParams p;
    p.dtype = dtype;
    p.w = w.defined() ? w.data_ptr() : nullptr;
    p.u = u.data_ptr();
    p.k = k.data_ptr();
    p.g = g_ptr;
    p.h0 = h0_f32.defined() ? h0_f32.data_ptr<float>() : nullptr;
    p.h = h.data_ptr();
    p.v_new = v_new.data_ptr();
    p.ht = final_state ? out.final_state.data_ptr<float>() : nullptr;
    p.seq_starts = seq_ptr;
    p.chunk_starts = chunk_ptr;
    p.N = N, p.T = T, p.H = H, p.K = K, p.V = V;
    cuda::sm90::chunk_state_forward(p, stream);
  }
  out.o = at::empty_like(v);
  {
    cuda::sm90::OutputFwdParams p;
    p.dtype = dtype;
    p.q = q.data_ptr();
    p.k = k.data_ptr();
    p.v_new = v_new.data_ptr();
    p.h = h.data_ptr();
    p.g = g_ptr;
    p.o = out.o.data_ptr();
    p.seq_starts = seq_ptr;
    p.chunk_starts = chunk_ptr;
    p.chunks = chunks;
    p.N = N, p.T = T, p.H = H, p.K = K, p.V = V;
    p.scale = static_cast<float>(scale);
    cuda::sm90::chunk_output_forward(p, stream);
  }
  return out;
}

}  // namespace deltabench::sm90
