#include "sweep/record_json.h"

#include "train/json_number.h"

#include <fmt/core.h>

#include <fstream>
#include <sstream>
#include <utility>

namespace deltabench::sweep {

using train::json_number;
nlohmann::ordered_json run_json(const RunRecord& r) {
  return {{"suite", r.suite}, {"hash", r.hash}, {"id", r.id}, {"task", r.task}, {"model", r.model},
          {"d_model", r.d_model}, {"lr", json_number(r.lr)}, {"weight_decay", json_number(r.weight_decay)},
          {"seed", r.seed},
          {"status", r.status}, {"error", r.error}, {"best_accuracy", json_number(r.best_accuracy)},
          {"final_accuracy", json_number(r.final_accuracy)}, {"best_epoch", r.best_epoch}, {"epochs", r.epochs},
          {"steps", r.steps}, {"diverged_step", r.diverged_step}, {"parameters", r.parameters},
          {"wall_s", json_number(r.wall_s)}, {"tokens_per_s", json_number(r.tokens_per_s)}, {"device", r.device},
          {"gpu_name", r.gpu_name}, {"threads", r.threads}, {"backend_train_forward", r.backend_train_forward},
          {"backend_train_backward", r.backend_train_backward}, {"backend_eval_forward", r.backend_eval_forward},
          {"train_step", r.train_step}, {"backend_pieces", r.backend_pieces}, {"git_commit", r.git_commit}, {"versions", r.versions},
          {"finished_at", r.finished_at}, {"config", r.config}};
}

namespace {

// An epoch's own fields (inside its run's "epochs_history").
nlohmann::ordered_json epoch_fields(const train::EpochMetrics& e) {
  return {{"epoch", e.epoch},
          {"steps", e.steps},
          {"lr", json_number(e.lr)},
          {"train_loss", json_number(e.train_loss)},
          {"test_loss", json_number(e.test_loss)},
          {"accuracy", json_number(e.accuracy)},
          {"mqar_accuracy", json_number(e.mqar_accuracy)},
          {"micro_accuracy", json_number(e.micro_accuracy)},
          {"mad_accuracy", json_number(e.mad_accuracy)},
          {"wall_s", json_number(e.wall_s)}};
}

}  // namespace

nlohmann::ordered_json epoch_json(const RunRecord& r, const train::EpochMetrics& e) {
  nlohmann::ordered_json j = {{"suite", r.suite}, {"hash", r.hash}, {"id", r.id}};
  const auto fields = epoch_fields(e);  // named: a range-for over a temporary's items() would dangle
  for (const auto& [key, value] : fields.items()) j[key] = value;
  return j;
}

nlohmann::ordered_json run_json_with_history(const RunRecord& r) {
  auto j = run_json(r);
  nlohmann::ordered_json epochs = nlohmann::ordered_json::array();
  for (const auto& e : r.history) epochs.push_back(epoch_fields(e));
  j["epochs_history"] = std::move(epochs);
  return j;
}

namespace {

// The runs of `suite` in the export at `path`, or of every suite where `suite` is null, keyed by (suite, hash).
std::map<std::pair<std::string, std::string>, RunRecord> read_export(const std::string& path, const std::string* suite) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw StoreError(path + ": cannot read the runs export");
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json all;
  try {
    all = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::parse_error& e) {
    throw StoreError(path + ": not JSON (" + e.what() + ")");
  }
  if (!all.is_array()) throw StoreError(path + ": expected an array of runs (deltabench runs export --format json)");
  std::map<std::pair<std::string, std::string>, RunRecord> out;
  for (size_t i = 0; i < all.size(); ++i) {
    const auto& j = all[i];
    std::string key;  // the field being read, for the error
    try {
      const auto text_of = [&](const char* k) { return key = k, j.at(k).get<std::string>(); };
      const auto int_of = [&](const char* k) { return key = k, j.at(k).get<int64_t>(); };
      const auto real_of = [&](const nlohmann::json& from, const char* k) {
        key = k;
        return train::number_from_json(from.at(k));
      };
      RunRecord r;
      r.suite = text_of("suite");
      if (suite != nullptr && r.suite != *suite) continue;
      r.hash = text_of("hash"), r.id = text_of("id"), r.task = text_of("task"), r.model = text_of("model");
      r.d_model = int_of("d_model"), r.lr = real_of(j, "lr"), r.weight_decay = real_of(j, "weight_decay");
      r.seed = int_of("seed"), r.status = text_of("status"), r.error = text_of("error");
      r.best_accuracy = real_of(j, "best_accuracy"), r.final_accuracy = real_of(j, "final_accuracy");
      r.best_epoch = int_of("best_epoch"), r.epochs = int_of("epochs"), r.steps = int_of("steps");
      r.diverged_step = int_of("diverged_step"), r.parameters = int_of("parameters");
      r.wall_s = real_of(j, "wall_s"), r.tokens_per_s = real_of(j, "tokens_per_s");
      r.device = text_of("device"), r.gpu_name = text_of("gpu_name"), r.threads = int_of("threads");
      r.backend_train_forward = text_of("backend_train_forward");
      r.backend_train_backward = text_of("backend_train_backward");
      r.backend_eval_forward = text_of("backend_eval_forward");
      // Absent from exports written before the pieces were recorded: "" (not recorded), as in the store.
      r.backend_pieces = j.contains("backend_pieces") ? text_of("backend_pieces") : std::string();
      r.train_step = text_of("train_step"), r.git_commit = text_of("git_commit"), r.versions = text_of("versions");
      r.finished_at = text_of("finished_at"), r.config = text_of("config");
      key = "epochs_history";
      for (const auto& e : j.at("epochs_history")) {
        train::EpochMetrics m;
        key = "epochs_history: epoch", m.epoch = e.at("epoch").get<int64_t>();
        key = "epochs_history: steps", m.steps = e.at("steps").get<int64_t>();
        m.lr = real_of(e, "lr"), m.train_loss = real_of(e, "train_loss"), m.test_loss = real_of(e, "test_loss");
        m.accuracy = real_of(e, "accuracy"), m.mqar_accuracy = real_of(e, "mqar_accuracy");
        m.micro_accuracy = real_of(e, "micro_accuracy"), m.mad_accuracy = real_of(e, "mad_accuracy");
        m.wall_s = real_of(e, "wall_s");
        r.history.push_back(m);
      }
      if (!out.emplace(std::make_pair(r.suite, r.hash), r).second) {
        throw StoreError(fmt::format("{}: run {} ({} of suite {}) is there twice", path, i + 1, r.hash, r.suite));
      }
    } catch (const nlohmann::json::exception& e) {
      throw StoreError(fmt::format("{}: run {}: field {}: {}", path, i + 1, key, e.what()));
    }
  }
  return out;
}

}  // namespace

std::map<std::string, RunRecord> read_runs_json(const std::string& path, const std::string& suite) {
  std::map<std::string, RunRecord> out;
  for (auto& [key, record] : read_export(path, &suite)) out.emplace(key.second, std::move(record));
  return out;
}

std::map<std::pair<std::string, std::string>, RunRecord> read_all_runs_json(const std::string& path) {
  return read_export(path, nullptr);
}

}  // namespace deltabench::sweep
