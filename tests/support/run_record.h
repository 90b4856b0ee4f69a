#pragma once
// A stored run for the store's tests (tests/sweep/store_test.cpp, merge_test.cpp): suite "s", run `hash`,
// completed at `accuracy` after `epochs` epochs (the second epoch's train loss NaN, as a diverged
// epoch's reads back).

#include "sweep/store.h"

#include <cmath>
#include <string>

namespace deltabench::testing {

inline sweep::RunRecord make_record(const std::string& hash, double accuracy, int epochs = 2) {
  sweep::RunRecord r;
  r.suite = "s";
  r.hash = hash;
  r.id = "task/model/d16/lr0.001/wd0/s1";
  r.task = "task";
  r.model = "model";
  r.d_model = 16;
  r.lr = 1e-3;
  r.seed = 1;
  r.config = "seed = 1\n";
  r.status = "completed";
  r.final_accuracy = accuracy;
  r.best_accuracy = accuracy;
  r.epochs = epochs;
  r.device = "cpu";
  r.git_commit = "abc";
  r.versions = "v";
  r.finished_at = "2026-11-23T00:00:00Z";
  for (int e = 1; e <= epochs; ++e) {
    train::EpochMetrics m;
    m.epoch = e;
    m.steps = 10 * e;
    m.train_loss = e == 2 ? std::nan("") : 1.5;
    m.accuracy = accuracy;
    r.history.push_back(m);
  }
  return r;
}

}  // namespace deltabench::testing
