#!/usr/bin/env bash
# Sets up and builds deltabench on Debian 12 (or Ubuntu): system packages, LibTorch 2.11 from pip in
# a project-local virtual environment, then a CMake + Ninja + ccache build in build/.
# Idempotent: a second run installs nothing and rebuilds only what changed.
#
#   scripts/setup.sh                 everything
#   CMAKE_PREFIX_PATH=/opt/libtorch scripts/setup.sh   use your own LibTorch; pip is skipped
#
# Environment: DELTABENCH_BUILD_DIR (default build), DELTABENCH_JOBS (default: all cores),
# DELTABENCH_BUILD_TYPE (default Release).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${DELTABENCH_BUILD_DIR:-$root/build}"
jobs="${DELTABENCH_JOBS:-$(nproc)}"
torch_version="2.11.0"

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'setup.sh: %s\n' "$*" >&2; exit 1; }

# 1. System packages ---------------------------------------------------------------------------
apt_packages=(
  build-essential cmake ninja-build ccache git pkg-config xz-utils
  python3 python3-venv python3-pip
  catch2 libbenchmark-dev libfmt-dev libcli11-dev libsqlite3-dev sqlite3 gnuplot-nox nlohmann-json3-dev
)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  step "installing system packages: ${missing[*]}"
  command -v apt-get >/dev/null || fail "no apt-get: install these packages yourself: ${missing[*]}"
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || fail "need root (or sudo) to install: ${missing[*]}"
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq || fail "apt-get update failed"
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    || fail "apt-get install failed for: ${missing[*]}"
else
  step "system packages: all present"
fi

# 2. LibTorch ----------------------------------------------------------------------------------
cmake_args=()
user_torch=""
prefix_path="${CMAKE_PREFIX_PATH:-}"
for dir in ${prefix_path//:/ } ${Torch_DIR:-}; do
  if [[ -f "$dir/TorchConfig.cmake" || -f "$dir/share/cmake/Torch/TorchConfig.cmake" ]]; then
    user_torch="$dir"
  fi
done
if [[ -n "$user_torch" ]]; then
  step "LibTorch: using yours at $user_torch (pip skipped)"
else
  venv="$root/.venv"
  if [[ ! -x "$venv/bin/python" ]]; then
    step "creating $venv"
    python3 -m venv "$venv" || fail "python3 -m venv failed (is python3-venv installed?)"
  fi
  if "$venv/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$torch_version')" 2>/dev/null; then
    step "LibTorch: torch $torch_version already in $venv"
  else
    step "installing torch==$torch_version (the CUDA 13 build, about 3 GB with its CUDA libraries) into $venv"
    "$venv/bin/python" -m pip install --quiet --progress-bar off "torch==$torch_version" \
      || fail "pip install torch==$torch_version failed"
  fi
  # numpy regenerates the MQAR fixtures (tests/fixtures/make_mqar_fixtures.py).
  if ! "$venv/bin/python" -c "import numpy" 2>/dev/null; then
    step "installing numpy into $venv"
    "$venv/bin/python" -m pip install --quiet --progress-bar off numpy || fail "pip install numpy failed"
  fi
  cmake_args+=("-DDELTABENCH_PYTHON=$venv/bin/python")
fi

# CUTLASS's CuTe (headers only) for the Hopper kernels' wgmma and TMA layer: pip's nvidia-cutlass, its
# headers under cutlass_library/source/include, in the project's .venv (made here too when your own
# LibTorch skipped it). --no-deps: its Python dependencies (cuda-python, scipy, networkx, ...) serve
# CUTLASS's Python generator, which deltabench does not use. Without it CMake builds no sm_90a kernels.
cutlass_version="4.2.0.0"
venv="$root/.venv"
if [[ ! -x "$venv/bin/python" ]]; then
  step "creating $venv"
  python3 -m venv "$venv" || fail "python3 -m venv failed (is python3-venv installed?)"
fi
cutlass_include() {
  "$venv/bin/python" -c "import importlib.util as u, os; s = u.find_spec('cutlass_library'); print(os.path.join(s.submodule_search_locations[0], 'source', 'include') if s else '')"
}
include="$(cutlass_include)"
if [[ -n "$include" && -f "$include/cute/tensor.hpp" ]] \
   && grep -q "CUTLASS_MAJOR 4" "$include/cutlass/version.h" && grep -q "CUTLASS_MINOR 2" "$include/cutlass/version.h"; then
  step "CuTe: nvidia-cutlass $cutlass_version already at $include"
else
  step "installing nvidia-cutlass==$cutlass_version (CUTLASS's headers, about 6 MB) into $venv"
  "$venv/bin/python" -m pip install --quiet --progress-bar off --no-deps "nvidia-cutlass==$cutlass_version" \
    || fail "pip install nvidia-cutlass==$cutlass_version failed"
  include="$(cutlass_include)"
fi
[[ -f "$include/cute/tensor.hpp" ]] || fail "nvidia-cutlass is installed but $include/cute/tensor.hpp is missing"
cmake_args+=("-DDELTABENCH_CUTLASS_INCLUDE=$include")

# LibTorch's CUDA build needs the CUDA toolkit at configure time, even to build for the CPU.
if ! command -v nvcc >/dev/null && [[ ! -x /usr/local/cuda/bin/nvcc ]] && [[ -z "$user_torch" ]]; then
  fail "no nvcc: torch $torch_version from pip is the CUDA 13 build, whose CMake package needs the CUDA
toolkit (13.0) to configure. Install it (/usr/local/cuda), or pass a CPU LibTorch with CMAKE_PREFIX_PATH."
fi

# 3. Configure and build -----------------------------------------------------------------------
export CCACHE_DIR="${CCACHE_DIR:-$root/.ccache}"
export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-5G}"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  step "configuring $build_dir"
  cmake -S "$root" -B "$build_dir" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE="${DELTABENCH_BUILD_TYPE:-Release}" "${cmake_args[@]}" \
    || fail "cmake configure failed (see the messages above)"
fi
step "building with $jobs jobs"
cmake --build "$build_dir" -j "$jobs" || fail "build failed (see the compiler messages above)"
step "done: $build_dir/deltabench"
