#pragma once
// Multi-query associative recall, exactly as Zoology's multiquery_ar generates it (semantics and the
// quirks that matter: ../shared/reference/tasks.md, section 1). With random_non_queries off the data
// is bit-identical to Zoology's for the same seed and parameters (tests/tasks/mqar_test.cpp checks
// numpy fixtures).

#include "tasks/params.h"
#include "tasks/task.h"

#include <cstdint>
#include <vector>

namespace deltabench::tasks {

struct MqarParams {
  int64_t vocab_size = 8192;
  int64_t seq_len = 64;       // Zoology's input_seq_len
  int64_t num_kv_pairs = 8;
  int64_t num_examples = 1000;
  double power_a = 0.01;      // query gaps ~ i^(power_a - 1)
  bool random_non_queries = true;
};

// The parameter list (names, defaults, help) that `deltabench tasks` and config files use.
const std::vector<ParamSpec>& mqar_param_specs();
MqarParams mqar_params(const Params& params);

// Throws TaskError naming the parameter, e.g. "num_kv_pairs * 4 must be <= seq_len (got 64 * 4 > 128)".
void validate(const MqarParams& params);

// Zoology's multiquery_ar(..., seed=seed). `seed` must be in [0, 2^32) as numpy's. The
// random_non_queries fill draws from a torch CPU generator seeded with `seed` (Zoology uses torch's
// global generator after model initialisation, which no data seed can reproduce).
TaskData make_mqar(const MqarParams& params, uint64_t seed);

}  // namespace deltabench::tasks
