#include "sweep/process.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace deltabench::sweep {
namespace {

// Closes the descriptors it owns when it goes out of scope.
struct Fds {
  int fd[2] = {-1, -1};
  ~Fds() {
    for (const int f : fd) {
      if (f >= 0) close(f);
    }
  }
  void close_one(int i) {
    if (fd[i] >= 0) close(fd[i]);
    fd[i] = -1;
  }
};

}  // namespace

bool on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  if (!path) return false;
  std::stringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const auto candidate = std::filesystem::path(dir.empty() ? "." : dir) / program;
    if (access(candidate.c_str(), X_OK) == 0 && std::filesystem::is_regular_file(candidate)) return true;
  }
  return false;
}

ProcessResult run_process(const std::vector<std::string>& argv, const std::string& cwd, bool capture_stderr,
                          const std::string& input) {
  ProcessResult result;
  if (argv.empty()) return result;
  Fds out, in;
  if (pipe2(out.fd, O_CLOEXEC) != 0 || pipe2(in.fd, O_CLOEXEC) != 0) return result;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in.fd[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out.fd[1], STDOUT_FILENO);
  if (capture_stderr) {
    posix_spawn_file_actions_adddup2(&actions, out.fd[1], STDERR_FILENO);
  } else {
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  }
  if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  std::vector<std::string> args = argv;
  std::vector<char*> raw;
  for (auto& a : args) raw.push_back(a.data());
  raw.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, raw[0], &actions, nullptr, raw.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return result;
  result.started = true;
  out.close_one(1);
  in.close_one(0);
  // Inputs here are a few kilobytes (a gnuplot script) and fit the pipe's buffer; write, then read.
  for (size_t written = 0; written < input.size();) {
    const ssize_t n = write(in.fd[1], input.data() + written, input.size() - written);
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  in.close_one(1);
  char buffer[4096];
  for (;;) {
    const ssize_t n = read(out.fd[0], buffer, sizeof buffer);
    if (n > 0) {
      result.output.append(buffer, static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
  // A program that exec could not find exits 127 from the child.
  if (result.exit_code == 127 && result.output.empty() && argv[0].find('/') == std::string::npos && !on_path(argv[0])) {
    result.started = false;
  }
  return result;
}

}  // namespace deltabench::sweep
