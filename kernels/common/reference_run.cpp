#include "kernels/common/reference_run.h"

#include "kernels/common/packing.h"

#include <ATen/ATen.h>

#include <cmath>

namespace deltabench::detail {

SequenceOutput run_reference(const SequenceShape& shape, const at::Tensor& q, const at::Tensor& k,
                             const at::Tensor& v, const at::Tensor& beta, const at::Tensor& g,
                             const SequenceOptions& options, reference::Fn recurrent,
                             reference::Fn chunk) {
  const auto dtype = compute_dtype(q.scalar_type());
  const bool chunked = options.mode == Mode::kChunk;
  const int64_t Tp = padded_length(shape, chunked ? options.chunk_size : 1);
  const auto pack = [&](const at::Tensor& x) {
    return x.defined() ? pack_sequences(x.to(dtype), shape, Tp) : at::Tensor();
  };

  reference::PackedInputs in;
  in.q = pack(q);
  in.k = pack(k);
  in.v = pack(v);
  in.beta = pack(beta);
  in.g = pack(g);
  in.h0 = options.initial_state.defined()
              ? options.initial_state.to(dtype)
              : at::zeros({shape.N, shape.H, shape.K, shape.V}, in.q.options());
  in.zero_h0 = !options.initial_state.defined();
  in.final_state = options.output_final_state;
  in.scale = options.scale.value_or(1.0 / std::sqrt(static_cast<double>(shape.K)));
  in.chunk_size = options.chunk_size;

  auto [o, state] = (chunked ? chunk : recurrent)(in);
  SequenceOutput out;
  out.o = unpack_sequences(o, shape).to(v.scalar_type());
  if (options.output_final_state) out.final_state = state;
  return out;
}

}  // namespace deltabench::detail
