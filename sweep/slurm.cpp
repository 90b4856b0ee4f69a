#include "sweep/slurm.h"

#include "train/config.h"

#include <fmt/core.h>
#include <sys/vfs.h>

#include <cstdlib>
#include <filesystem>

namespace deltabench::sweep {
namespace {

int64_t whole(const std::string& name, const std::string& value) {
  size_t used = 0;
  int64_t x = -1;
  try {
    x = std::stoll(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != value.size() || x < 0) {
    throw train::ConfigError(fmt::format("{}: expected a whole number >= 0, got '{}'", name, value));
  }
  return x;
}

}  // namespace

std::optional<std::pair<int64_t, int64_t>> slurm_array_shard(
    const std::function<std::optional<std::string>(const std::string&)>& env) {
  const auto id = env("SLURM_ARRAY_TASK_ID");
  if (!id) return std::nullopt;
  const auto count = env("SLURM_ARRAY_TASK_COUNT");
  if (!count) {
    throw train::ConfigError("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not: cannot tell the shard "
                             "count; give --shard i/n");
  }
  const int64_t task = whole("SLURM_ARRAY_TASK_ID", *id), n = whole("SLURM_ARRAY_TASK_COUNT", *count);
  const auto min = env("SLURM_ARRAY_TASK_MIN");
  const int64_t first = min ? whole("SLURM_ARRAY_TASK_MIN", *min) : 0;
  if (const auto max = env("SLURM_ARRAY_TASK_MAX"); max && min) {
    const int64_t last = whole("SLURM_ARRAY_TASK_MAX", *max);
    if (last - first + 1 != n) {
      throw train::ConfigError(fmt::format("SLURM_ARRAY_TASK_MIN {} to MAX {} is not {} consecutive tasks "
                                           "(SLURM_ARRAY_TASK_COUNT): use --array={}-{} without a step, or --shard i/n",
                                           first, last, n, first, first + n - 1));
    }
  }
  if (n < 1 || task < first || task - first >= n) {
    throw train::ConfigError(fmt::format("SLURM_ARRAY_TASK_ID {}: expected {} to {} (SLURM_ARRAY_TASK_MIN and _COUNT)",
                                         task, first, first + n - 1));
  }
  return std::make_pair(task - first, n);
}

std::optional<std::pair<int64_t, int64_t>> slurm_array_shard() {
  return slurm_array_shard([](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    return v ? std::optional<std::string>(v) : std::nullopt;
  });
}

bool on_network_filesystem(const std::string& path) {
  namespace fs = std::filesystem;
  fs::path p = fs::absolute(path);
  while (!fs::exists(p) && p.has_parent_path() && p != p.parent_path()) p = p.parent_path();
  struct statfs s {};
  if (statfs(p.c_str(), &s) != 0) return false;
  switch (static_cast<unsigned long>(s.f_type)) {
    case 0x6969UL:      // NFS
    case 0x0BD00BD0UL:  // Lustre
    case 0x47504653UL:  // GPFS
    case 0x19830326UL:  // BeeGFS
    case 0xFF534D42UL:  // CIFS
    case 0xFE534D42UL:  // SMB2
    case 0x517BUL:      // SMB
    case 0x00C36400UL:  // CephFS
    case 0xAAD7AAEAUL:  // Panasas
    case 0x5346414FUL:  // AFS
    case 0x65735546UL:  // FUSE
      return true;
    default:
      return false;
  }
}

std::string shard_store_path(const std::string& store, int64_t shard, int64_t shards) {
  const std::filesystem::path p(store);
  return (p.parent_path() / fmt::format("{}.shard-{}-of-{}{}", p.stem().string(), shard, shards, p.extension().string()))
      .string();
}

}  // namespace deltabench::sweep
