#!/usr/bin/env bash
# Tests scripts/triton_cache.sh on a CPU machine, nvidia-smi stood in for by a function: the timings kept by one
# call come back in the next on the same GPU model, not on another, and nothing else is packed.
#   triton_cache_test.sh <source dir>
set -uo pipefail
src="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/../support/check.sh"
source "$src/scripts/triton_cache.sh"
gpu_name="NVIDIA H100 80GB HBM3"
nvidia-smi() { echo "$gpu_name"; }

export DELTABENCH_TRITON_DIR="$tmp/cache1"
mkdir -p "$tmp/root" "$tmp/out"
triton_cache_restore "$tmp/root" >"$tmp/restore1.txt"
check "a first call restores nothing" grep -q "none carried for NVIDIA-H100-80GB-HBM3" "$tmp/restore1.txt"
check "... and sets triton's cache" test "$TRITON_CACHE_DIR" = "$tmp/cache1" -a "$TRITON_CACHE_AUTOTUNING" = 1
mkdir -p "$TRITON_CACHE_DIR/abc" "$TRITON_CACHE_DIR/def"
echo '{"key": "a"}' >"$TRITON_CACHE_DIR/abc/chunk_fwd_kernel_o.autotune.json"
echo '{"key": "b"}' >"$TRITON_CACHE_DIR/def/chunk_dplr_bwd.autotune.json"
head -c 4096 /dev/zero >"$TRITON_CACHE_DIR/abc/chunk_fwd_kernel_o.cubin"
triton_cache_keep "$tmp/out" >"$tmp/keep.txt"
check "keep packs the timings" grep -q "triton-NVIDIA-H100-80GB-HBM3.tar.gz, 2 kernels' autotuning; land it as .triton/NVIDIA-H100-80GB-HBM3.tar.gz" "$tmp/keep.txt"
tar -tzf "$tmp/out/triton-NVIDIA-H100-80GB-HBM3.tar.gz" | sort >"$tmp/list.txt"
check "... and nothing else" test "$(grep -c . "$tmp/list.txt")" -eq 2
check "... not the compiled kernels" bash -c "! grep -q cubin '$tmp/list.txt'"

mkdir -p "$tmp/root/.triton"
cp "$tmp/out/triton-NVIDIA-H100-80GB-HBM3.tar.gz" "$tmp/root/.triton/NVIDIA-H100-80GB-HBM3.tar.gz"
export DELTABENCH_TRITON_DIR="$tmp/cache2"
triton_cache_restore "$tmp/root" >"$tmp/restore2.txt"
check "the next call on the same GPU model restores them" grep -q "restored, 2 kernels' autotuning" "$tmp/restore2.txt"
check "... into triton's cache" cmp -s "$tmp/cache1/def/chunk_dplr_bwd.autotune.json" "$tmp/cache2/def/chunk_dplr_bwd.autotune.json"

gpu_name="NVIDIA H200"
export DELTABENCH_TRITON_DIR="$tmp/cache3"
triton_cache_restore "$tmp/root" >"$tmp/restore3.txt"
check "another GPU model gets none of them" grep -q "none carried for NVIDIA-H200" "$tmp/restore3.txt"
check "... and its cache stays empty" test "$(triton_cache_count)" -eq 0

echo "not a tarball" >"$tmp/root/.triton/NVIDIA-H200.tar.gz"
triton_cache_restore "$tmp/root" >"$tmp/restore4.txt"
check "a damaged tarball fails" test $? -ne 0
check "... saying FLA autotunes afresh" grep -q "could not be unpacked; FLA autotunes" "$tmp/restore4.txt"

bash "$src/scripts/triton_cache.sh" >"$tmp/usage.txt" 2>&1
check "run rather than sourced, it prints its usage and fails" test $? -eq 2
exit $((failures > 0))
