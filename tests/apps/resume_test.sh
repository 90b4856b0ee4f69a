#!/usr/bin/env bash
# Tests what a user meets when a suite run is killed in the middle of a run (a Slurm preemption, the
# end of a GPU window): `deltabench run` saves each run's state at the end of an epoch beside the store
# (train/resume.h), kill -9 comes, the same command goes on from the saved epoch, and the store then
# holds what the run that was never killed holds, epoch by epoch.
#   resume_test.sh <deltabench binary> <source dir>
set -uo pipefail
bin="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
src="$2"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=1
source "$(dirname "${BASH_SOURCE[0]}")/../support/check.sh"
one=()
if "$bin" info | grep -qE '^cuda devs +[1-9]'; then one=(--device cpu); fi  # bit for bit: the CPU

# One run of a tiny MQAR, 40 epochs of 8 steps with dropout: long enough to be killed in the middle.
cat >"$tmp/long.toml" <<'TOML'
[suite]
name = "long"
description = "Test fixture: one run of 40 epochs."
select = ["lr"]

[grid]
tasks = ["short"]
models = ["delta"]
d_model = [16]
lr = [3e-3]
weight_decay = [0.1]
seed = [7]

[base]
[base.task]
name = "mqar"
train_examples = 256
test_examples = 16
[base.task.params]
vocab_size = 32
seq_len = 16
num_kv_pairs = 2
[base.model]
num_layers = 1
state_mixer = "none"
embed_dropout = 0.1
[base.train]
epochs = 40
batch_size = 32
early_stop = 0

[tasks.short]
label = "L=16"

[models.delta]
label = "DeltaNet"
[models.delta.model.mixer]
kind = "delta_net"
num_heads = 2
chunk_size = 16
TOML
epochs_csv() {  # the store's per-epoch rows without the wall-clock column
  "$bin" runs export --store "$1" --epochs --format csv --out "$1.csv" >/dev/null 2>&1 &&
    python3 - "$1.csv" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
for r in rows:
    print(",".join(v for k, v in sorted(r.items()) if "wall" not in k and k not in ("finished_at",)))
EOF
}

"$bin" run "$tmp/long.toml" "${one[@]}" --store "$tmp/whole.sqlite" --no-report --resume-interval 0 >"$tmp/whole.txt" 2>&1
check "the run that is never killed exits 0" test $? -eq 0
check "a finished run leaves no state" bash -c "[ -z \"\$(ls -A '$tmp/whole.sqlite.resume' 2>/dev/null)\" ]"

"$bin" run "$tmp/long.toml" "${one[@]}" --store "$tmp/killed.sqlite" --no-report --resume-interval 0 >"$tmp/killed.txt" 2>&1 &
pid=$!
for _ in $(seq 600); do  # until the second epoch's state is there (at most 60 s)
  ls "$tmp"/killed.sqlite.resume/*/state.pt >/dev/null 2>&1 && grep -q "epoch 2/40" "$tmp/killed.txt" && break
  sleep 0.1
done
kill -9 "$pid"
wait "$pid" 2>/dev/null
check "the killed run left its state beside the store" bash -c "ls '$tmp'/killed.sqlite.resume/*/state.pt >/dev/null"
"$bin" runs list --store "$tmp/killed.sqlite" >"$tmp/killed-list.txt" 2>&1
check "and recorded no result" bash -c "! grep -q 'short/' '$tmp/killed-list.txt'"

"$bin" run "$tmp/long.toml" "${one[@]}" --store "$tmp/killed.sqlite" --no-report --resume-interval 0 >"$tmp/resumed.txt" 2>&1
check "the same command goes on and exits 0" test $? -eq 0
check "it says the run resumed after a saved epoch" grep -qE 'accuracy [0-9.]+ \(40 epochs, .*\), resumed after epoch [0-9]+' \
  "$tmp/resumed.txt"
check "its first progress line is after that epoch, not epoch 1" bash -c "! grep -q 'epoch 1/40' '$tmp/resumed.txt'"
run_id=$("$bin" runs list --store "$tmp/killed.sqlite" | grep -o 'short/[^ ]*' | head -n 1)
"$bin" runs show --store "$tmp/killed.sqlite" "$run_id" >"$tmp/show.txt" 2>&1
check "the run's record says it resumed" grep -q 'resumed after epoch' "$tmp/show.txt"
check "the state is gone once the run is recorded" bash -c "[ -z \"\$(ls -A '$tmp/killed.sqlite.resume' 2>/dev/null)\" ]"
epochs_csv "$tmp/whole.sqlite" >"$tmp/whole.epochs"
epochs_csv "$tmp/killed.sqlite" >"$tmp/killed.epochs"
check "40 epochs recorded" test "$(wc -l <"$tmp/whole.epochs")" -eq 40
check "every epoch's losses and accuracy equal the unkilled run's" cmp "$tmp/whole.epochs" "$tmp/killed.epochs"

# A run with a saved state goes first: shard 1/2 of a two-run grid (its second run) killed mid-run, then
# the whole grid trains that run before the grid's first.
sed 's/^lr = \[3e-3\]/lr = [3e-3, 1e-3]/' "$tmp/long.toml" >"$tmp/two.toml"
"$bin" run "$tmp/two.toml" "${one[@]}" --store "$tmp/two.sqlite" --shard 1/2 --no-report --resume-interval 0 \
  >"$tmp/two-shard.txt" 2>&1 &
pid=$!
for _ in $(seq 600); do
  ls "$tmp"/two.sqlite.resume/*/state.pt >/dev/null 2>&1 && break
  sleep 0.1
done
kill -9 "$pid"
wait "$pid" 2>/dev/null
"$bin" run "$tmp/two.toml" "${one[@]}" --store "$tmp/two.sqlite" --no-report --resume-interval 0 >"$tmp/two.txt" 2>&1
check "the whole grid exits 0" test $? -eq 0
check "it says one run goes on from its saved state, first" grep -q "1 run(s) go on from their saved state" "$tmp/two.txt"
check "the grid's second run (the one with a state) trains first" \
  bash -c "grep -m 1 'training on' '$tmp/two.txt' | grep -q 'lr0.001/'"

# A state saved at another commit (a GPU window's, carried to the next session's machine): by default the run
# starts over; with --resume-any-commit, forwarded to --jobs' workers, it goes on, and its record names each commit.
DELTABENCH_COMMIT=aaaa1111 "$bin" run "$tmp/long.toml" "${one[@]}" --store "$tmp/c.sqlite" --no-report \
  --resume-interval 0 >"$tmp/c-killed.txt" 2>&1 &
pid=$!
for _ in $(seq 600); do
  ls "$tmp"/c.sqlite.resume/*/state.pt >/dev/null 2>&1 && grep -q "epoch 2/40" "$tmp/c-killed.txt" && break
  sleep 0.1
done
kill -9 "$pid"
wait "$pid" 2>/dev/null
DELTABENCH_COMMIT=bbbb2222 "$bin" run "$tmp/long.toml" "${one[@]}" --store "$tmp/c.sqlite" --no-report --resume-interval 0 \
  --jobs 2 --resume-any-commit >"$tmp/c.txt" 2>&1
check "--resume-any-commit with --jobs 2 exits 0" test $? -eq 0
check "the run went on from the other commit's state" grep -qE 'resumed after epoch [0-9]+' "$tmp/c.txt"
run_id=$("$bin" runs list --store "$tmp/c.sqlite" | grep -o 'short/[^ ]*' | head -n 1)
"$bin" runs show --store "$tmp/c.sqlite" "$run_id" >"$tmp/c-show.txt" 2>&1
check "its record names both commits and where the second began" \
  grep -qE 'trained at commit aaaa1111 from epoch 1, bbbb2222 from epoch [0-9]+' "$tmp/c-show.txt"
epochs_csv "$tmp/c.sqlite" >"$tmp/c.epochs"
check "every epoch's losses and accuracy equal the unkilled run's" cmp "$tmp/whole.epochs" "$tmp/c.epochs"
"$bin" run "$tmp/long.toml" "${one[@]}" --store "$tmp/e.sqlite" --no-resume --resume-any-commit >"$tmp/e.txt" 2>&1
check "--resume-any-commit with --no-resume is an error (exit 2)" test $? -eq 2
check "it names both flags" grep -q -- "--resume-any-commit and --no-resume: give one, not both" "$tmp/e.txt"

"$bin" run "$tmp/long.toml" "${one[@]}" --store "$tmp/e.sqlite" --no-resume --resume-dir "$tmp/x" >"$tmp/e.txt" 2>&1
check "--resume-dir with --no-resume is an error (exit 2)" test $? -eq 2
check "it names both flags" grep -q -- "--resume-dir and --no-resume: give one, not both" "$tmp/e.txt"

echo "$failures checks failed"
exit $((failures > 0))
