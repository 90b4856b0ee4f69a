#!/usr/bin/env bash
# What scripts/device.sh needs carried to the GPU machine, which reaches no network, made here into the folders
# git ignores (the device tool's `carry` takes them; about 12 MB without FLA, 20 MB with it):
#   .deb/sqlite, .deb/nlohmann  Debian's libsqlite3-dev and nlohmann-json3-dev, unpacked with dpkg-deb -x (not
#                               installed: the GPU image has neither's headers; device.sh points CMake at them)
#   .whl                        pip's nvidia-cutlass 4.2.0.0 wheel (CuTe's headers for the sm_90a kernels)
#   .fla                        with --fla: FLA's fla/ package at the commit ../shared/reference/kernels.md names,
#                               from a git directory of FLA's repository, and einops and packaging beside it, for
#                               the comparisons (bench/*fla*.py); nothing of it is committed
# Idempotent: a folder already there is kept (remove it to make it again).
#
#   scripts/device_carry.sh [--fla GIT_DIR] [--fla-commit REV]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
fla_git="" fla_commit=bc3b101
while (($#)); do
  case "$1" in
    --fla) fla_git=${2:?--fla needs a git directory}; shift 2 ;;
    --fla-commit) fla_commit=${2:?--fla-commit needs a revision}; shift 2 ;;
    *) echo "device_carry.sh: unknown argument '$1' (expected --fla GIT_DIR or --fla-commit REV)" >&2; exit 2 ;;
  esac
done
if [[ -n "$fla_git" ]] && ! git --git-dir "$fla_git" rev-parse --verify --quiet "$fla_commit^{commit}" >/dev/null 2>&1; then
  echo "device_carry.sh: $fla_git is not a git directory with commit $fla_commit" >&2
  exit 1
fi
python="$root/.venv/bin/python"
[[ -x "$python" ]] || python=python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Debian packages, unpacked.
for pair in sqlite:libsqlite3-dev nlohmann:nlohmann-json3-dev; do
  dir="$root/.deb/${pair%%:*}" package=${pair#*:}
  if [[ -d "$dir" ]]; then
    echo "device_carry.sh: $dir is there"
    continue
  fi
  (cd "$work" && apt-get download "$package" >/dev/null)
  mkdir -p "$dir"
  dpkg-deb -x "$work/${package}"_*.deb "$dir"
  echo "device_carry.sh: $package unpacked into $dir"
done

# CUTLASS's wheel.
if ls "$root"/.whl/nvidia_cutlass-4.2.0.0-*.whl >/dev/null 2>&1; then
  echo "device_carry.sh: the nvidia-cutlass wheel is in .whl"
else
  "$python" -m pip download --quiet --no-deps nvidia-cutlass==4.2.0.0 -d "$root/.whl"
  echo "device_carry.sh: nvidia-cutlass 4.2.0.0 downloaded into .whl"
fi

# FLA, unmodified, with its two pure-Python dependencies unpacked beside it.
if [[ -n "$fla_git" ]]; then
  if [[ -d "$root/.fla/fla" ]]; then
    echo "device_carry.sh: .fla/fla is there"
  else
    mkdir -p "$root/.fla"
    git --git-dir "$fla_git" archive "$fla_commit" fla | tar -x -C "$root/.fla"
    "$python" -m pip download --quiet --no-deps einops==0.8.1 packaging==24.2 -d "$work/wheels"
    for wheel in "$work"/wheels/*.whl; do
      "$python" -m zipfile -e "$wheel" "$root/.fla"
    done
    echo "device_carry.sh: FLA at $fla_commit, einops and packaging in .fla"
  fi
fi
du -sh "$root/.deb" "$root/.whl" ${fla_git:+"$root/.fla"} 2>/dev/null
