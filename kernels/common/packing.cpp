#include "kernels/common/packing.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <vector>

namespace deltabench::detail {
namespace {

// Pads dim 1 of x ([rows, len, ...]) with zeros to `target`.
at::Tensor pad_time(const at::Tensor& x, int64_t target) {
  const int64_t extra = target - x.size(1);
  if (extra == 0) return x;
  std::vector<int64_t> pad(2 * (x.dim() - 1), 0);  // pairs from the last dim backwards
  pad[pad.size() - 1] = extra;                      // right side of dim 1
  return at::constant_pad_nd(x, pad, 0.0);
}

}  // namespace

int64_t padded_length(const SequenceShape& shape, int64_t multiple) {
  int64_t longest = 0;
  for (size_t i = 1; i < shape.seq_starts.size(); ++i) {
    longest = std::max(longest, shape.seq_starts[i] - shape.seq_starts[i - 1]);
  }
  return (longest + multiple - 1) / multiple * multiple;
}

at::Tensor pack_sequences(const at::Tensor& x, const SequenceShape& shape, int64_t padded_len) {
  if (shape.N == shape.B) return pad_time(x, padded_len);  // batch rows: only pad the end
  std::vector<at::Tensor> rows;
  rows.reserve(shape.N);
  for (int64_t i = 0; i < shape.N; ++i) {
    const int64_t bos = shape.seq_starts[i], eos = shape.seq_starts[i + 1];
    rows.push_back(pad_time(x.slice(1, bos, eos), padded_len).squeeze(0));
  }
  return at::stack(rows, 0);
}

at::Tensor unpack_sequences(const at::Tensor& x, const SequenceShape& shape) {
  if (shape.N == shape.B) return x.slice(1, 0, shape.T);
  std::vector<at::Tensor> segments;
  segments.reserve(shape.N);
  for (int64_t i = 0; i < shape.N; ++i) {
    segments.push_back(x.select(0, i).slice(0, 0, shape.seq_starts[i + 1] - shape.seq_starts[i]));
  }
  return at::cat(segments, 0).unsqueeze(0);
}

}  // namespace deltabench::detail
