// Tests kernels/common/segments.cpp on the CPU: the split, the cost model's choices, and the identity
// the segment-parallel pass rests on, with the fp64 reference ops standing in for the kernel: end
// states from zero, transitions from identity columns with v = 0, the joined start states, and then
// every segment from its start state give the whole sequence's output and final state.

#include "kernels/common/segments.h"
#include "kernels/family.h"
#include "tests/support/catch.h"
#include "tests/support/sequence_checks.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <functional>
#include <string>

using namespace deltabench;

namespace {

// Whether `call` throws a c10::Error whose message contains `fragment`.
bool throws_with(const std::function<void()>& call, const std::string& fragment) {
  try {
    call();
  } catch (const c10::Error& e) {
    return std::string(e.what_without_backtrace()).find(fragment) != std::string::npos;
  }
  return false;
}

}  // namespace

TEST_CASE("split_sequences cuts each sequence into whole chunks, the last segment shorter", "[segments]") {
  const auto s = split_sequences({0, 1, 129, 129, 257}, 64);
  CHECK(s.starts == std::vector<int64_t>{0, 1, 65, 129, 129, 193, 257});
  CHECK(s.sequence == std::vector<int64_t>{0, 1, 1, 2, 3, 3});
  CHECK(s.position == std::vector<int64_t>{0, 0, 1, 0, 0, 1});
  CHECK(s.last == std::vector<int64_t>{0, 2, 3, 5});
  CHECK(s.max_segments == 2);
  CHECK(throws_with([&] { split_sequences({0, 10}, 100); }, "positive multiple of 64, got 100"));
  CHECK(throws_with([&] { split_sequences({0, 10, 5}, 64); }, "must not decrease, got 10 then 5"));
}

TEST_CASE("choose_segment_length splits only where few heads walk long sequences", "[segments]") {
  const int64_t sms = 132;
  // B = 1, T = 32K, H = 16: 16 blocks for 132 SMs; 8 segments of 4K fill them.
  CHECK(choose_segment_length({0, 32768}, 16, 1, sms) == 4096);
  // The sm_90a passes' blocks (H V / 64 = 32 at H 16, V 128) one an SM: 4 segments of 8K; two an SM, as they
  // run (kernels/common/sm90/forward.cpp's plan_segments): 8 of 4K.
  CHECK(choose_segment_length({0, 32768}, 32, 1, sms) == 8192);
  CHECK(choose_segment_length({0, 32768}, 32, 1, 2 * sms) == 4096);
  // The chunked training pair's walks (kernels/common/chunk_state.cu) slice V into 16 columns where blocks are
  // few, 128 at H 16, V 128, two to an SM: whole rows cost 512 chunk steps, two segments 615.
  CHECK(choose_segment_length({0, 32768}, 16 * 128 / 16, 1, 2 * sms) == 0);
  // 16 x 2K and 4 x 8K already fill the GPU.
  std::vector<int64_t> batch16 = {0}, batch4 = {0};
  for (int b = 0; b < 16; ++b) batch16.push_back(batch16.back() + 2048);
  for (int b = 0; b < 4; ++b) batch4.push_back(batch4.back() + 8192);
  CHECK(choose_segment_length(batch16, 16, 1, sms) == 0);
  CHECK(choose_segment_length(batch4, 16, 1, sms) == 0);
  CHECK(choose_segment_length(batch16, 32, 1, 2 * sms) == 0);
  CHECK(choose_segment_length(batch4, 32, 1, 2 * sms) == 0);
  // 8 x 4K at H = 8 (64 blocks): two waves of step 1 cost more than the idle half of the GPU.
  std::vector<int64_t> batch8 = {0};
  for (int b = 0; b < 8; ++b) batch8.push_back(batch8.back() + 4096);
  CHECK(choose_segment_length(batch8, 8, 1, sms) == 0);
  // Two blocks an SM (the training op's count, sm90 forward.cpp's model_segment_length) split them in four:
  // quicker for forward + backward, slower for the forward alone, which counts one (version 3q).
  CHECK(choose_segment_length(batch8, 8, 1, 2 * sms) == 1024);
  // K = 128, V = 64 has two transition slices: step 1 runs three blocks a segment and head.
  CHECK(choose_segment_length({0, 32768}, 16, 2, sms) > 0);
  CHECK(choose_segment_length({0, 64}, 1, 1, sms) == 0);  // one chunk: nothing to split
  CHECK(throws_with([&] { choose_segment_length({0, 64}, 0, 1, sms); }, "got 0, 132, 1"));
}

TEST_CASE("segment_start_states rejects shapes that do not match the segments", "[segments]") {
  const auto s = split_sequences({0, 128}, 64);
  CHECK(throws_with([&] { segment_start_states(s, at::zeros({2, 1, 4, 4}), at::zeros({3, 1, 4, 5}), {}); },
                    "local must be [2, H, K, V] (one per segment), got [3, 1, 4, 5]"));
  CHECK(throws_with([&] { segment_start_states(s, at::zeros({2, 1, 4, 5}), at::zeros({2, 1, 4, 5}), {}); },
                    "transitions must be [2, 1, 4, 4], got [2, 1, 4, 5]"));
}

TEST_CASE("segments joined by their transitions give the whole sequences' output and state", "[segments]") {
  // Two sequences (100 and 200 tokens) in one packed batch, segments of 64 tokens, K != V.
  const int64_t H = 2, K = 8, V = 6;
  const std::vector<int64_t> seq_starts = {0, 100, 300};
  const auto segments = split_sequences(seq_starts, 64);
  const int64_t S = static_cast<int64_t>(segments.sequence.size());
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  const auto offsets = [](const std::vector<int64_t>& x) {
    return at::tensor(x, at::TensorOptions().dtype(at::kLong));
  };
  for (const auto family : {Family::kLinearAttention, Family::kDeltaRule, Family::kGatedDeltaRule}) {
    const auto in = sample_inputs(family, SampleShape{1, 300, H, K, V}, f64, 21, /*decay=*/true);
    const auto h0 = at::randn({2, H, K, V}, f64) * 0.1;
    const auto run = [&](const SequenceInputs& x, const at::Tensor& cu, const at::Tensor& initial) {
      SequenceOptions o;
      o.mode = Mode::kRecurrent;
      o.cu_seqlens = cu;
      o.initial_state = initial;
      o.output_final_state = true;
      return run_family(family, x, o);
    };
    const auto whole = run(in, offsets(seq_starts), h0);

    const auto local = run(in, offsets(segments.starts), {}).final_state;
    SequenceInputs zero_v = in;
    zero_v.v = at::zeros({1, 300, H, K}, f64);
    const auto identity = at::eye(K, f64).expand({S, H, K, K}).contiguous();
    const auto transitions = run(zero_v, offsets(segments.starts), identity).final_state;
    const auto starts = segment_start_states(segments, transitions, local, h0);
    const auto pieces = run(in, offsets(segments.starts), starts);

    INFO(family_name(family));
    CHECK(testing::rel_rms(pieces.o, whole.o) <= 1e-12);
    CHECK(testing::rel_rms(pieces.final_state.index_select(0, offsets(segments.last)), whole.final_state) <= 1e-12);
    // Without h0 the first segments start from zero.
    const auto from_zero = run(in, offsets(seq_starts), {});
    const auto pieces0 = run(in, offsets(segments.starts), segment_start_states(segments, transitions, local, {}));
    CHECK(testing::rel_rms(pieces0.o, from_zero.o) <= 1e-12);
  }
}

TEST_CASE("segments counted backwards join a backward walk: each segment's end gradient, the sequences' start",
          "[segments]") {
  // A walk from each sequence's end to its start, dS <- A_t dS + b_t for every token t (the backward state pass
  // has this form a chunk), over two sequences of 100 and 200 tokens and an empty one, in segments of 64.
  const int64_t H = 2, K = 5, V = 3;
  const std::vector<int64_t> seq_starts = {0, 100, 100, 300};
  const int64_t N = 3, T = 300;
  const auto segments = split_sequences(seq_starts, 64);
  const auto back = backwards(segments);
  CHECK(back.position == std::vector<int64_t>{1, 0, 0, 3, 2, 1, 0});
  CHECK(back.last == std::vector<int64_t>{0, 2, 3});
  CHECK(back.sequence == segments.sequence);
  CHECK(back.starts == segments.starts);
  const int64_t S = static_cast<int64_t>(segments.sequence.size());
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  at::manual_seed(3);
  const auto A = at::eye(K, f64) * 0.9 + at::randn({T, H, K, K}, f64) * 0.05, b = at::randn({T, H, K, V}, f64);
  const auto dht = at::randn({N, H, K, V}, f64);
  // From `end` (per head [H, K, V]) over tokens [begin, stop) backwards; the gradient at `begin`.
  const auto walk = [&](at::Tensor d, int64_t begin, int64_t stop, bool affine) {
    for (int64_t t = stop - 1; t >= begin; --t) d = affine ? at::matmul(A[t], d) + b[t] : at::matmul(A[t], d);
    return d;
  };
  std::vector<at::Tensor> M, L;
  for (int64_t s = 0; s < S; ++s) {
    M.push_back(walk(at::eye(K, f64).expand({H, K, K}), segments.starts[s], segments.starts[s + 1], false));
    L.push_back(walk(at::zeros({H, K, V}, f64), segments.starts[s], segments.starts[s + 1], true));
  }
  for (const bool with_dht : {true, false}) {
    const auto ends = segment_start_states(back, at::stack(M), at::stack(L), with_dht ? dht : at::Tensor());
    INFO((with_dht ? "with" : "without") << " the final states' gradient");
    for (int64_t s = 0; s < S; ++s) {
      const int64_t n = segments.sequence[s];
      const auto from_end = with_dht ? dht[n] : at::zeros({H, K, V}, f64);
      // A segment's end gradient is the whole walk's at that token, and its start from there the whole walk's.
      const auto want_end = walk(from_end, segments.starts[s + 1], seq_starts[n + 1], true);
      CHECK(testing::rel_rms(ends[s], want_end) <= 1e-12);
      const auto start = walk(ends[s], segments.starts[s], segments.starts[s + 1], true);
      CHECK(testing::rel_rms(start, walk(from_end, segments.starts[s], seq_starts[n + 1], true)) <= 1e-12);
      if (s == back.last[n] && seq_starts[n + 1] > seq_starts[n]) {
        CHECK(testing::rel_rms(start, walk(from_end, seq_starts[n], seq_starts[n + 1], true)) <= 1e-12);
      }
    }
  }
}
