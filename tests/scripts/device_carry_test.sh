#!/usr/bin/env bash
# Tests scripts/device_carry.sh's answers to bad arguments, which come before anything is downloaded (CI may
# have no network): an unknown argument fails with 2 naming it; --fla naming no git directory with the commit
# fails with 1 saying so, and nothing is made.
#   device_carry_test.sh <source dir>
set -uo pipefail
src="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/../support/check.sh"

bash "$src/scripts/device_carry.sh" --frobnicate >"$tmp/out.txt" 2>&1
check "an unknown argument fails with 2" test $? -eq 2
check "... naming it and what is expected" \
  grep -q "device_carry.sh: unknown argument '--frobnicate' (expected --fla GIT_DIR or --fla-commit REV)" "$tmp/out.txt"
bash "$src/scripts/device_carry.sh" --fla "$tmp/nothing" --fla-commit abc1234 >"$tmp/out.txt" 2>&1
check "--fla without a git directory fails with 1" test $? -eq 1
check "... saying which directory and commit" \
  grep -q "device_carry.sh: $tmp/nothing is not a git directory with commit abc1234" "$tmp/out.txt"
exit $((failures > 0))
