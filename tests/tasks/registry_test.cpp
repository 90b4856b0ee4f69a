// Tests tasks/registry.cpp: every task generates by name, and unknown names are clear errors.

#include "tasks/registry.h"
#include "tests/support/catch.h"

#include <ATen/ATen.h>

using namespace deltabench::tasks;

TEST_CASE("registry: every task by name", "[registry]") {
  CHECK(task_infos().size() == 7);
  for (const auto& info : task_infos()) {
    INFO(info.name);
    std::map<std::string, std::string> params;
    if (info.name == "mqar") {
      params = {{"num_examples", "5"}, {"random_non_queries", "off"}};
    } else {
      params = {{"num_train_examples", "3"}, {"num_test_examples", "5"}};
    }
    const auto data = generate_task(info.name, params, Split::kTest, 1);
    CHECK(data.inputs.size(0) == 5);
    CHECK(data.inputs.sizes() == data.targets.sizes());
    CHECK((data.targets != kIgnoreIndex).any().item<bool>());
    CHECK(data.metric == (info.name == "mqar" ? Metric::kMqarAccuracy : Metric::kMadAccuracy));
  }
  try {
    find_task("mqar2");
    FAIL("no error");
  } catch (const TaskError& e) {
    CHECK(std::string(e.what()).find("unknown task 'mqar2' (known: mqar, in-context-recall,") == 0);
  }
  CHECK_THROWS_AS(generate_task("mqar", {{"random_non_queries", "maybe"}}, Split::kTrain, 0), TaskError);
}
