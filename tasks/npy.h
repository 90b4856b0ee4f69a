#pragma once
// The .npy format (numpy's own, version 1.0) for 2-D int64 arrays: what `deltabench tasks export`
// writes for Python users and what the numpy fixtures of the tests are read from.

#include <ATen/core/Tensor.h>

#include <filesystem>

namespace deltabench::tasks {

// Writes a 2-D int64 CPU tensor, C order, little-endian '<i8'.
void write_npy(const std::filesystem::path& path, const at::Tensor& array);

// Reads a C-order '<i8' or '<i4' array of any rank as an int64 tensor. Errors name the file.
at::Tensor read_npy(const std::filesystem::path& path);

}  // namespace deltabench::tasks
