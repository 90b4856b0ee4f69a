#include "kernels/common/decode.h"

#include "kernels/common/validate.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#ifdef DELTABENCH_HAVE_CUDA
#include "kernels/common/cuda_kernels.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#endif

#include <cmath>

namespace deltabench {

at::Tensor recurrent_decode(Family family, const SequenceInputs& in, const at::Tensor& state,
                            std::optional<double> scale, at::Tensor out) {
  const std::string op = "recurrent_decode(" + std::string(family_name(family)) + ")";
  SequenceOptions options;
  options.initial_state = state;
  options.scale = scale;
  const at::Tensor& g = family == Family::kDeltaRule ? at::Tensor() : in.g;
  const at::Tensor& beta = family == Family::kLinearAttention ? at::Tensor() : in.beta;
  const auto shape = detail::validate_sequence_inputs(op, in.q, in.k, in.v, beta, g, options);
  TORCH_CHECK(state.scalar_type() == at::kFloat, op, ": state must be float32, got ", state.scalar_type());
  TORCH_CHECK(state.is_contiguous(), op, ": state must be contiguous (it is updated in place)");
  if (out.defined()) {
    TORCH_CHECK(out.device() == in.v.device() && out.scalar_type() == in.v.scalar_type() && out.is_contiguous() &&
                    out.sizes() == in.v.sizes(),
                op, ": out must be a contiguous ", in.v.scalar_type(), " tensor of shape ", in.v.sizes(), " on ",
                in.v.device(), ", got ", out.scalar_type(), " ", out.sizes(), " on ", out.device());
  }
#ifdef DELTABENCH_HAVE_CUDA
  const auto dtype = in.q.scalar_type();
  if (in.q.is_cuda() && cuda::recurrent_decode_supports(shape.K, shape.V) &&
      (dtype == at::kBFloat16 || dtype == at::kHalf || dtype == at::kFloat) && in.q.is_contiguous() &&
      in.k.is_contiguous() && in.v.is_contiguous() && (!beta.defined() || (beta.is_contiguous() && beta.scalar_type() == at::kFloat)) &&
      (!g.defined() || (g.is_contiguous() && g.scalar_type() == at::kFloat))) {
    const c10::cuda::CUDAGuard guard(in.q.device());
    if (!out.defined()) out = at::empty_like(in.v, in.v.options().memory_format(at::MemoryFormat::Contiguous));
    cuda::DecodeParams p;
    p.family = family;
    p.dtype = dtype == at::kBFloat16 ? cuda::Dtype::kBF16 : dtype == at::kHalf ? cuda::Dtype::kFP16 : cuda::Dtype::kFP32;
    p.q = in.q.data_ptr();
    p.k = in.k.data_ptr();
    p.v = in.v.data_ptr();
    p.beta = beta.defined() ? beta.data_ptr<float>() : nullptr;
    p.g = g.defined() ? g.data_ptr<float>() : nullptr;
    p.state = state.data_ptr<float>();
    p.o = out.data_ptr();
    p.B = shape.B;
    p.T = shape.T;
    p.H = shape.H;
    p.K = shape.K;
    p.V = shape.V;
    p.scale = static_cast<float>(scale.value_or(1.0 / std::sqrt(static_cast<double>(shape.K))));
    cuda::recurrent_decode(p, at::cuda::getCurrentCUDAStream().stream());
    return out;
  }
#endif
  // The reference: the per-step definition, then the state copied back in place.
  options.mode = Mode::kRecurrent;
  options.output_final_state = true;
  SequenceInputs ref = in;
  if (family == Family::kDeltaRule) ref.g = at::Tensor();
  const auto result = run_family(family, ref, options);
  state.copy_(result.final_state);
  if (out.defined()) {
    out.copy_(result.o);
    return out;
  }
  return result.o;
}

}  // namespace deltabench
