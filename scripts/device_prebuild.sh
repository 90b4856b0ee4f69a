#!/usr/bin/env bash
# Builds here, for sm_90a alone, the programs that scripts/device.sh's modes need on the GPU machine, and packs them
# into .prebuilt (ignored by git): carried in a call (`carry` .prebuilt, no .deb or .whl needed then), device.sh
# uses them in place of its build (145-153 s of a cold call) where they were built from the same sources against the
# same torch (scripts/prebuilt.sh checks both, and the summary says why where it builds after all).
#
#   scripts/device_prebuild.sh [TARGET...]   default: what --sm90, --kernels and --window run (kernels_cuda_tests,
#                                            train_cuda_tests, stage_bench, train_step_bench, kernels_bench, deltabench)
#
# Builds in build-carry/ (ccache as setup.sh's build; on a 2-core machine the first build of the CUDA code for one
# architecture takes tens of minutes, later ones only what changed). The programs link this machine's pip torch,
# which must be the GPU machine's version (2.11.0+cu130 both); Debian's Google Benchmark library travels with them.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-carry"
python="$root/.venv/bin/python"
[[ -x "$python" ]] || { echo "device_prebuild.sh: no $python; run scripts/setup.sh first" >&2; exit 1; }
targets=("$@")
((${#targets[@]})) || targets=(kernels_cuda_tests train_cuda_tests stage_bench train_step_bench kernels_bench deltabench)
torch=$("$python" -c 'import torch; print(torch.__version__)')
cutlass=$("$python" -c 'import cutlass_library, os; print(os.path.join(os.path.dirname(cutlass_library.__file__), "source", "include"))')

export CCACHE_DIR="${CCACHE_DIR:-$root/.ccache}"
if [[ ! -f "$build/CMakeCache.txt" ]]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDELTABENCH_CUDA_ARCHS=90a \
    -DDELTABENCH_PYTHON="$python" -DDELTABENCH_CUTLASS_INCLUDE="$cutlass"
fi
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}"

files=()
for target in "${targets[@]}"; do
  file=$(cd "$build" && find . -path ./CMakeFiles -prune -o -type f -name "$target" -perm -u+x -print | sed 's|^\./||' | head -n 1)
  [[ -n "$file" ]] || { echo "device_prebuild.sh: no program $target under $build" >&2; exit 1; }
  files+=("$file")
done
source "$root/scripts/prebuilt.sh"
prebuilt_pack "$root" "$build" "$root/.prebuilt" "$torch" "${files[@]}"
