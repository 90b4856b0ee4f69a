#pragma once
// Running a suite as a Slurm job array: each array task is a shard of the grid, and where the store
// is on a network file system (SQLite's locks are not safe there) each shard writes a store of its own,
// merged afterwards (sweep/merge.h). scripts/slurm_suite.sbatch is the job script.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>

namespace deltabench::sweep {

// The shard (index, count) of a Slurm array task: SLURM_ARRAY_TASK_ID less SLURM_ARRAY_TASK_MIN (0
// when unset) of SLURM_ARRAY_TASK_COUNT. None outside a job array (no SLURM_ARRAY_TASK_ID). `env`
// looks a variable up (std::getenv's answer, or none). Throws train::ConfigError naming the variables
// when they do not make a shard (a count missing, an index outside it, a task range with gaps).
std::optional<std::pair<int64_t, int64_t>> slurm_array_shard(
    const std::function<std::optional<std::string>(const std::string&)>& env);
std::optional<std::pair<int64_t, int64_t>> slurm_array_shard();  // from the process's environment

// Whether `path` (or, where it does not exist yet, its folder) is on a network or cluster file system
// (NFS, Lustre, GPFS, BeeGFS, CIFS/SMB, CephFS, Panasas, AFS, FUSE), from statfs's f_type.
bool on_network_filesystem(const std::string& path);

// The store of shard i of n beside `store`: runs/deltabench.sqlite -> runs/deltabench.shard-2-of-8.sqlite.
std::string shard_store_path(const std::string& store, int64_t shard, int64_t shards);

}  // namespace deltabench::sweep
