#include "kernels/common/validate.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <sstream>
#include <string>

namespace deltabench::detail {
namespace {

std::string sizes_string(const at::Tensor& t) {
  std::ostringstream s;
  s << t.sizes();
  return s.str();
}

bool is_floating(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

void check_device(std::string_view op, const at::Tensor& ref, const at::Tensor& t,
                  std::string_view name) {
  if (!t.defined()) return;
  TORCH_CHECK(t.device() == ref.device(), op, ": ", name, " must be on the device of q (", ref.device(),
              "), got ", t.device());
}

void check_shape(std::string_view op, const at::Tensor& t, std::string_view name,
                 std::string_view layout, std::vector<int64_t> expected) {
  TORCH_CHECK(t.dim() == static_cast<int64_t>(expected.size()), op, ": ", name, " must have ",
              expected.size(), " dimensions ", layout, ", got ", t.dim(), " with shape ",
              sizes_string(t));
  TORCH_CHECK(t.sizes().vec() == expected, op, ": ", name, " must have shape ", layout, " = ",
              at::IntArrayRef(expected), ", got ", sizes_string(t));
}

}  // namespace

at::ScalarType compute_dtype(at::ScalarType input) {
  return input == at::kDouble ? at::kDouble : at::kFloat;
}

SequenceShape validate_sequence_inputs(std::string_view op, const at::Tensor& q, const at::Tensor& k,
                                       const at::Tensor& v, const at::Tensor& beta,
                                       const at::Tensor& g, const SequenceOptions& options) {
  TORCH_CHECK(q.defined() && k.defined() && v.defined(), op, ": q, k and v are required");
  const at::Tensor& h0 = options.initial_state;

  // 1. Device.
  check_device(op, q, k, "k");
  check_device(op, q, v, "v");
  check_device(op, q, beta, "beta");
  check_device(op, q, g, "g");
  check_device(op, q, h0, "initial_state");

  // 2. Dtype. beta and g may also be fp32 with half-precision q (what autocast produces).
  TORCH_CHECK(is_floating(q.scalar_type()), op,
              ": q must be float32, float64, float16 or bfloat16, got ", q.scalar_type());
  TORCH_CHECK(k.scalar_type() == q.scalar_type(), op, ": k must have the dtype of q (",
              q.scalar_type(), "), got ", k.scalar_type());
  TORCH_CHECK(v.scalar_type() == q.scalar_type(), op, ": v must have the dtype of q (",
              q.scalar_type(), "), got ", v.scalar_type());
  for (auto [t, name] : {std::pair{&beta, "beta"}, std::pair{&g, "g"}}) {
    if (!t->defined()) continue;
    const bool ok = t->scalar_type() == q.scalar_type() || t->scalar_type() == at::kFloat;
    TORCH_CHECK(ok, op, ": ", name, " must have the dtype of q (", q.scalar_type(),
                ") or float32, got ", t->scalar_type());
  }
  const auto state_dtype = compute_dtype(q.scalar_type());
  if (h0.defined()) {
    const bool ok = h0.scalar_type() == at::kFloat || h0.scalar_type() == state_dtype;
    TORCH_CHECK(ok, op, ": initial_state must be float32", (state_dtype == at::kDouble ? " or float64" : ""),
                ", got ", h0.scalar_type());
  }

  // 3. Named sizes, read off q and v.
  TORCH_CHECK(q.dim() == 4, op, ": q must have 4 dimensions [B, T, H, K], got ", q.dim(),
              " with shape ", sizes_string(q));
  TORCH_CHECK(v.dim() == 4, op, ": v must have 4 dimensions [B, T, H, V], got ", v.dim(),
              " with shape ", sizes_string(v));
  SequenceShape s;
  s.B = q.size(0);
  s.T = q.size(1);
  s.H = q.size(2);
  s.K = q.size(3);
  s.V = v.size(3);
  TORCH_CHECK(s.B > 0 && s.T > 0 && s.H > 0 && s.K > 0 && s.V > 0, op,
              ": q and v must be non-empty, got q ", sizes_string(q), " and v ", sizes_string(v));

  // 4. Shapes.
  check_shape(op, k, "k", "[B, T, H, K]", {s.B, s.T, s.H, s.K});
  check_shape(op, v, "v", "[B, T, H, V]", {s.B, s.T, s.H, s.V});
  if (beta.defined()) check_shape(op, beta, "beta", "[B, T, H]", {s.B, s.T, s.H});
  if (g.defined()) check_shape(op, g, "g", "[B, T, H]", {s.B, s.T, s.H});

  const int64_t C = options.chunk_size;
  TORCH_CHECK(C == 16 || C == 32 || C == 64, op, ": chunk_size must be 16, 32 or 64, got ", C);
  const int64_t segment = options.kernel_segment_length;
  TORCH_CHECK(segment == 0 || segment == -1 || (segment > 0 && segment % 64 == 0), op,
              ": kernel_segment_length must be 0 (chosen), -1 (whole sequences) or a positive multiple of 64, got ",
              segment);
  if (options.scale) {
    TORCH_CHECK(std::isfinite(*options.scale), op, ": scale must be finite, got ", *options.scale);
  }

  // Sequences: the rows of the batch, or the segments of cu_seqlens.
  const at::Tensor& cu = options.cu_seqlens;
  if (cu.defined()) {
    TORCH_CHECK(cu.scalar_type() == at::kInt || cu.scalar_type() == at::kLong, op,
                ": cu_seqlens must be int32 or int64, got ", cu.scalar_type());
    TORCH_CHECK(cu.dim() == 1 && cu.size(0) >= 2, op,
                ": cu_seqlens must have shape [N + 1] with N >= 1, got ", sizes_string(cu));
    TORCH_CHECK(s.B == 1, op, ": cu_seqlens needs a packed batch, B = 1, got B = ", s.B);
    const at::Tensor host = cu.to(at::kCPU, at::kLong).contiguous();
    const int64_t* p = host.data_ptr<int64_t>();
    s.seq_starts.assign(p, p + host.size(0));
    TORCH_CHECK(s.seq_starts.front() == 0, op, ": cu_seqlens must start at 0, got ",
                s.seq_starts.front());
    for (size_t i = 1; i < s.seq_starts.size(); ++i) {
      TORCH_CHECK(s.seq_starts[i] > s.seq_starts[i - 1], op,
                  ": cu_seqlens must be strictly increasing, got cu_seqlens[", i - 1, "] = ",
                  s.seq_starts[i - 1], " and cu_seqlens[", i, "] = ", s.seq_starts[i]);
    }
    TORCH_CHECK(s.seq_starts.back() == s.T, op, ": cu_seqlens must end at T = ", s.T, ", got ",
                s.seq_starts.back());
    s.N = static_cast<int64_t>(s.seq_starts.size()) - 1;
  } else {
    s.N = s.B;
    s.seq_starts = {0, s.T};
  }
  if (h0.defined()) check_shape(op, h0, "initial_state", "[N, H, K, V]", {s.N, s.H, s.K, s.V});
  return s;
}

}  // namespace deltabench::detail
