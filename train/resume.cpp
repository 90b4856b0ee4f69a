#include "train/resume.h"

#include "train/json_number.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/core/Generator.h>
#include <c10/core/GradMode.h>
#include <nlohmann/json.hpp>
#include <torch/serialize.h>

#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace deltabench::train {
namespace {

constexpr int kFormat = 1;  // the layout of state.pt; another is not read

// The model's tensors in a fixed order: parameters, then buffers.
std::vector<at::Tensor> model_tensors(models::LanguageModel& model) {
  std::vector<at::Tensor> out = model->parameters();
  for (const auto& b : model->buffers()) out.push_back(b);
  return out;
}

// The generators whose state decides a run's random draws: the CPU's, and the device's on CUDA (dropout).
std::vector<at::Generator> generators(const at::Device& device) {
  std::vector<at::Generator> out{at::globalContext().defaultGenerator(at::kCPU)};
  if (device.is_cuda()) out.push_back(at::globalContext().defaultGenerator(device));
  return out;
}


nlohmann::json counts_json(const BackendCounts& c) {
  return {c.reference, c.reference_with_grad, c.kernel, c.kernel_with_grad};
}
BackendCounts counts_of(const nlohmann::json& j) {
  return {j.at(0).get<int64_t>(), j.at(1).get<int64_t>(), j.at(2).get<int64_t>(), j.at(3).get<int64_t>()};
}

// [piece][form] as nested arrays (models/pieces.h's order).
nlohmann::json pieces_json(const models::PieceCounts& c) { return c.calls; }
models::PieceCounts pieces_of(const nlohmann::json& j) {
  models::PieceCounts c;
  for (size_t p = 0; p < c.calls.size(); ++p) {
    for (size_t f = 0; f < c.calls[p].size(); ++f) c.calls[p][f] = j.at(p).at(f).get<int64_t>();
  }
  return c;
}

// "cuda" or "cpu": the generators saved differ (a CUDA run saves its device's too).
std::string device_kind(const at::Device& device) { return device.is_cuda() ? "cuda" : "cpu"; }

nlohmann::json progress_json(const ResumeState& s, const at::Device& device) {
  const RunSummary& r = s.summary;
  nlohmann::json history = nlohmann::json::array();
  for (const auto& m : r.history) {
    history.push_back({m.epoch, m.steps, json_number(m.lr), json_number(m.train_loss), json_number(m.test_loss),
                       json_number(m.accuracy), json_number(m.mqar_accuracy), json_number(m.micro_accuracy),
                       json_number(m.mad_accuracy), json_number(m.wall_s)});
  }
  nlohmann::json losses = nlohmann::json::array();
  for (const double x : r.step_losses) losses.push_back(json_number(x));
  nlohmann::json commits = nlohmann::json::array();
  for (const auto& [epoch, commit] : s.commits) commits.push_back({epoch, commit});
  return {{"format", kFormat},
          {"config_hash", s.config_hash},
          {"commit", s.commit},
          {"commits", commits},
          {"device", device_kind(device)},
          {"total_epochs", s.total_epochs},
          {"epochs_done", s.epochs_done},
          {"tokens", s.tokens},
          {"steps", r.steps},
          {"wall_s", r.wall_s},
          {"best_accuracy", r.best_accuracy},
          {"best_epoch", r.best_epoch},
          {"final_accuracy", r.final_accuracy},
          {"history", history},
          {"step_losses", losses},
          {"train_calls", counts_json(s.train_calls)},
          {"eval_calls", counts_json(s.eval_calls)},
          {"train_pieces", pieces_json(s.train_pieces)}};
}

ResumeState state_of(const nlohmann::json& j) {
  ResumeState s;
  s.config_hash = j.at("config_hash").get<std::string>();
  s.commit = j.at("commit").get<std::string>();
  s.total_epochs = j.at("total_epochs").get<int64_t>();
  s.epochs_done = j.at("epochs_done").get<int64_t>();
  s.tokens = j.at("tokens").get<int64_t>();
  RunSummary& r = s.summary;
  r.status = "completed";
  r.steps = j.at("steps").get<int64_t>();
  r.wall_s = j.at("wall_s").get<double>();
  r.best_accuracy = j.at("best_accuracy").get<double>();
  r.best_epoch = j.at("best_epoch").get<int64_t>();
  r.final_accuracy = j.at("final_accuracy").get<double>();
  for (const auto& h : j.at("history")) {
    EpochMetrics m;
    m.epoch = h.at(0).get<int64_t>();
    m.steps = h.at(1).get<int64_t>();
    m.lr = number_from_json(h.at(2));
    m.train_loss = number_from_json(h.at(3));
    m.test_loss = number_from_json(h.at(4));
    m.accuracy = number_from_json(h.at(5));
    m.mqar_accuracy = number_from_json(h.at(6));
    m.micro_accuracy = number_from_json(h.at(7));
    m.mad_accuracy = number_from_json(h.at(8));
    m.wall_s = number_from_json(h.at(9));
    r.history.push_back(m);
  }
  r.epochs = s.epochs_done;
  for (const auto& x : j.at("step_losses")) r.step_losses.push_back(number_from_json(x));
  s.train_calls = counts_of(j.at("train_calls"));
  s.eval_calls = counts_of(j.at("eval_calls"));
  // Absent from states saved before the pieces were counted: those are of an earlier commit, which
  // load_resume_state refuses below, after reading them, unless asked to take any commit's.
  if (j.contains("train_pieces")) s.train_pieces = pieces_of(j.at("train_pieces"));
  if (j.contains("commits")) {
    for (const auto& c : j.at("commits")) s.commits.emplace_back(c.at(0).get<int64_t>(), c.at(1).get<std::string>());
  }
  if (s.commits.empty()) s.commits.emplace_back(1, s.commit);
  return s;
}

}  // namespace

void save_resume_state(const std::filesystem::path& dir, const ResumeState& state, models::LanguageModel& model,
                       const FusedAdamW& optimizer, const at::Device& device) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw std::runtime_error("cannot create the resume directory " + dir.string() + ": " + ec.message());
  // CPU copies: a state saved on one GPU resumes on another, or on the CPU.
  std::vector<at::Tensor> tensors;
  for (const auto& t : model_tensors(model)) tensors.push_back(t.detach().to(at::kCPU).clone());
  for (const auto& t : optimizer.state()) tensors.push_back(t.to(at::kCPU).clone());
  for (auto& g : generators(device)) {
    std::lock_guard<std::mutex> lock(g.mutex());
    tensors.push_back(g.get_state());
  }
  const std::string json = progress_json(state, device).dump();
  const int64_t json_bytes = static_cast<int64_t>(json.size());
  tensors.push_back(at::from_blob(const_cast<char*>(json.data()), {json_bytes}, at::kByte).clone());
  const auto partial = dir / "state.pt.partial", final_path = dir / "state.pt";
  try {
    torch::save(tensors, partial.string());
  } catch (const c10::Error& e) {
    throw std::runtime_error("cannot write " + partial.string() + ": " + e.what_without_backtrace());
  }
  std::filesystem::rename(partial, final_path, ec);
  if (ec) throw std::runtime_error("cannot rename " + partial.string() + " to state.pt: " + ec.message());
}

std::optional<ResumeState> load_resume_state(const std::filesystem::path& dir, const std::string& config_hash,
                                             int64_t total_epochs, const std::string& commit, bool any_commit,
                                             models::LanguageModel& model, FusedAdamW& optimizer,
                                             const at::Device& device, std::string* why_not) {
  if (why_not) why_not->clear();
  const auto path = dir / "state.pt";
  if (!std::filesystem::exists(path)) return std::nullopt;
  const auto fail = [&](const std::string& what) { return std::runtime_error(path.string() + ": " + what); };
  std::vector<at::Tensor> tensors;
  try {
    torch::load(tensors, path.string());
  } catch (const c10::Error& e) {
    throw fail(std::string("cannot read the resume state: ") + e.what_without_backtrace());
  }
  if (tensors.empty() || tensors.back().scalar_type() != at::kByte) throw fail("no progress record at its end");
  const auto& bytes = tensors.back();
  nlohmann::json j;
  ResumeState state;
  try {
    j = nlohmann::json::parse(std::string(static_cast<const char*>(bytes.data_ptr()), bytes.numel()));
    if (j.at("format").get<int>() != kFormat) {
      throw fail("format " + j.at("format").dump() + ", this build reads " + std::to_string(kFormat));
    }
    state = state_of(j);
  } catch (const nlohmann::json::exception& e) {
    throw fail(std::string("a damaged progress record: ") + e.what());
  }
  const auto refuse = [&](const std::string& why) -> std::optional<ResumeState> {
    if (why_not) *why_not = path.string() + " " + why + ": starting over";
    return std::nullopt;
  };
  if (state.config_hash != config_hash) return refuse("is of config " + state.config_hash + ", not " + config_hash);
  if (state.total_epochs != total_epochs) {
    return refuse("is of a run of " + std::to_string(state.total_epochs) + " epochs, not " +
                  std::to_string(total_epochs));
  }
  if (state.commit != commit && !any_commit) {
    return refuse("was saved at commit " + state.commit + ", this is " + commit +
                  " (run --resume-any-commit takes it)");
  }
  if (const auto saved = j.at("device").get<std::string>(); saved != device_kind(device)) {
    return refuse("was saved by a run on " + saved + ", and this run trains on " + device_kind(device));
  }

  auto model_side = model_tensors(model);
  const auto optimizer_side = optimizer.state();
  auto gens = generators(device);
  const size_t expected = model_side.size() + optimizer_side.size() + gens.size() + 1;
  if (tensors.size() != expected) {
    throw fail("holds " + std::to_string(tensors.size()) + " tensors, this run's model, optimizer and generators " +
               std::to_string(expected));
  }
  size_t i = 0;
  {
    at::NoGradGuard no_grad;
    for (auto& t : model_side) {
      if (tensors[i].sizes() != t.sizes()) {
        throw fail(c10::str("model tensor ", i, " has shape ", tensors[i].sizes(), ", the model's is ", t.sizes()));
      }
      t.copy_(tensors[i++]);
    }
  }
  std::vector<at::Tensor> moments(tensors.begin() + static_cast<std::ptrdiff_t>(i),
                                  tensors.begin() + static_cast<std::ptrdiff_t>(i + optimizer_side.size()));
  try {
    optimizer.load_state(moments);
  } catch (const std::invalid_argument& e) {
    throw fail(e.what());
  }
  i += optimizer_side.size();
  for (auto& g : gens) {
    std::lock_guard<std::mutex> lock(g.mutex());
    g.set_state(tensors[i++]);
  }
  return state;
}

}  // namespace deltabench::train
