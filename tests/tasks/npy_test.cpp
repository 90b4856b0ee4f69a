// Tests tasks/npy.cpp: a round trip, and reading a file numpy wrote (an MQAR fixture).

#include "tasks/npy.h"
#include "tests/support/catch.h"
#include "tests/support/source_dir.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>

using namespace deltabench::tasks;

TEST_CASE("npy: write then read", "[npy]") {
  const auto path = std::filesystem::temp_directory_path() / "deltabench_npy_test.npy";
  const auto x = at::arange(-50, 70, at::kLong).reshape({12, 10});
  write_npy(path, x);
  CHECK(at::equal(read_npy(path), x));
  // numpy's layout: magic, version 1.0, header padded so the data starts at a multiple of 64.
  std::ifstream in(path, std::ios::binary);
  char head[10];
  in.read(head, 10);
  CHECK(std::string(head + 1, 5) == "NUMPY");
  const int header_len = static_cast<unsigned char>(head[8]) | (static_cast<unsigned char>(head[9]) << 8);
  CHECK((10 + header_len) % 64 == 0);
  std::filesystem::remove(path);
}

TEST_CASE("npy: reads numpy's files and names a bad one", "[npy]") {
  const std::string dir = deltabench::testing::source_dir() + "/tests/fixtures/mqar/";
  const auto t = read_npy(dir + "s0-V20-L16-kv2-N8-a0.01.targets.npy");
  CHECK(t.sizes() == at::IntArrayRef({8, 16}));
  CHECK(t.min().item<int64_t>() == -100);
  try {
    read_npy(dir + "cases.txt");
    FAIL("no error");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find("cases.txt: not a .npy file") != std::string::npos);
  }
}
