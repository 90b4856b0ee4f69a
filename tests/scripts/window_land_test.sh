#!/usr/bin/env bash
# Tests scripts/window_land.sh: two windows of a suite (the two halves of the tiny grid, each its own
# store) landed one after the other into a results folder: the export grows to the whole grid and its
# report equals the report of the two stores merged at once; landing a store again changes nothing; a
# store with another result for a run already exported is refused and the export is left as it was.
#   window_land_test.sh <deltabench binary> <source dir>
set -uo pipefail
bin="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
src="$2"
suite="$src/tests/fixtures/suites/tiny.toml"  # 16 runs
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=1 DELTABENCH_BIN="$bin" DELTABENCH_RESULTS="$tmp/results"
source "$(dirname "${BASH_SOURCE[0]}")/../support/check.sh"
one=()
if "$bin" info | grep -qE '^cuda devs +[1-9]'; then one=(--device cpu); fi

for i in 0 1; do
  "$bin" run "$suite" "${one[@]}" --store "$tmp/w$i.sqlite" --shard "$i/2" --no-report >"$tmp/w$i.txt" 2>&1
  check "window $i's store is trained" test $? -eq 0
done
land() { bash "$src/scripts/window_land.sh" "$suite" "$@" >"$tmp/land.txt" 2>&1; }

land "$tmp/w0.sqlite"
check "the first window lands" test $? -eq 0
check "its export holds its 8 runs" test "$(grep -c '"hash"' "$tmp/results/tiny/runs.json")" -eq 8
check "its report shows the cells still missing" grep -q 'missing (' "$tmp/results/tiny/table.md"

land "$tmp/w1.sqlite"
check "the second window lands on the first's export" test $? -eq 0
check "the export holds the 16 runs" test "$(grep -c '"hash"' "$tmp/results/tiny/runs.json")" -eq 16
"$bin" store merge "$tmp/w0.sqlite" "$tmp/w1.sqlite" -o "$tmp/both.sqlite" >/dev/null 2>&1
"$bin" report "$suite" --store "$tmp/both.sqlite" --out "$tmp/report-both" >/dev/null 2>&1
check "the landed report equals the report of both stores merged at once" \
  cmp -s "$tmp/results/tiny/table.csv" "$tmp/report-both/table.csv"

cp "$tmp/results/tiny/runs.json" "$tmp/before.json"
land "$tmp/w1.sqlite"
check "landing a window again succeeds" test $? -eq 0
check "... and changes nothing" cmp -s "$tmp/results/tiny/runs.json" "$tmp/before.json"

cp "$tmp/w0.sqlite" "$tmp/other.sqlite"
sqlite3 "$tmp/other.sqlite" "UPDATE runs SET best_accuracy = 0.123 WHERE rowid = (SELECT min(rowid) FROM runs)"
land "$tmp/other.sqlite"
check "a store with another result for an exported run is refused" test $? -ne 0
check "... saying which run differs" grep -q 'has different results in' "$tmp/land.txt"
check "... and the export is left as it was" cmp -s "$tmp/results/tiny/runs.json" "$tmp/before.json"

# A window's store with its runs' resume states beside it (scripts/device.sh --window): they land in
# $DELTABENCH_STATES/tiny.resume for the next window's call to carry.
finished=$(grep -m 1 -o '"hash": "[0-9a-f]*"' "$tmp/results/tiny/runs.json" | cut -d '"' -f 4)
mkdir -p "$tmp/win" "$tmp/states/x1/aaaa" "$tmp/states/x1/$finished"
cp "$tmp/w1.sqlite" "$tmp/win/tiny.sqlite"
echo "a state" >"$tmp/states/x1/aaaa/state.pt"
echo "a run's state left from before it finished" >"$tmp/states/x1/$finished/state.pt"
bash "$src/scripts/resume_states.sh" pack "$tmp/states/x1" "$tmp/win" >/dev/null 2>&1
DELTABENCH_STATES="$tmp/dotstore" land "$tmp/win/tiny.sqlite"
check "a window with resume states lands" test $? -eq 0
check "its states are put where the next window's call carries them" cmp -s "$tmp/states/x1/aaaa/state.pt" "$tmp/dotstore/tiny.resume/aaaa/state.pt"
check "a state of a run the export holds is removed" test ! -e "$tmp/dotstore/tiny.resume/$finished"
check "... saying so" grep -q "resume states of runs the export now holds, removed: 1" "$tmp/land.txt"
check "... and it says what to carry" grep -q "carry $tmp/dotstore/tiny.resume in the next window's call (1 states)" "$tmp/land.txt"
check "... and the export is left as it was (no new runs)" cmp -s "$tmp/results/tiny/runs.json" "$tmp/before.json"

land "$tmp/none.sqlite"
check "a store that is not there is an error naming it" grep -q "none.sqlite: no such store" "$tmp/land.txt"
exit $((failures > 0))
