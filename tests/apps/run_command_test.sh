#!/usr/bin/env bash
# Tests apps/deltabench/suite_commands.cpp through the program: resume after an interruption, two
# shards writing one store at once, --jobs, the report at the end, and errors.
#   run_command_test.sh <deltabench binary> <source dir>
set -uo pipefail
bin="$1"
src="$2"
suite="$src/tests/fixtures/suites/tiny.toml"  # 16 runs
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=1
source "$(dirname "${BASH_SOURCE[0]}")/../support/check.sh"
rows() {  # rows <store>: runs recorded, counted by SQLite itself where its shell exists
  if command -v sqlite3 >/dev/null; then
    sqlite3 "$1" "SELECT COUNT(*) || '/' || COUNT(DISTINCT hash) FROM runs WHERE suite = 'tiny'"
  else
    local n
    n=$("$bin" run "$suite" --store "$1" --dry-run | sed -n 's/.*; \([0-9]*\) already in.*/\1/p')
    echo "$n/$n"
  fi
}

# 1. Interrupted after 5 of 16 runs, then resumed: exactly 16 runs, none twice.
"$bin" run "$suite" --store "$tmp/a.sqlite" --out "$tmp/report-a" --abort-after 5 >"$tmp/a1.txt" 2>&1
check "--abort-after 5 exits with status 75" test $? -eq 75
check "the interrupted run recorded 5" test "$(rows "$tmp/a.sqlite")" = "5/5"
"$bin" run "$suite" --store "$tmp/a.sqlite" --dry-run >"$tmp/dry.txt" 2>&1
check "dry run sees 5 done and 11 to do" grep -q "5 already in .*, 11 to run" "$tmp/dry.txt"
"$bin" run "$suite" --store "$tmp/a.sqlite" --out "$tmp/report-a" >"$tmp/a2.txt" 2>&1
check "the resumed run exits 0" test $? -eq 0
check "the resumed run trains only the other 11" grep -q "done: 11 runs trained" "$tmp/a2.txt"
check "the store holds 16 runs, no duplicates" test "$(rows "$tmp/a.sqlite")" = "16/16"
check "progress lines show position and ETA" grep -qE '^\[16/16\] long/delta/d16/lr0.003/wd0.1/s7: accuracy [0-9.]+ .*ETA 0s' "$tmp/a2.txt"
check "the report was written at the end" test -s "$tmp/report-a/table.md"
check "the report has every cell" bash -c "! grep -q 'missing (' '$tmp/report-a/table.md'"
check "the report names the models" grep -q "| DeltaNet |" "$tmp/report-a/table.md"
"$bin" run "$suite" --store "$tmp/a.sqlite" --no-report >"$tmp/a3.txt" 2>&1
check "a third run has nothing to do" grep -q "16 already in .*, 0 to run" "$tmp/a3.txt"

# 2. Two processes on the two shards of one grid, at the same time, into one new store.
"$bin" run "$suite" --store "$tmp/b.sqlite" --shard 0/2 >"$tmp/b0.txt" 2>&1 &
p0=$!
"$bin" run "$suite" --store "$tmp/b.sqlite" --shard 1/2 >"$tmp/b1.txt" 2>&1 &
p1=$!
wait $p0
s0=$?
wait $p1
s1=$?
check "shard 0/2 exits 0" test $s0 -eq 0
check "shard 1/2 exits 0" test $s1 -eq 0
check "each shard trained 8" grep -q "done: 8 runs trained" "$tmp/b0.txt"
check "each shard trained 8 (1/2)" grep -q "done: 8 runs trained" "$tmp/b1.txt"
if [ $s0 -ne 0 ] || [ $s1 -ne 0 ]; then tail -n 5 "$tmp/b0.txt" "$tmp/b1.txt"; fi
check "the shared store holds 16 runs, no duplicates" test "$(rows "$tmp/b.sqlite")" = "16/16"
"$bin" report "$suite" --store "$tmp/b.sqlite" --out "$tmp/report-b" >/dev/null 2>&1
check "the sharded store reports like the single one" cmp -s <(grep -v '^Runs:' "$tmp/report-a/table.md") \
  <(grep -v '^Runs:' "$tmp/report-b/table.md")

# 3. --jobs splits the grid over worker processes and reports at the end.
"$bin" run "$suite" --store "$tmp/c.sqlite" --jobs 2 --out "$tmp/report-c" >"$tmp/c.txt" 2>&1
check "--jobs 2 exits 0" test $? -eq 0
check "--jobs 2 records 16 runs" test "$(rows "$tmp/c.sqlite")" = "16/16"
check "--jobs 2 workers print their shard" grep -q '^\[shard 1/2\]' "$tmp/c.txt"
check "--jobs 2 writes the report" test -s "$tmp/report-c/table.csv"

# 4. Training curves of one run, by id.
"$bin" report "$suite" --store "$tmp/a.sqlite" --out "$tmp/report-a" --curves short/delta/d8/lr0.001/wd0.1/s7 \
  >"$tmp/curves.txt" 2>&1
check "--curves exits 0" test $? -eq 0
check "--curves writes the data" bash -c "ls '$tmp'/report-a/curves-*.dat >/dev/null"

# 5. Errors name the thing and what was expected.
"$bin" run "$suite" --store "$tmp/a.sqlite" --shard 2/2 >"$tmp/e1.txt" 2>&1
check "a bad shard is an error" test $? -eq 2
check "a bad shard names the flag" grep -q -- "--shard: expected i/n with 0 <= i < n (for example 0/2), got '2/2'" "$tmp/e1.txt"
"$bin" run no-such-suite >"$tmp/e2.txt" 2>&1
check "an unknown suite is an error" test $? -eq 2
check "an unknown suite lists the known ones" grep -q "known suites: .*quick" "$tmp/e2.txt"
"$bin" report "$suite" --store "$tmp/a.sqlite" --out "$tmp/report-a" --curves nope >"$tmp/e3.txt" 2>&1
check "an unknown run for --curves is an error" grep -q "no run of suite tiny in the store has that id" "$tmp/e3.txt"

if ((failures)); then
  echo "$failures checks failed"
  exit 1
fi
echo "all checks passed"
