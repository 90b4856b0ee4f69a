#!/usr/bin/env bash
# The kernel case registry (bench/kernel_cases.toml) expands to the same cases in C++ (`deltabench
# kernel-cases`, which kernels_bench and the report use) and in Python (`fla_compare.py --list-cases`,
# which times FLA): the same lines in the same order. Then a registry given by DELTABENCH_KERNEL_CASES
# is the one both read. $1: the deltabench binary.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
deltabench="${1:?usage: kernel_cases_test.sh <deltabench binary>}"
python="${DELTABENCH_PYTHON:-python3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$deltabench" kernel-cases >"$tmp/cpp.txt"
"$python" "$root/bench/fla_compare.py" --list-cases >"$tmp/py.txt"
diff "$tmp/cpp.txt" "$tmp/py.txt"
[[ $(wc -l <"$tmp/cpp.txt") -gt 24 ]] || { echo "expected the fixed cases and the sweeps' cases" >&2; exit 1; }

cat >"$tmp/cases.toml" <<'TOML'
[sweeps.b]
title = "two lengths"
ops = ["sdpa", "delta_rule"]
T = [1024, 4096]
tokens = 2048
H = 2
K = 64
V = 32

[sweeps.d]
title = "decode over the batch"
ops = ["decode_delta_rule"]
T = [1]
B = [8, 1]
H = 2
K = 64
V = 64

[sweeps.h]
title = "the same lengths in fp16"
ops = ["delta_rule"]
T = [1024, 4096]
tokens = 2048
H = 2
K = 64
V = 32
dtype = "fp16"
TOML
printf '%s\n' "sdpa 2 1024 2 64 32 bf16" "sdpa 1 4096 2 64 32 bf16" "delta_rule 2 1024 2 64 32 bf16" \
  "delta_rule 1 4096 2 64 32 bf16" "decode_delta_rule 8 1 2 64 64 bf16" "decode_delta_rule 1 1 2 64 64 bf16" \
  "delta_rule 2 1024 2 64 32 fp16" "delta_rule 1 4096 2 64 32 fp16" >"$tmp/want.txt"
DELTABENCH_KERNEL_CASES="$tmp/cases.toml" "$deltabench" kernel-cases >"$tmp/cpp2.txt"
DELTABENCH_KERNEL_CASES="$tmp/cases.toml" "$python" "$root/bench/fla_compare.py" --list-cases >"$tmp/py2.txt"
diff "$tmp/want.txt" "$tmp/cpp2.txt"
diff "$tmp/want.txt" "$tmp/py2.txt"
echo "kernel_cases_test: C++ and Python agree on $(wc -l <"$tmp/cpp.txt") cases"
