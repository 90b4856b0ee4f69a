#!/usr/bin/env bash
# FLA's autotuning kept between calls of the GPU machine (scripts/device.sh sources this). Triton writes each
# kernel's config timings to its cache where TRITON_CACHE_AUTOTUNING is set, and reads them back instead of timing
# every config again. A fresh machine has no cache, so FLA compiles and times all its configs on its first call of
# each kernel: minutes of a call. This keeps the timings (the *.autotune.json files; not the compiled kernels,
# hundreds of MB) in a tarball that the call brings back and the next one carries:
#
#   source scripts/triton_cache.sh
#   triton_cache_restore ROOT   export TRITON_CACHE_DIR and TRITON_CACHE_AUTOTUNING; unpack ROOT/.triton/<GPU>.tar.gz
#                               where it was carried; prints one line saying what it restored
#   triton_cache_keep OUT       pack the cache's timings into OUT/triton-<GPU>.tar.gz; prints one line saying
#                               how many and where to land it (.triton/<GPU>.tar.gz, ignored by git)
#
# Keyed by the GPU's name (nvidia-smi's, letters and digits kept, the rest '-'): triton's own key names the
# architecture alone (sm_90: an H100 and an H200 alike), and FLA's choice must be the one its autotuning makes on
# this GPU. With them FLA compiles only the configs its autotuning chose, and times none. The cache lives in
# $DELTABENCH_TRITON_DIR (default /tmp/deltabench-triton), which a warm machine keeps between calls.

triton_cache_gpu() {
  local name
  name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
  [[ -n "$name" ]] || name=none
  printf '%s' "$name" | tr -c 'A-Za-z0-9' '-'
}

triton_cache_count() { find "$TRITON_CACHE_DIR" -name '*.autotune.json' 2>/dev/null | wc -l; }

triton_cache_restore() {
  local root="$1" gpu tarball
  export TRITON_CACHE_DIR="${DELTABENCH_TRITON_DIR:-/tmp/deltabench-triton}" TRITON_CACHE_AUTOTUNING=1
  mkdir -p "$TRITON_CACHE_DIR"
  gpu=$(triton_cache_gpu)
  tarball="$root/.triton/$gpu.tar.gz"
  if [[ ! -f "$tarball" ]]; then
    echo "triton cache: none carried for $gpu (.triton/$gpu.tar.gz); FLA autotunes on its first call of each kernel"
  elif tar -xzf "$tarball" -C "$TRITON_CACHE_DIR" 2>/dev/null; then
    echo "triton cache: .triton/$gpu.tar.gz restored, $(triton_cache_count) kernels' autotuning from an earlier call on this GPU model"
  else
    echo "triton cache: .triton/$gpu.tar.gz could not be unpacked; FLA autotunes on its first call of each kernel"
    return 1
  fi
}

triton_cache_keep() {
  local out="$1" gpu tarball
  gpu=$(triton_cache_gpu)
  tarball="$out/triton-$gpu.tar.gz"
  if ! (cd "$TRITON_CACHE_DIR" && find . -name '*.autotune.json' -print0 | tar -czf "$tarball" --null -T -); then
    echo "triton cache: packing $TRITON_CACHE_DIR's timings into $(basename "$tarball") failed"
    rm -f "$tarball"
    return 1
  fi
  echo "triton cache: $(basename "$tarball"), $(triton_cache_count) kernels' autotuning; land it as .triton/$gpu.tar.gz"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  echo "usage: source scripts/triton_cache.sh; then triton_cache_restore ROOT or triton_cache_keep OUT" >&2
  exit 2
fi
