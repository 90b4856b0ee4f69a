#!/usr/bin/env bash
# Tests that every committed suite report is what its committed runs give: `deltabench report <suite>
# --store results/<suite>/runs.json` writes the committed table.csv and table.md again, byte for byte.
#   committed_results_test.sh <deltabench binary> <source dir>
set -uo pipefail
bin="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
src="$2"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/../support/check.sh"

found=0
for runs in "$src"/results/*/runs.json; do
  [[ -f "$runs" ]] || continue
  suite=$(basename "$(dirname "$runs")")
  found=$((found + 1))
  (cd "$src" && "$bin" report "$suite" --store "$runs" --out "$tmp/$suite") >"$tmp/$suite.txt" 2>&1
  check "results/$suite/runs.json renders (exit 0)" test $? -eq 0
  for table in table.csv table.md; do
    check "results/$suite/$table is what results/$suite/runs.json gives" cmp "$tmp/$suite/$table" "$src/results/$suite/$table"
  done
done
check "at least one suite's runs are committed" test "$found" -ge 1

echo "$failures checks failed"
exit $((failures > 0))
