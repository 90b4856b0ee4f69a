#!/usr/bin/env bash
# Tests that every committed suite report is what its committed runs give: `deltabench report <suite>
# --store results/<suite>/runs.json` writes the committed table.csv and table.md again, byte for byte.
# Committed means as git's HEAD holds them where the source dir is a checkout: the README's first command
# (`deltabench run quick`) rewrites results/quick/ with the user's own run, which this test is not about.
#   committed_results_test.sh <deltabench binary> <source dir>
set -uo pipefail
bin="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
src="$2"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/../support/check.sh"

# committed <path> <copy>: the file as HEAD holds it where the source dir is a git checkout that tracks
# it, else as it is in the source dir.
committed() {
  if git -C "$src" cat-file -e "HEAD:$1" 2>/dev/null; then
    git -C "$src" show "HEAD:$1" >"$2"
  else
    cp "$src/$1" "$2"
  fi
}

found=0
for runs in "$src"/results/*/runs.json; do
  [[ -f "$runs" ]] || continue
  suite=$(basename "$(dirname "$runs")")
  found=$((found + 1))
  mkdir -p "$tmp/committed/$suite"
  committed "results/$suite/runs.json" "$tmp/committed/$suite/runs.json"
  (cd "$src" && "$bin" report "$suite" --store "$tmp/committed/$suite/runs.json" --out "$tmp/$suite") >"$tmp/$suite.txt" 2>&1
  check "results/$suite/runs.json renders (exit 0)" test $? -eq 0
  for table in table.csv table.md; do
    committed "results/$suite/$table" "$tmp/committed/$suite/$table"
    check "results/$suite/$table is what results/$suite/runs.json gives" cmp "$tmp/$suite/$table" "$tmp/committed/$suite/$table"
  done
done
check "at least one suite's runs are committed" test "$found" -ge 1

echo "$failures checks failed"
exit $((failures > 0))
