#include "sweep/store.h"

#include <sqlite3.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <thread>

#include <signal.h>
#include <unistd.h>

namespace deltabench::sweep {
namespace {

// 1: runs and epochs. 2: runs gain gpu_name, threads and the three backend columns; claims.
// 3: runs gain train_step (captured or eager, and why). 4: runs gain backend_pieces.
constexpr int kSchemaVersion = 4;

const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
  suite TEXT NOT NULL, hash TEXT NOT NULL, id TEXT NOT NULL,
  task TEXT NOT NULL, model TEXT NOT NULL, d_model INTEGER NOT NULL, lr REAL NOT NULL,
  weight_decay REAL NOT NULL, seed INTEGER NOT NULL,
  config TEXT NOT NULL, status TEXT NOT NULL, error TEXT NOT NULL,
  best_accuracy REAL NOT NULL, final_accuracy REAL NOT NULL, best_epoch INTEGER NOT NULL,
  epochs INTEGER NOT NULL, steps INTEGER NOT NULL, diverged_step INTEGER NOT NULL, parameters INTEGER NOT NULL,
  wall_s REAL NOT NULL, tokens_per_s REAL NOT NULL,
  device TEXT NOT NULL, git_commit TEXT NOT NULL, versions TEXT NOT NULL, finished_at TEXT NOT NULL,
  gpu_name TEXT NOT NULL DEFAULT '', threads INTEGER NOT NULL DEFAULT 0,
  backend_train_forward TEXT NOT NULL DEFAULT '', backend_train_backward TEXT NOT NULL DEFAULT '',
  backend_eval_forward TEXT NOT NULL DEFAULT '', train_step TEXT NOT NULL DEFAULT '',
  backend_pieces TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (suite, hash));
CREATE TABLE IF NOT EXISTS epochs (
  suite TEXT NOT NULL, hash TEXT NOT NULL, epoch INTEGER NOT NULL, steps INTEGER NOT NULL, lr REAL NOT NULL,
  train_loss REAL, test_loss REAL, accuracy REAL NOT NULL, mqar_accuracy REAL NOT NULL,
  micro_accuracy REAL NOT NULL, mad_accuracy REAL NOT NULL, wall_s REAL NOT NULL,
  PRIMARY KEY (suite, hash, epoch));
CREATE TABLE IF NOT EXISTS claims (
  suite TEXT NOT NULL, hash TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
  claimed_at REAL NOT NULL, heartbeat REAL NOT NULL,
  PRIMARY KEY (suite, hash));
)sql";

// A version-1 store gains the columns and the claims table of version 2; its runs keep their values.
const char* kMigrate1To2 = R"sql(
ALTER TABLE runs ADD COLUMN gpu_name TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN threads INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN backend_train_forward TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN backend_train_backward TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN backend_eval_forward TEXT NOT NULL DEFAULT '';
UPDATE meta SET value = '2' WHERE key = 'schema_version';
)sql";

// A version-2 store gains train_step; its runs keep their values (train_step empty: not recorded).
const char* kMigrate2To3 = R"sql(
ALTER TABLE runs ADD COLUMN train_step TEXT NOT NULL DEFAULT '';
UPDATE meta SET value = '3' WHERE key = 'schema_version';
)sql";

// A version-3 store gains backend_pieces; its runs keep their values (empty: not recorded).
const char* kMigrate3To4 = R"sql(
ALTER TABLE runs ADD COLUMN backend_pieces TEXT NOT NULL DEFAULT '';
UPDATE meta SET value = '4' WHERE key = 'schema_version';
)sql";

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

bool process_alive(int64_t pid) { return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM); }

// A prepared statement that finalizes itself.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) {
      throw StoreError(std::string("sqlite: cannot prepare statement: ") + sqlite3_errmsg(db));
    }
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int i, const std::string& v) {
    check(sqlite3_bind_text(stmt_, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Statement& bind(int i, int64_t v) {
    check(sqlite3_bind_int64(stmt_, i, v));
    return *this;
  }
  Statement& bind(int i, double v) {
    // SQLite stores NaN as NULL; a diverged epoch's loss comes back as NaN.
    check(v == v ? sqlite3_bind_double(stmt_, i, v) : sqlite3_bind_null(stmt_, i));
    return *this;
  }
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw StoreError(std::string("sqlite: ") + sqlite3_errmsg(db_));
  }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  std::string text(int i) const {
    const auto* p = sqlite3_column_text(stmt_, i);
    return p ? reinterpret_cast<const char*>(p) : "";
  }
  int64_t integer(int i) const { return sqlite3_column_int64(stmt_, i); }
  double real(int i) const {
    return sqlite3_column_type(stmt_, i) == SQLITE_NULL ? std::numeric_limits<double>::quiet_NaN()
                                                        : sqlite3_column_double(stmt_, i);
  }

 private:
  void check(int rc) const {
    if (rc != SQLITE_OK) throw StoreError(std::string("sqlite: cannot bind a value: ") + sqlite3_errmsg(db_));
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

}  // namespace

bool is_final_status(const std::string& status, bool retry_failed) {
  if (status == "completed" || status == "early_stopped" || status == "diverged") return true;
  return status == "failed" && !retry_failed;
}

ClaimOwner this_process() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return {host, static_cast<int64_t>(getpid())};
}

Store::Store(const std::string& path, Open open) : path_(path) {
  if (path.ends_with(".json")) {  // the name every command gives a runs export
    throw StoreError(path + ": a runs export (JSON), not a results store; `deltabench store merge " + path +
                     " -o STORE.sqlite` makes a store of it (report and store merge read exports as they are)");
  }
  if (open == Open::kExisting && !std::filesystem::is_regular_file(path)) {
    throw StoreError(path + ": no results store here (deltabench run creates one; pass --store to name another)");
  }
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty() && open == Open::kCreate) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) throw StoreError(path + ": cannot create the directory " + parent.string() + ": " + ec.message());
  }
  const int create = open == Open::kCreate ? SQLITE_OPEN_CREATE : 0;
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | create | SQLITE_OPEN_FULLMUTEX, nullptr) !=
      SQLITE_OK) {
    const std::string message = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    throw StoreError(path + ": cannot open the results store: " + message);
  }
  // Writers on other shards hold the lock for one run's transaction (milliseconds); wait for them.
  sqlite3_busy_timeout(db_, 60'000);
  try {
    // Two processes creating one new store race on its first locks: where this connection holds a shared
    // lock and needs to upgrade while the other holds the reserved one (switching to WAL, creating the
    // schema), SQLite answers SQLITE_BUSY at once instead of calling the busy handler, to avoid a deadlock.
    // CI hit it with two shards started together. Retry the whole opening sequence for up to 60 s.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (;;) {
      try {
        exec("PRAGMA journal_mode=WAL;");
        exec("PRAGMA synchronous=NORMAL;");
        exec(std::string("BEGIN IMMEDIATE;") + kSchema +
             "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '" + std::to_string(kSchemaVersion) +
             "');COMMIT;");
        break;
      } catch (const StoreError&) {
        if (!last_error_busy_ || std::chrono::steady_clock::now() > deadline) throw;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    std::string found;
    {
      Statement version(db_, "SELECT value FROM meta WHERE key = 'schema_version'");
      if (version.step()) found = version.text(0);
    }
    if (found == "1" || found == "2" || found == "3") {
      exec(std::string("BEGIN IMMEDIATE;") + (found == "1" ? kMigrate1To2 : "") + (found != "3" ? kMigrate2To3 : "") +
           kMigrate3To4 + kSchema + "COMMIT;");
      found = "4";
    }
    if (!found.empty() && found != std::to_string(kSchemaVersion)) {
      throw StoreError(path + ": results store schema version " + found + ", this build reads version " +
                       std::to_string(kSchemaVersion));
    }
  } catch (const StoreError& e) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw StoreError(std::string(e.what()).find(path) == 0 ? e.what() : path + ": " + e.what());
  }
}

Store::~Store() { sqlite3_close(db_); }

void Store::exec(const std::string& sql) const {
  char* message = nullptr;
  last_error_busy_ = false;
  if (const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message); rc != SQLITE_OK) {
    last_error_busy_ = (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
    const std::string text = message ? message : sqlite3_errmsg(db_);
    sqlite3_free(message);
    sqlite3_exec(db_, "ROLLBACK;", nullptr, nullptr, nullptr);
    throw StoreError("sqlite: " + text);
  }
}

void Store::record(const RunRecord& r) {
  exec("BEGIN IMMEDIATE;");
  try {
    Statement clear(db_, "DELETE FROM epochs WHERE suite = ? AND hash = ?");
    clear.bind(1, r.suite).bind(2, r.hash).step();
    Statement run(db_,
                  "INSERT OR REPLACE INTO runs (suite, hash, id, task, model, d_model, lr, weight_decay, seed, config, "
                  "status, error, best_accuracy, final_accuracy, best_epoch, epochs, steps, diverged_step, parameters, "
                  "wall_s, tokens_per_s, device, git_commit, versions, finished_at, gpu_name, threads, "
                  "backend_train_forward, backend_train_backward, backend_eval_forward, train_step, backend_pieces) "
                  "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    int i = 1;
    run.bind(i++, r.suite).bind(i++, r.hash).bind(i++, r.id).bind(i++, r.task).bind(i++, r.model);
    run.bind(i++, r.d_model).bind(i++, r.lr).bind(i++, r.weight_decay).bind(i++, r.seed).bind(i++, r.config);
    run.bind(i++, r.status).bind(i++, r.error).bind(i++, r.best_accuracy).bind(i++, r.final_accuracy);
    run.bind(i++, r.best_epoch).bind(i++, r.epochs).bind(i++, r.steps).bind(i++, r.diverged_step);
    run.bind(i++, r.parameters).bind(i++, r.wall_s).bind(i++, r.tokens_per_s).bind(i++, r.device);
    run.bind(i++, r.git_commit).bind(i++, r.versions).bind(i++, r.finished_at).bind(i++, r.gpu_name);
    run.bind(i++, r.threads).bind(i++, r.backend_train_forward).bind(i++, r.backend_train_backward);
    run.bind(i++, r.backend_eval_forward).bind(i++, r.train_step).bind(i++, r.backend_pieces);
    run.step();
    Statement unclaim(db_, "DELETE FROM claims WHERE suite = ? AND hash = ?");
    unclaim.bind(1, r.suite).bind(2, r.hash).step();
    Statement epoch(db_,
                    "INSERT INTO epochs (suite, hash, epoch, steps, lr, train_loss, test_loss, accuracy, mqar_accuracy, "
                    "micro_accuracy, mad_accuracy, wall_s) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)");
    for (const auto& e : r.history) {
      epoch.reset();
      epoch.bind(1, r.suite).bind(2, r.hash).bind(3, e.epoch).bind(4, e.steps).bind(5, e.lr).bind(6, e.train_loss);
      epoch.bind(7, e.test_loss).bind(8, e.accuracy).bind(9, e.mqar_accuracy).bind(10, e.micro_accuracy);
      epoch.bind(11, e.mad_accuracy).bind(12, e.wall_s);
      epoch.step();
    }
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK;", nullptr, nullptr, nullptr);
    throw;
  }
  exec("COMMIT;");
}

std::map<std::string, RunRecord> Store::runs(const std::string& suite, bool with_history) const {
  std::map<std::string, RunRecord> out;
  Statement q(db_,
              "SELECT suite, hash, id, task, model, d_model, lr, weight_decay, seed, config, status, error, best_accuracy, "
              "final_accuracy, best_epoch, epochs, steps, diverged_step, parameters, wall_s, tokens_per_s, device, "
              "git_commit, versions, finished_at, gpu_name, threads, backend_train_forward, backend_train_backward, "
              "backend_eval_forward, train_step, backend_pieces FROM runs WHERE suite = ?");
  q.bind(1, suite);
  while (q.step()) {
    RunRecord r;
    int i = 0;
    r.suite = q.text(i++), r.hash = q.text(i++), r.id = q.text(i++), r.task = q.text(i++), r.model = q.text(i++);
    r.d_model = q.integer(i++), r.lr = q.real(i++), r.weight_decay = q.real(i++), r.seed = q.integer(i++);
    r.config = q.text(i++), r.status = q.text(i++), r.error = q.text(i++);
    r.best_accuracy = q.real(i++), r.final_accuracy = q.real(i++), r.best_epoch = q.integer(i++);
    r.epochs = q.integer(i++), r.steps = q.integer(i++), r.diverged_step = q.integer(i++), r.parameters = q.integer(i++);
    r.wall_s = q.real(i++), r.tokens_per_s = q.real(i++), r.device = q.text(i++), r.git_commit = q.text(i++);
    r.versions = q.text(i++), r.finished_at = q.text(i++), r.gpu_name = q.text(i++), r.threads = q.integer(i++);
    r.backend_train_forward = q.text(i++), r.backend_train_backward = q.text(i++), r.backend_eval_forward = q.text(i++);
    r.train_step = q.text(i++), r.backend_pieces = q.text(i++);
    out.emplace(r.hash, std::move(r));
  }
  if (with_history) {
    Statement e(db_,
                "SELECT hash, epoch, steps, lr, train_loss, test_loss, accuracy, mqar_accuracy, micro_accuracy, "
                "mad_accuracy, wall_s FROM epochs WHERE suite = ? ORDER BY hash, epoch");
    e.bind(1, suite);
    while (e.step()) {
      const auto it = out.find(e.text(0));
      if (it == out.end()) continue;
      train::EpochMetrics m;
      m.epoch = e.integer(1), m.steps = e.integer(2), m.lr = e.real(3), m.train_loss = e.real(4);
      m.test_loss = e.real(5), m.accuracy = e.real(6), m.mqar_accuracy = e.real(7), m.micro_accuracy = e.real(8);
      m.mad_accuracy = e.real(9), m.wall_s = e.real(10);
      it->second.history.push_back(m);
    }
  }
  return out;
}

ClaimResult Store::claim(const std::string& suite, const std::string& hash, const ClaimOwner& owner, bool retry_failed,
                         double stale_after_s) {
  exec("BEGIN IMMEDIATE;");
  try {
    ClaimResult result = ClaimResult::kClaimed;
    Statement done(db_, "SELECT status FROM runs WHERE suite = ? AND hash = ?");
    done.bind(1, suite).bind(2, hash);
    if (done.step() && is_final_status(done.text(0), retry_failed)) result = ClaimResult::kDone;
    if (result == ClaimResult::kClaimed) {
      Statement held(db_, "SELECT host, pid, heartbeat FROM claims WHERE suite = ? AND hash = ?");
      held.bind(1, suite).bind(2, hash);
      if (held.step()) {
        const std::string host = held.text(0);
        const int64_t pid = held.integer(1);
        const bool mine = host == owner.host && pid == owner.pid;
        const bool stale = unix_now() - held.real(2) > stale_after_s || (host == owner.host && !process_alive(pid));
        if (!mine && !stale) result = ClaimResult::kTaken;
      }
    }
    if (result == ClaimResult::kClaimed) {
      Statement take(db_, "INSERT OR REPLACE INTO claims (suite, hash, host, pid, claimed_at, heartbeat) VALUES (?,?,?,?,?,?)");
      const double now = unix_now();
      take.bind(1, suite).bind(2, hash).bind(3, owner.host).bind(4, owner.pid).bind(5, now).bind(6, now).step();
    }
    exec("COMMIT;");
    return result;
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK;", nullptr, nullptr, nullptr);
    throw;
  }
}

void Store::heartbeat(const std::string& suite, const std::string& hash, const ClaimOwner& owner) {
  Statement beat(db_, "UPDATE claims SET heartbeat = ? WHERE suite = ? AND hash = ? AND host = ? AND pid = ?");
  beat.bind(1, unix_now()).bind(2, suite).bind(3, hash).bind(4, owner.host).bind(5, owner.pid).step();
}

void Store::release(const std::string& suite, const std::string& hash, const ClaimOwner& owner) {
  Statement drop(db_, "DELETE FROM claims WHERE suite = ? AND hash = ? AND host = ? AND pid = ?");
  drop.bind(1, suite).bind(2, hash).bind(3, owner.host).bind(4, owner.pid).step();
}

std::vector<Store::Claim> Store::claims(const std::string& suite) const {
  std::vector<Claim> out;
  Statement q(db_, "SELECT hash, host, pid, heartbeat FROM claims WHERE suite = ? ORDER BY hash");
  q.bind(1, suite);
  const double now = unix_now();
  while (q.step()) out.push_back({q.text(0), q.text(1), q.integer(2), now - q.real(3)});
  return out;
}

std::vector<std::string> Store::suites() const {
  std::vector<std::string> out;
  Statement q(db_, "SELECT DISTINCT suite FROM runs ORDER BY suite");
  while (q.step()) out.push_back(q.text(0));
  return out;
}

}  // namespace deltabench::sweep
