#pragma once
// A temporary directory for a test, removed with POSIX nftw rather than std::filesystem::remove_all:
// pip's libtorch.so exports its own std::filesystem, and on some toolchains a program's call binds
// to that copy, whose remove_all crashed (tests/train/trainer_test.cpp on the H100 machine).

#include <ftw.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

namespace deltabench::testing {

class TempDir {
 public:
  explicit TempDir(const std::string& name)
      : path_(std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid()))) {
    remove_tree();
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { remove_tree(); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  void remove_tree() {
    ::nftw(
        path_.c_str(), [](const char* p, const struct stat*, int, struct FTW*) { return std::remove(p); }, 16,
        FTW_DEPTH | FTW_PHYS);
  }
  std::filesystem::path path_;
};

}  // namespace deltabench::testing
