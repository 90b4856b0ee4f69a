#!/usr/bin/env bash
# Tests apps/deltabench/suite_commands.cpp through the program: resume after an interruption, two
# shards writing one store at once, --jobs, the report at the end, and errors.
#   run_command_test.sh <deltabench binary> <source dir>
set -uo pipefail
bin="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"  # absolute: some checks run from another directory
src="$2"
suite="$src/tests/fixtures/suites/tiny.toml"  # 16 runs
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=1
source "$(dirname "${BASH_SOURCE[0]}")/../support/check.sh"
# Where a GPU is visible, `run` trains several runs at once on it by default (sweep/runner.h). The
# checks below are of one process and ask for one there; section 6 checks the default itself.
one=()
if "$bin" info | grep -qE '^cuda devs +[1-9]'; then gpu=1; one=(--per-gpu 1); else gpu=0; fi
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
# --time-limit: a run whose task and model's finished runs took longer than the time left is not started.
"$bin" run "$suite" --store "$tmp/a.sqlite" --dry-run --time-limit 0.001 >"$tmp/dry-limit.txt" 2>&1
check "--time-limit holds back runs predicted to outlast it" \
  grep -qE "would not start .*: left for a later window: predicted [0-9]+ s \(its task and model's finished runs\)" "$tmp/dry-limit.txt"
cp "$tmp/a.sqlite" "$tmp/limit.sqlite"
"$bin" run "$suite" --store "$tmp/limit.sqlite" "${one[@]}" --no-report --time-limit 0.001 >"$tmp/limit.txt" 2>&1
check "a limited run exits 0 and says what it left" grep -qE "[1-9][0-9]* left for a later run by --time-limit" "$tmp/limit.txt"
check "... and leaves those runs to do" grep -qE "[1-9][0-9]* to run" \
  <("$bin" run "$suite" --store "$tmp/limit.sqlite" --dry-run 2>&1)
"$bin" run "$suite" --store "$tmp/a.sqlite" --dry-run --time-limit -1 >"$tmp/limit-bad.txt" 2>&1
check "a negative --time-limit is an error naming it" grep -q -- "--time-limit" "$tmp/limit-bad.txt"
"$bin" run "$suite" --store "$tmp/a.sqlite" "${one[@]}" --out "$tmp/report-a" >"$tmp/a2.txt" 2>&1
check "the resumed run exits 0" test $? -eq 0
check "the resumed run trains only the other 11" grep -q "done: 11 runs trained" "$tmp/a2.txt"
check "the store holds 16 runs, no duplicates" test "$(rows "$tmp/a.sqlite")" = "16/16"
check "progress lines show position and ETA" grep -qE '^\[16/16\] long/delta/d16/lr0.003/wd0.1/s7: accuracy [0-9.]+ .*ETA 0s' "$tmp/a2.txt"
check "the report was written at the end" test -s "$tmp/report-a/table.md"
check "the report has every cell" bash -c "! grep -q 'missing (' '$tmp/report-a/table.md'"
check "the report names the models" grep -q "| DeltaNet |" "$tmp/report-a/table.md"
# What ran around the sequence ops, per model (models/pieces.h): on a GPU under auto every piece on
# deltabench's kernels; on the CPU the fused passes for the convolution and the L2 norm, ATen's forms else.
if ((gpu)); then
  pieces='delta: embedding kernel, LayerNorm kernel, RMSNorm kernel, short conv kernel, q/k L2 norm kernel | linear: embedding kernel, LayerNorm kernel'
else
  pieces='delta: embedding aten, LayerNorm aten, RMSNorm aten, short conv cpu fused, q/k L2 norm cpu fused | linear: embedding aten, LayerNorm aten'
fi
check "the report says what ran around the ops" \
  grep -qxF "Pieces around the ops in training (kernel, cpu fused or aten): $pieces." "$tmp/report-a/table.md"
"$bin" run "$suite" --store "$tmp/a.sqlite" "${one[@]}" --no-report >"$tmp/a3.txt" 2>&1
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
check "--jobs 2 workers print their place" grep -qE '^\[worker 1/2 (cpu|cuda:0)\]' "$tmp/c.txt"
check "--jobs 2 workers share the grid: 16 trained in all" test "$(grep -c ': accuracy ' "$tmp/c.txt")" -eq 16
check "--jobs 2 writes the report" test -s "$tmp/report-c/table.csv"

# 3b. A suite whose runs another suite of the store finished (the same hashes) copies them, says from where, trains
#     none and reports what the first reported; --no-reuse trains them again.
sed 's/^name = "tiny"/name = "tiny-again"/' "$suite" >"$tmp/tiny-again.toml"
cp "$tmp/c.sqlite" "$tmp/again.sqlite"
"$bin" run "$tmp/tiny-again.toml" --store "$tmp/again.sqlite" "${one[@]}" --out "$tmp/report-again" >"$tmp/again.txt" 2>&1
check "a suite whose runs another finished exits 0" test $? -eq 0
check "... copies the 16 and says from where" grep -q '^16 run(s) copied from suite tiny (16): the same experiments' "$tmp/again.txt"
check "... trains none" grep -q '^done: 0 runs trained' "$tmp/again.txt"
check "... and reports what the first suite reported" cmp -s "$tmp/report-c/table.csv" "$tmp/report-again/table.csv"
"$bin" runs show --store "$tmp/again.sqlite" --suite tiny-again short/delta/d8/lr0.001/wd0.1/s7 >"$tmp/again-show.txt" 2>&1
check "a copied run's record says so" grep -q '"train_step": ".*; copied from suite tiny"' "$tmp/again-show.txt"
cp "$tmp/c.sqlite" "$tmp/again-no.sqlite"
"$bin" run "$tmp/tiny-again.toml" --store "$tmp/again-no.sqlite" "${one[@]}" --no-reuse --only d_model=8 --only lr=0.003 \
  --no-report >"$tmp/again-no.txt" 2>&1
check "--no-reuse trains them again" grep -q '^done: 4 runs trained' "$tmp/again-no.txt"
check "... and copies none" test "$(grep -c 'copied from suite' "$tmp/again-no.txt")" -eq 0

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

# 6. Where it trains: said before the first run and on every progress line; a device this machine
#    lacks is one error before anything is recorded (a suite's device = "cuda" on a CPU machine).
"$bin" run "$suite" --store "$tmp/d.sqlite" "${one[@]}" --no-report --progress-interval 0 >"$tmp/d.txt" 2>&1
check "run says where it trains before the first run" grep -qE '^suite tiny: .* to run, on (cpu|cuda:0 \(.*\)) \(backend auto\) with [0-9]+ CPU threads' "$tmp/d.txt"
check "progress lines show run, epoch, step, device and ETA" \
  grep -qE '^\[ ?1/16\] short/linear/d8/lr0.001/wd0.1/s7 on (cpu|cuda:0 .*): epoch 1/1 step 1/2 loss [0-9.]+ \| run ETA [0-9]+s \| shard ETA' "$tmp/d.txt"
"$bin" runs list --store "$tmp/d.sqlite" --suite tiny >"$tmp/d-list.txt" 2>&1
check "runs list shows each run's device and backend" grep -qE '\| (cpu|cuda:0 .*) \| reference / reference \(ATen autograd\), (reference|kernel) \|' "$tmp/d-list.txt"
sed 's/^name = "tiny"/name = "tiny-cuda"/; s/^early_stop = 0$/early_stop = 0\ndevice = "cuda"/' "$suite" >"$tmp/tiny-cuda.toml"
"$bin" run "$tmp/tiny-cuda.toml" --store "$tmp/e.sqlite" --device gpu0 >"$tmp/e0.txt" 2>&1
check "an unknown --device is an error (exit 2)" test $? -eq 2
check "an unknown --device names the flag and the spellings" \
  grep -q -- '--device: expected "auto", "cpu", "cuda" or "cuda:N", got "gpu0"' "$tmp/e0.txt"
if ((gpu)); then
  "$bin" run "$suite" --store "$tmp/e.sqlite" --no-report >"$tmp/e4.txt" 2>&1
  check "on a GPU, run trains 4 runs at once by default and says so" \
    grep -q '^suite tiny: 4 run(s) at once on each GPU (the default on CUDA; --per-gpu N to choose)' "$tmp/e4.txt"
  check "the default's workers share the grid" grep -q '^suite tiny: 4 worker processes on the GPUs' "$tmp/e4.txt"
  check "the default's workers trained all 16 runs" test "$(rows "$tmp/e.sqlite")" = "16/16"
else
  "$bin" run "$tmp/tiny-cuda.toml" --store "$tmp/e.sqlite" >"$tmp/e1.txt" 2>&1
  check "a suite's device = \"cuda\" on a machine without a GPU is an error (exit 2)" test $? -eq 2
  check "the error names the suite file and key" grep -q 'tiny-cuda.toml:[0-9]*: \[base.train\] device: "cuda" requested, but' "$tmp/e1.txt"
  check "nothing was recorded (no store created)" test ! -e "$tmp/e.sqlite"
  "$bin" run "$suite" --store "$tmp/e.sqlite" --device cuda:0 >"$tmp/e2.txt" 2>&1
  check "--device cuda:0 without a GPU is an error naming the flag" grep -q -- '--device: "cuda:0" requested, but' "$tmp/e2.txt"
  "$bin" run "$tmp/tiny-cuda.toml" --store "$tmp/e.sqlite" --device cpu --no-report >"$tmp/e3.txt" 2>&1
  check "--device cpu overrides the suite's cuda" grep -q "done: 16 runs trained" "$tmp/e3.txt"
  # A dry run trains nothing: it lists a GPU suite's runs left on a machine without a GPU too.
  "$bin" run "$tmp/tiny-cuda.toml" --store "$tmp/f.sqlite" --device cpu --shard 0/2 --no-report >/dev/null 2>&1
  "$bin" run "$tmp/tiny-cuda.toml" --store "$tmp/f.sqlite" --dry-run >"$tmp/e5.txt" 2>&1
  check "a GPU suite's dry run on a machine without a GPU exits 0" test $? -eq 0
  check "... and counts what is left" grep -q '^suite tiny-cuda: 16 runs in the grid; 8 already in .*, 8 to run$' "$tmp/e5.txt"
  check "... and lists it" test "$(grep -c '  would run ' "$tmp/e5.txt")" -eq 8
fi

# 6b. What runs the sequence ops: --backend and [base.train] backend, recorded per run. On a GPU, a
#     grid at d_model 64 and 128 (head dims 32 and 64) trains and evaluates DeltaNet on deltabench's
#     kernels; linear attention's normalised form carries V + 1 value columns (33 and 65), which the
#     training kernels do not take, so under --backend kernel its runs fail with the sentence that says
#     so; elsewhere "kernel" is one error before anything is recorded.
sed 's/^name = "tiny"/name = "tiny-kernel"/; s/^d_model = \[8, 16\]/d_model = [64, 128]/' "$suite" >"$tmp/tiny-kernel.toml"
sed 's/^early_stop = 0$/early_stop = 0\nbackend = "fast"/' "$suite" >"$tmp/tiny-bad-backend.toml"
"$bin" run "$tmp/tiny-bad-backend.toml" --store "$tmp/k0.sqlite" >"$tmp/k0.txt" 2>&1
check "a suite's unknown backend is an error (exit 2)" test $? -eq 2
check "the error names the file, the key and the spellings" \
  grep -q 'tiny-bad-backend.toml:[0-9]*: \[base.train\] backend: expected "auto", "reference" or "kernel", got "fast"' "$tmp/k0.txt"
# [base.train] recompute and --recompute (what the training kernels' backward computes again): a bad spelling is
# one error naming the key; the flag reaches --jobs' workers, which say it before their first run.
sed 's/^early_stop = 0$/early_stop = 0\nrecompute = "some"/' "$suite" >"$tmp/tiny-bad-recompute.toml"
"$bin" run "$tmp/tiny-bad-recompute.toml" --store "$tmp/r0.sqlite" >"$tmp/r0.txt" 2>&1
check "a suite's unknown recompute is an error (exit 2)" test $? -eq 2
check "the error names the file, the key and the spellings" \
  grep -q 'tiny-bad-recompute.toml:[0-9]*: \[base.train\] recompute: expected "none", "state" or "all"' "$tmp/r0.txt"
"$bin" run "$suite" --store "$tmp/r.sqlite" --jobs 2 --recompute all --only d_model=8 --only lr=0.003 --no-report \
  >"$tmp/r.txt" 2>&1
check "--recompute all with --jobs 2 exits 0" test $? -eq 0
check "both workers say recompute all before their first run" \
  test "$(grep -cE '^\[worker [01]/2 .*\(backend auto, recompute all\) with' "$tmp/r.txt")" -eq 2
if ((gpu)); then
  "$bin" run "$tmp/tiny-kernel.toml" --store "$tmp/k.sqlite" --backend kernel "${one[@]}" --no-report >"$tmp/k.txt" 2>&1
  check "--backend kernel trains the grid on a GPU" grep -q "done: 16 runs trained" "$tmp/k.txt"
  check "--backend kernel is said before the first run" grep -qE '^suite tiny-kernel: .* \(backend kernel\) with' "$tmp/k.txt"
  "$bin" runs list --store "$tmp/k.sqlite" --suite tiny-kernel >"$tmp/k-list.txt" 2>&1
  kernel_rows=$(grep -E '/delta/' "$tmp/k-list.txt" | grep -cE '\| kernel / kernel, kernel \|')
  check "every DeltaNet run recorded kernel forward, backward and evaluation" test "$kernel_rows" -eq 8
  ((kernel_rows == 8)) || grep -vE '\| kernel / kernel, kernel \|' "$tmp/k-list.txt"  # the runs that did not
  check "every linear attention run failed" test "$(grep -E '/linear/' "$tmp/k-list.txt" | grep -c '| failed |')" -eq 8
  check "with the sentence naming V + 1" grep -qE 'linear_attention: backend = kernel, but .* K = 32 and V = 33, and the training kernel takes' \
    "$tmp/k.txt"
else
  "$bin" run "$suite" --store "$tmp/k.sqlite" --backend kernel >"$tmp/k.txt" 2>&1
  check "--backend kernel on a CPU is an error (exit 2)" test $? -eq 2
  check "the error names the flag and the device" \
    grep -q -- '--backend: backend "kernel" runs deltabench.s CUDA kernels, and this run trains on cpu' "$tmp/k.txt"
  check "nothing was recorded (no store created)" test ! -e "$tmp/k.sqlite"
fi

# 7. Failed runs: recorded with their error, the exit status says so, a resumed run says they are skipped.
sed 's/^name = "tiny"/name = "tiny-huge"/; s/^num_layers = 1$/num_layers = 1\nvocab_size = 1048576/; s/^d_model = \[8, 16\]/d_model = [65536]/' \
  "$suite" >"$tmp/tiny-huge.toml"
"$bin" run "$tmp/tiny-huge.toml" --store "$tmp/f.sqlite" "${one[@]}" --out "$tmp/report-f" >"$tmp/f1.txt" 2>&1
check "a run whose memory estimate is too large fails (exit 1)" test $? -eq 1
check "its error names the key and the estimate" grep -q 'FAILED: .*\[model\] vocab_size makes this run need about [0-9.]* GB' "$tmp/f1.txt"
check "the report is written all the same" test -s "$tmp/report-f/table.md"
"$bin" run "$tmp/tiny-huge.toml" --store "$tmp/f.sqlite" "${one[@]}" --no-report >"$tmp/f2.txt" 2>&1
check "skipping failed runs exits 0" test $? -eq 0
check "skipping failed runs says how many and how to retry" grep -q '8 failed run(s) recorded earlier are skipped; --retry-failed' "$tmp/f2.txt"

# 8. Two processes on one store, no shards: each run is claimed before it trains, so each trains once.
"$bin" run "$suite" --store "$tmp/g.sqlite" "${one[@]}" --no-report >"$tmp/g0.txt" 2>&1 &
p0=$!
"$bin" run "$suite" --store "$tmp/g.sqlite" "${one[@]}" --no-report >"$tmp/g1.txt" 2>&1 &
p1=$!
wait $p0; s0=$?
wait $p1; s1=$?
check "both processes exit 0" test $s0 -eq 0 -a $s1 -eq 0
trained=$(( $(grep -c ': accuracy ' "$tmp/g0.txt") + $(grep -c ': accuracy ' "$tmp/g1.txt") ))
check "16 runs trained between them, none twice (got $trained)" test "$trained" -eq 16
check "the store holds 16 runs" test "$(rows "$tmp/g.sqlite")" = "16/16"

# 9. Workers die with their parent: kill -9 the parent of --jobs 2, and no worker is left.
sed 's/^name = "tiny"/name = "tiny-slow"/; s/^epochs = 1$/epochs = 200/' "$suite" >"$tmp/tiny-slow.toml"
"$bin" run "$tmp/tiny-slow.toml" --store "$tmp/h.sqlite" --jobs 2 --no-report >"$tmp/h.txt" 2>&1 &
parent=$!
for _ in $(seq 1 100); do
  [ "$(pgrep -f -- "--store $tmp/h.sqlite --worker" | wc -l)" -ge 2 ] && break
  sleep 0.1
done
check "--jobs 2 started two workers" test "$(pgrep -f -- "--store $tmp/h.sqlite --worker" | wc -l)" -ge 2
kill -9 "$parent"
wait "$parent" 2>/dev/null
sleep 1
check "no worker outlives a killed parent" test "$(pgrep -f -- "--store $tmp/h.sqlite --worker" | wc -l)" -eq 0
# Their claims are retaken at once on this host (their processes are gone): a new run trains every run.
"$bin" run "$tmp/tiny-slow.toml" --store "$tmp/h.sqlite" --no-report --dry-run >"$tmp/h2.txt" 2>&1
check "the killed workers' runs are still to do" grep -q "0 already in .*, 16 to run" "$tmp/h2.txt"

# 10. No shell: a suite name with quotes and ';' is only ever a name.
mkdir -p "$tmp/cwd"
sed "s/^name = \"tiny\"/name = \"x'; touch MARK; echo '\"/; s/^epochs = 1\$/epochs = 1/" "$suite" >"$tmp/quoted.toml"
(cd "$tmp/cwd" && "$bin" run "$tmp/quoted.toml" --store "$tmp/q.sqlite" "${one[@]}" >"$tmp/q.txt" 2>&1)
check "a quoted suite name trains and reports (exit 0)" test $? -eq 0
check "its report lands under its name" test -s "$tmp/cwd/results/x'; touch MARK; echo '/table.md"
check "no shell ran the name: no MARK file" test ! -e "$tmp/cwd/MARK" -a ! -e "$tmp/cwd/results/MARK"
if command -v gnuplot >/dev/null; then
  check "the figure was drawn" test -s "$tmp/cwd/results/x'; touch MARK; echo '/mqar.png"
fi

# 11. report never invents or destroys.
"$bin" report "$suite" --store "$tmp/none.sqlite" --out "$tmp/report-n" >"$tmp/n1.txt" 2>&1
check "report on a missing store is an error" test $? -eq 2
check "it names the store" grep -q "none.sqlite: no results store here" "$tmp/n1.txt"
check "and creates none" test ! -e "$tmp/none.sqlite"
"$bin" run "$suite" --store "$tmp/none.sqlite" --dry-run >"$tmp/n2.txt" 2>&1
check "--dry-run on a missing store is an error that creates none" test $? -eq 2 -a ! -e "$tmp/none.sqlite"
cp -r "$tmp/report-a" "$tmp/report-keep"
"$bin" report "$src/configs/suites/quick.toml" --store "$tmp/a.sqlite" --out "$tmp/report-keep" >"$tmp/n3.txt" 2>&1
check "a report of a suite with no runs in the store is refused" grep -q "holds no runs of suite 'quick': not writing" "$tmp/n3.txt"
check "and leaves the existing report alone" cmp -s "$tmp/report-a/table.md" "$tmp/report-keep/table.md"
"$bin" report "$src/configs/suites/quick.toml" --store "$tmp/a.sqlite" --out "$tmp/report-keep" --force >/dev/null 2>&1
check "--force writes it" grep -q "Suite \`quick\`" "$tmp/report-keep/table.md"

# 12. Browse and export the store.
"$bin" runs export --store "$tmp/a.sqlite" --suite tiny --format json --out "$tmp/a.json" 2>/dev/null
check "runs export writes JSON with every run" test "$(grep -c '"hash":' "$tmp/a.json")" -eq 16
check "... each with its epochs" test "$(grep -c '"epochs_history":' "$tmp/a.json")" -eq 16
"$bin" report "$suite" --store "$tmp/a.json" --out "$tmp/report-json" >"$tmp/report-json.txt" 2>&1
check "report reads a runs export in place of the store (exit 0)" test $? -eq 0
check "... and writes the store's report, cell for cell" cmp -s "$tmp/report-a/table.csv" "$tmp/report-json/table.csv"
check "... the Markdown too" cmp -s "$tmp/report-a/table.md" "$tmp/report-json/table.md"
"$bin" runs export --store "$tmp/a.sqlite" --suite tiny --status completed --model delta >"$tmp/a.csv"
check "runs export writes a CSV header" grep -q '^suite,hash,id,task,model,d_model,lr,' "$tmp/a.csv"
check "runs export filters by status and model" test "$(grep -c '^tiny,' "$tmp/a.csv")" -eq 8
"$bin" runs export --store "$tmp/a.sqlite" --epochs >"$tmp/a-epochs.csv"
check "runs export --epochs writes one row per epoch" test "$(grep -c '^tiny,' "$tmp/a-epochs.csv")" -eq 16
"$bin" runs show short/delta/d8/lr0.001/wd0.1/s7 --store "$tmp/a.sqlite" >"$tmp/show.txt" 2>&1
check "runs show prints the run's config and epochs" grep -q '"epochs_history"' "$tmp/show.txt"

# 13. --only: two workers train just the selected runs (each worker gets the selection), the dry run
# counts them, and a value no run has is an error before anything is stored.
jobs=(--jobs 2)
((gpu)) && jobs=(--per-gpu 2)
"$bin" run "$suite" --store "$tmp/only.sqlite" "${jobs[@]}" --only model=delta --only d_model=8 --no-report \
  >"$tmp/only1.txt" 2>&1
check "--only with two workers exits 0" test $? -eq 0
check "--only: the store holds the 4 selected runs" test "$(rows "$tmp/only.sqlite")" = "4/4"
"$bin" run "$suite" --store "$tmp/only.sqlite" --dry-run --only model=delta >"$tmp/only2.txt" 2>&1
check "--only: the dry run counts the selection" \
  grep -q '^suite tiny: 16 runs in the grid, 8 selected by --only; 4 already in .*, 4 to run$' "$tmp/only2.txt"
check "--only: the dry run lists only selected runs" bash -c "! grep -q 'would run .*/linear/' '$tmp/only2.txt'"
"$bin" run "$suite" --store "$tmp/only-bad.sqlite" --only model=deltanet >"$tmp/only3.txt" 2>&1
check "--only with a value no run has exits 2" test $? -eq 2
check "... and names it and the grid's values" \
  grep -q -- '--only model=deltanet: no run of the grid has it (the grid.s model: linear, delta)' "$tmp/only3.txt"
check "... and stores nothing" test ! -e "$tmp/only-bad.sqlite"

# 14. Messages a person can read.
"$bin" --version >"$tmp/v.txt" 2>&1
check "--version prints the version" grep -qE '^deltabench [0-9]+\.[0-9]+\.[0-9]+ \(torch' "$tmp/v.txt"
"$bin" train "$src/configs/mqar-tiny.toml" --epochs 0 >"$tmp/r1.txt" 2>&1
check "--epochs 0 is a short range error" grep -q "expected an integer >= 1, got 0" "$tmp/r1.txt"
check "--epochs 0 prints no huge number" bash -c "! grep -qE '[0-9]{30}' '$tmp/r1.txt'"
"$bin" train "$src/configs/mqar-tiny.toml" --max-steps 0 >"$tmp/r2.txt" 2>&1
check "--max-steps 0 is an error" grep -q "max-steps.*expected an integer >= 1, got 0" "$tmp/r2.txt"
"$bin" tasks show mqar --seed -3 >"$tmp/r3.txt" 2>&1
check "a negative seed is an error" grep -q "expected an integer >= 0, got -3" "$tmp/r3.txt"

if ((failures)); then
  echo "$failures checks failed"
  exit 1
fi
echo "all checks passed"
