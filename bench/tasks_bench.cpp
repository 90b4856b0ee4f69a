// Generation speed of the synthetic tasks, in examples/s: MQAR at Zoology's figure-2 sizes and each
// MAD task at its baseline.
//
//   build/bench/tasks_bench

#include "tasks/mad.h"
#include "tasks/mqar.h"

#include <benchmark/benchmark.h>

#include <map>
#include <string>

namespace {

using namespace deltabench::tasks;

// Args: seq_len, num_kv_pairs. Vocabulary 8192 and no random fill, as in Zoology's figure 2.
void BM_mqar(benchmark::State& state) {
  MqarParams p;
  p.seq_len = state.range(0);
  p.num_kv_pairs = state.range(1);
  p.num_examples = 2000;
  p.random_non_queries = false;
  uint64_t seed = 0;
  for (auto _ : state) benchmark::DoNotOptimize(make_mqar(p, seed++).inputs);
  state.counters["examples/s"] =
      benchmark::Counter(static_cast<double>(p.num_examples), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_mqar)->Args({64, 4})->Args({128, 8})->Args({256, 16})->Args({512, 64})->Unit(benchmark::kMillisecond);

void BM_mad(benchmark::State& state) {
  const auto task = static_cast<MadTask>(state.range(0));
  const std::map<std::string, std::string> none;
  auto p = mad_params(task, Params(std::string(mad_task_name(task)), mad_param_specs(task), none));
  p.num_train_examples = 2000;
  p.num_test_examples = 1;
  uint64_t seed = 0;
  for (auto _ : state) benchmark::DoNotOptimize(make_mad(p, seed++).train.inputs);
  state.SetLabel(std::string(mad_task_name(task)));
  state.counters["examples/s"] =
      benchmark::Counter(static_cast<double>(p.num_train_examples + 1), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_mad)->DenseRange(0, 5)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
