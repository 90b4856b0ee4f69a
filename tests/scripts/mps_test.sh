#!/usr/bin/env bash
# Tests scripts/mps.sh where NVIDIA's MPS control program is absent (CI): `start` says so and fails, so that
# the caller runs without it and says so; `stop` is harmless; an unknown verb prints the usage and fails.
# Where the program exists (a GPU machine) only the usage is checked: starting a daemon is not a test's to do.
#   mps_test.sh <source dir>
set -uo pipefail
src="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/../support/check.sh"

bash "$src/scripts/mps.sh" frobnicate >"$tmp/usage.txt" 2>&1
check "an unknown verb fails" test $? -ne 0
check "... printing the usage" grep -q "usage: source scripts/mps.sh start | scripts/mps.sh stop" "$tmp/usage.txt"
if ! command -v nvidia-cuda-mps-control >/dev/null; then
  (source "$src/scripts/mps.sh" start) >"$tmp/start.txt" 2>&1
  check "start without the control program fails" test $? -ne 0
  check "... saying the runs time-slice the GPU" \
    grep -q "mps: nvidia-cuda-mps-control is not on this machine; the runs time-slice the GPU" "$tmp/start.txt"
  bash "$src/scripts/mps.sh" stop
  check "stop without the control program is harmless" test $? -eq 0
fi
exit $((failures > 0))
