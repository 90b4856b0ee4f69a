#pragma once
// numpy's legacy RandomState (MT19937), reproduced draw for draw for the calls Zoology's MQAR
// generator makes: np.random.seed(int), random_sample, permutation(n) and choice(n, size,
// replace=False) with and without p. Same seed and calls, same numbers as numpy.

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace deltabench::tasks {

class LegacyRandomState {
 public:
  // np.random.seed(seed) for an integer seed in [0, 2^32): MT19937's init_genrand, which is also
  // what std::mt19937's single-value constructor does.
  explicit LegacyRandomState(uint32_t seed) : mt_(seed) {}

  uint32_t next_uint32() { return static_cast<uint32_t>(mt_()); }

  // random_sample(): 53 random bits from two 32-bit draws (a >> 5, b >> 6).
  double random_sample();

  // A uniform integer in [0, max] by masked rejection (numpy's random_interval).
  uint64_t random_interval(uint64_t max);

  // permutation(n): arange(n) shuffled by Fisher-Yates from the back.
  std::vector<int64_t> permutation(int64_t n);

  // choice(n, size, replace=False) with p=None: permutation(n)[:size].
  std::vector<int64_t> choice_without_replacement(int64_t n, int64_t size);

  // choice(len(p), size, replace=False, p=p): numpy's loop of weighted draws that keeps
  // first-occurrence uniques and zeroes the weights of items already found.
  std::vector<int64_t> weighted_choice_without_replacement(std::span<const double> p, int64_t size);

 private:
  std::mt19937 mt_;
};

// np.sum of a float64 vector: numpy's pairwise summation (blocks of 128, 8 accumulators), which
// rounds differently from a plain loop.
double numpy_pairwise_sum(std::span<const double> x);

}  // namespace deltabench::tasks
