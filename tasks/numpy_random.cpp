#include "tasks/numpy_random.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>

namespace deltabench::tasks {

double LegacyRandomState::random_sample() {
  const int64_t a = next_uint32() >> 5;
  const int64_t b = next_uint32() >> 6;
  return (static_cast<double>(a) * 67108864.0 + static_cast<double>(b)) / 9007199254740992.0;
}

uint64_t LegacyRandomState::random_interval(uint64_t max) {
  if (max == 0) return 0;
  uint64_t mask = max;  // smallest all-ones mask >= max
  mask |= mask >> 1;
  mask |= mask >> 2;
  mask |= mask >> 4;
  mask |= mask >> 8;
  mask |= mask >> 16;
  mask |= mask >> 32;
  uint64_t value;
  if (max <= 0xffffffffULL) {
    while ((value = (next_uint32() & mask)) > max) {
    }
  } else {
    // numpy's next_uint64 for MT19937: two 32-bit draws, high word first.
    while ((value = (((static_cast<uint64_t>(next_uint32()) << 32) | next_uint32()) & mask)) > max) {
    }
  }
  return value;
}

std::vector<int64_t> LegacyRandomState::permutation(int64_t n) {
  std::vector<int64_t> out(n);
  std::iota(out.begin(), out.end(), 0);
  for (int64_t i = n - 1; i >= 1; --i) {
    const auto j = static_cast<int64_t>(random_interval(static_cast<uint64_t>(i)));
    std::swap(out[i], out[j]);
  }
  return out;
}

std::vector<int64_t> LegacyRandomState::choice_without_replacement(int64_t n, int64_t size) {
  if (size > n) {
    throw std::invalid_argument("choice: size " + std::to_string(size) + " > population " + std::to_string(n));
  }
  auto out = permutation(n);
  out.resize(size);
  return out;
}

std::vector<int64_t> LegacyRandomState::weighted_choice_without_replacement(std::span<const double> p_in,
                                                                            int64_t size) {
  const auto n = static_cast<int64_t>(p_in.size());
  const auto nonzero = std::count_if(p_in.begin(), p_in.end(), [](double x) { return x > 0; });
  if (nonzero < size) {
    throw std::invalid_argument("choice: fewer non-zero entries in p (" + std::to_string(nonzero) +
                                ") than size (" + std::to_string(size) + ")");
  }
  std::vector<double> p(p_in.begin(), p_in.end()), cdf(n), x;
  std::vector<int64_t> found;
  found.reserve(size);
  std::vector<char> seen(n);
  while (static_cast<int64_t>(found.size()) < size) {
    x.resize(size - found.size());
    for (double& xi : x) xi = random_sample();  // drawn before the weights are updated, as numpy does
    for (const int64_t f : found) p[f] = 0.0;
    std::partial_sum(p.begin(), p.end(), cdf.begin());  // np.cumsum: a plain running sum
    const double total = cdf.back();
    for (double& c : cdf) c /= total;
    // searchsorted(side='right'), then the unique values in order of first occurrence. Items found
    // earlier have weight 0 now and cannot come up again.
    std::fill(seen.begin(), seen.end(), 0);
    std::vector<int64_t> fresh;
    for (const double xi : x) {
      const auto idx = static_cast<int64_t>(std::upper_bound(cdf.begin(), cdf.end(), xi) - cdf.begin());
      if (!seen[idx]) {
        seen[idx] = 1;
        fresh.push_back(idx);
      }
    }
    found.insert(found.end(), fresh.begin(), fresh.end());
  }
  return found;
}

double numpy_pairwise_sum(std::span<const double> a) {
  const auto n = static_cast<int64_t>(a.size());
  constexpr int64_t kBlock = 128;
  if (n < 8) {
    double res = 0.0;
    for (int64_t i = 0; i < n; ++i) res += a[i];
    return res;
  }
  if (n <= kBlock) {
    double r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    int64_t i = 8;
    for (; i < n - (n % 8); i += 8) {
      for (int j = 0; j < 8; ++j) r[j] += a[i + j];
    }
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  int64_t n2 = n / 2;
  n2 -= n2 % 8;
  return numpy_pairwise_sum(a.subspan(0, n2)) + numpy_pairwise_sum(a.subspan(n2));
}

}  // namespace deltabench::tasks
