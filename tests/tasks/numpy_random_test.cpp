// Tests tasks/numpy_random.cpp against numbers numpy printed. Each expected value below came from
// the numpy call in its comment (numpy 2.4.6, .venv/bin/python); the MQAR fixtures test the rest.

#include "tasks/numpy_random.h"
#include "tests/support/catch.h"

#include <numeric>
#include <vector>

using deltabench::tasks::LegacyRandomState;
using deltabench::tasks::numpy_pairwise_sum;

TEST_CASE("numpy RandomState: random_sample", "[numpy_random]") {
  LegacyRandomState rs(0);  // np.random.RandomState(0).random_sample(), twice
  CHECK(rs.random_sample() == 0.5488135039273248);
  CHECK(rs.random_sample() == 0.7151893663724195);
}

TEST_CASE("numpy RandomState: permutation and choice", "[numpy_random]") {
  LegacyRandomState a(0);  // np.random.RandomState(0).permutation(10)
  CHECK(a.permutation(10) == std::vector<int64_t>{2, 8, 4, 9, 1, 6, 7, 3, 0, 5});
  LegacyRandomState b(42);  // np.random.RandomState(42).choice(100, size=5, replace=False)
  CHECK(b.choice_without_replacement(100, 5) == std::vector<int64_t>{83, 53, 70, 45, 44});
}

TEST_CASE("numpy RandomState: weighted choice without replacement", "[numpy_random]") {
  // p = arange(1, 11) ** -0.5; p /= p.sum(); RandomState(7).choice(10, size=6, replace=False, p=p)
  std::vector<double> p(10);
  for (int i = 0; i < 10; ++i) p[i] = std::pow(static_cast<double>(i + 1), -0.5);
  const double total = numpy_pairwise_sum(p);
  for (double& x : p) x /= total;
  LegacyRandomState rs(7);
  CHECK(rs.weighted_choice_without_replacement(p, 6) == std::vector<int64_t>{0, 6, 2, 5, 9, 3});
}

TEST_CASE("numpy pairwise sum rounds as np.sum does", "[numpy_random]") {
  // x = RandomState(3).random_sample(1000): x.sum() = 504.9401769907854, a plain loop gives ...535.
  LegacyRandomState rs(3);
  std::vector<double> x(1000);
  for (double& v : x) v = rs.random_sample();
  CHECK(numpy_pairwise_sum(x) == 504.9401769907854);
  CHECK(std::accumulate(x.begin(), x.end(), 0.0) == 504.94017699078535);
}
