#include "tasks/npy.h"

#include <ATen/ATen.h>

#include <cstring>
#include <fstream>
#include <regex>
#include <stdexcept>
#include <string>
#include <vector>

namespace deltabench::tasks {
namespace {

constexpr char kMagic[] = "\x93NUMPY";

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& what) {
  throw std::runtime_error("npy file " + path.string() + ": " + what);
}

}  // namespace

void write_npy(const std::filesystem::path& path, const at::Tensor& array) {
  if (array.dim() != 2 || array.scalar_type() != at::kLong) {
    throw std::invalid_argument("write_npy: expected a 2-D int64 tensor, got " + std::to_string(array.dim()) +
                                "-D " + std::string(c10::toString(array.scalar_type())));
  }
  const at::Tensor data = array.to(at::kCPU).contiguous();
  std::string header = "{'descr': '<i8', 'fortran_order': False, 'shape': (" + std::to_string(data.size(0)) +
                       ", " + std::to_string(data.size(1)) + "), }";
  // Pad so that the data starts on a 64-byte boundary; the header ends with a newline.
  const size_t preamble = 6 + 2 + 2;
  header.append(64 - (preamble + header.size() + 1) % 64, ' ');
  header.push_back('\n');
  std::ofstream out(path, std::ios::binary);
  if (!out) fail(path, "cannot open for writing");
  out.write(kMagic, 6);
  const char version[2] = {1, 0};
  out.write(version, 2);
  const uint16_t len = static_cast<uint16_t>(header.size());
  const char len_le[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
  out.write(len_le, 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(static_cast<const char*>(data.data_ptr()), static_cast<std::streamsize>(data.nbytes()));
  if (!out) fail(path, "write failed");
}

at::Tensor read_npy(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open");
  char magic[6];
  char version[2];
  in.read(magic, 6);
  in.read(version, 2);
  if (!in || std::memcmp(magic, kMagic, 6) != 0) fail(path, "not a .npy file");
  uint32_t header_len = 0;
  if (version[0] == 1) {
    unsigned char b[2];
    in.read(reinterpret_cast<char*>(b), 2);
    header_len = b[0] | (b[1] << 8);
  } else {
    unsigned char b[4];
    in.read(reinterpret_cast<char*>(b), 4);
    header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
  }
  std::string header(header_len, '\0');
  in.read(header.data(), header_len);
  if (!in) fail(path, "truncated header");

  std::smatch m;
  if (!std::regex_search(header, m, std::regex("'descr':\\s*'([^']*)'"))) fail(path, "no descr in header");
  const std::string descr = m[1];
  if (descr != "<i8" && descr != "<i4") fail(path, "expected dtype '<i8' or '<i4', got '" + descr + "'");
  if (header.find("'fortran_order': False") == std::string::npos) fail(path, "Fortran order is not supported");
  if (!std::regex_search(header, m, std::regex("'shape':\\s*\\(([^)]*)\\)"))) fail(path, "no shape in header");
  std::vector<int64_t> shape;
  const std::string dims = m[1];
  const std::regex number("\\d+");
  for (std::sregex_iterator it(dims.begin(), dims.end(), number), end; it != end; ++it) {
    shape.push_back(std::stoll(it->str()));
  }
  const auto dtype = descr == "<i8" ? at::kLong : at::kInt;
  at::Tensor out = at::empty(shape, at::TensorOptions().dtype(dtype));
  in.read(static_cast<char*>(out.data_ptr()), static_cast<std::streamsize>(out.nbytes()));
  if (!in) fail(path, "truncated data: expected " + std::to_string(out.nbytes()) + " bytes");
  return out.to(at::kLong);
}

}  // namespace deltabench::tasks
