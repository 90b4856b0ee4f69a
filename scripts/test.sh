#!/usr/bin/env bash
# Runs every test that this machine can run: sets up and builds first (a no-op when up to date),
# then ctest. GPU tests (label "cuda") run only where a CUDA device is visible; CI has none.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${DELTABENCH_BUILD_DIR:-$root/build}"

"$root/scripts/setup.sh"

label_args=(-LE cuda)
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  label_args=()
fi
# One intra-op thread per test process: ctest runs one process per core, and LibTorch's own
# thread pool on top of that oversubscribes the cores (54 s instead of 8 s on 2 cores).
export OMP_NUM_THREADS=1
cd "$build_dir"
printf '\n==> ctest %s\n' "${label_args[*]}"
ctest "${label_args[@]}" -j "$(nproc)" --output-on-failure --timeout 900
