#pragma once
// Child processes from an argument vector, never through a shell: no string is ever parsed as a
// command, so a suite name or a path with quotes, spaces or ';' is only ever an argument.

#include <string>
#include <vector>

namespace deltabench::sweep {

struct ProcessResult {
  bool started = false;  // false: the program could not be started (not on PATH, say)
  int exit_code = -1;    // the exit status, or 128 + the signal that ended it
  std::string output;    // standard output, and standard error too when asked
};

// Runs argv[0] (looked up on PATH when it has no '/') with the other elements as its arguments, in
// `cwd` when not empty, with `input` on its standard input, and waits for it.
ProcessResult run_process(const std::vector<std::string>& argv, const std::string& cwd = "",
                          bool capture_stderr = false, const std::string& input = "");

// True when `program` is an executable file in a directory of PATH.
bool on_path(const std::string& program);

}  // namespace deltabench::sweep
