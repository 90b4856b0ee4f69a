#!/usr/bin/env bash
# Tests apps/deltabench/tasks_command.cpp through the program, as a user runs it.
#   tasks_command_test.sh <deltabench binary> <source dir>
set -uo pipefail
bin="$1"
src="$2"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/../support/check.sh"

# The issue's example prints readable examples: query positions with input -> target.
"$bin" tasks show mqar --seq-len 64 --num-kv-pairs 4 --vocab-size 8192 --seed 0 >"$tmp/show.txt" 2>&1
check "tasks show mqar exits 0" test $? -eq 0
check "tasks show mqar marks targets" grep -qE 'pos [0-9]+: [0-9]+ -> [0-9]+' "$tmp/show.txt"
check "tasks show mqar prints 3 examples" test "$(grep -c '^example ' "$tmp/show.txt")" -eq 3

# Exported files are byte-identical to numpy's np.save of the same data (the fixture).
"$bin" tasks export mqar --vocab-size 8192 --seq-len 64 --num-kv-pairs 4 --num-examples 32 \
  --random-non-queries off --seed 0 --out "$tmp/sub/mq" >/dev/null
fixture="$src/tests/fixtures/mqar/s0-V8192-L64-kv4-N32-a0.01"
check "export inputs equal numpy's file" cmp -s "$tmp/sub/mq.inputs.npy" "$fixture.inputs.npy"
check "export targets equal numpy's file" cmp -s "$tmp/sub/mq.targets.npy" "$fixture.targets.npy"

# A MAD setting by name, the test split.
"$bin" tasks show --setting noisy-in-context-recall:frac_noise=0.8 --split test --count 1 >"$tmp/mad.txt" 2>&1
check "MAD setting shows" grep -q -- '--frac-noise 0.8' "$tmp/mad.txt"
# More than 40 scored positions: the training split's are next-token targets, the test split's are not.
"$bin" tasks show --setting compression:seq_len=64 --split test --count 1 >"$tmp/comp-test.txt" 2>&1
check "test targets are not called next-token targets" grep -q 'targets: 64 positions scored (more than 40: not listed)' "$tmp/comp-test.txt"
"$bin" tasks show --setting compression:seq_len=64 --split train --count 1 >"$tmp/comp-train.txt" 2>&1
check "training targets are next-token targets" grep -q 'positions scored (next-token targets)' "$tmp/comp-train.txt"
check "tasks list has 66 settings" test "$("$bin" tasks list | grep -cE '^    [a-z-]+:(baseline|[a-z_]+=)')" -eq 66

# Bad input: exit code 2 and a sentence naming the parameter.
"$bin" tasks show mqar --num-kv-pairs 64 --seq-len 128 >"$tmp/err.txt" 2>&1
check "bad parameter exits 2" test $? -eq 2
check "bad parameter is named" grep -q 'num_kv_pairs \* 4 must be <= seq_len (got 64 \* 4 > 128)' "$tmp/err.txt"
"$bin" tasks show mqar --frac-noise 0.5 >"$tmp/err2.txt" 2>&1
check "a parameter of another task is refused" grep -q "mqar: unknown parameter 'frac_noise'" "$tmp/err2.txt"

echo "$failures failed"
exit $((failures > 0))
