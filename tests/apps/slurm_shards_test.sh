#!/usr/bin/env bash
# Tests a suite run as a Slurm job array through the program (sweep/slurm.h, sweep/merge.h): four array
# tasks (SLURM_ARRAY_TASK_ID / _COUNT / _MIN as Slurm sets them for --array=1-4), each into its own store
# (--shard-store; on a network file system that is automatic), `deltabench store merge` into one, and
# the merged store's report equal to the report of the same grid run unsharded.
#   slurm_shards_test.sh <deltabench binary> <source dir>
set -uo pipefail
bin="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
src="$2"
suite="$src/tests/fixtures/suites/tiny.toml"  # 16 runs
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=1
source "$(dirname "${BASH_SOURCE[0]}")/../support/check.sh"
one=()
if "$bin" info | grep -qE '^cuda devs +[1-9]'; then one=(--device cpu); fi  # the same numbers as unsharded

"$bin" run "$suite" "${one[@]}" --store "$tmp/single.sqlite" --out "$tmp/report-single" >"$tmp/single.txt" 2>&1
check "the unsharded run exits 0" test $? -eq 0

for task in 1 2 3 4; do
  SLURM_ARRAY_TASK_ID=$task SLURM_ARRAY_TASK_COUNT=4 SLURM_ARRAY_TASK_MIN=1 SLURM_ARRAY_TASK_MAX=4 \
    "$bin" run "$suite" "${one[@]}" --store "$tmp/all.sqlite" --shard-store >"$tmp/task$task.txt" 2>&1
  check "array task $task exits 0" test $? -eq 0
  check "array task $task is shard $((task - 1))/4" grep -q "Slurm array task $((task - 1)) of 4" "$tmp/task$task.txt"
  check "array task $task writes its own store" test -s "$tmp/all.shard-$((task - 1))-of-4.sqlite"
  check "array task $task trains 4 runs" grep -q "done: 4 runs trained" "$tmp/task$task.txt"
done
check "no shard wrote the shared store" test ! -e "$tmp/all.sqlite"

"$bin" store merge "$tmp"/all.shard-{0,1,2,3}-of-4.sqlite -o "$tmp/all.sqlite" >"$tmp/merge.txt" 2>&1
check "store merge exits 0" test $? -eq 0
check "store merge counts 16 runs" grep -q "16 runs (0 records of runs already taken)" "$tmp/merge.txt"
"$bin" store merge "$tmp"/all.shard-{0,1,2,3}-of-4.sqlite "$tmp/single.sqlite" -o "$tmp/again.sqlite" >"$tmp/merge2.txt" 2>&1
check "merging the unsharded store in too is no conflict (deterministic runs)" test $? -eq 0
check "... and keeps each run once" grep -q "16 runs (16 records of runs already taken)" "$tmp/merge2.txt"

"$bin" report "$suite" --store "$tmp/all.sqlite" --out "$tmp/report-merged" >/dev/null 2>&1
check "the merged store has every cell" bash -c "! grep -q 'missing (' '$tmp/report-merged/table.md'"
check "the merged report's cells equal the unsharded report's" cmp -s "$tmp/report-single/table.csv" \
  "$tmp/report-merged/table.csv"
check "the merged report's tables equal the unsharded report's, the runs line aside" \
  cmp -s <(grep -v '^Runs:' "$tmp/report-single/table.md") <(grep -v '^Runs:' "$tmp/report-merged/table.md")

# Errors: a Slurm task without a count; --shard-store without a shard; a merge output with no inputs.
SLURM_ARRAY_TASK_ID=0 "$bin" run "$suite" --store "$tmp/x.sqlite" >"$tmp/e1.txt" 2>&1
check "an array task without SLURM_ARRAY_TASK_COUNT is refused" grep -q "SLURM_ARRAY_TASK_COUNT is not" "$tmp/e1.txt"
"$bin" run "$suite" --store "$tmp/x.sqlite" --shard-store >"$tmp/e2.txt" 2>&1
check "--shard-store alone is refused" grep -q "goes with --shard i/n or a Slurm array task" "$tmp/e2.txt"
check "neither refused run created a store" test ! -e "$tmp/x.sqlite"

if ((failures)); then
  tail -n 5 "$tmp"/*.txt
  echo "$failures check(s) failed"
  exit 1
fi
echo "slurm_shards_test: all checks passed"
