#!/usr/bin/env bash
# Tests bench/fla_compare.py without a GPU or FLA: it reads every case of the registry, turns
# kernels_bench's JSON (medians only) into the kernel CSV with its provenance, and
# `deltabench kernel-report` reads that CSV back.
#   fla_compare_test.sh <python with torch> <deltabench binary> <source dir>
set -uo pipefail
python="$1"
bin="$2"
src="$3"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/../support/check.sh"

cases=$("$bin" kernel-cases | wc -l)
parsed=$("$python" "$src/bench/fla_compare.py" --list-cases | wc -l)
check "the script reads every case of the registry ($cases)" test "$parsed" = "$cases"

# Run names as Google Benchmark writes them (the H100 run at 2f1691d): the case, then the run's settings.
cat >"$tmp/bench.json" <<'JSON'
{"context": {"device": "Test GPU", "commit": "abc123", "copy_GB_per_s": "4100.5", "matmul_TFLOP_per_s": "690.25"},
 "benchmarks": [
 {"run_name": "delta_rule/B16/T2048/H16/K128/iterations:1/repeats:15/manual_time", "aggregate_name": "mean",
  "ms": 9.0, "call_ms": 9.5},
 {"run_name": "delta_rule/B16/T2048/H16/K128/iterations:1/repeats:15/manual_time", "aggregate_name": "median",
  "ms": 1.5, "call_ms": 1.6},
 {"run_name": "sdpa/B16/T2048/H16/K128/iterations:1/repeats:15/manual_time", "aggregate_name": "median",
  "ms": 0.54, "call_ms": 0.56},
 {"run_name": "decode_gated_delta_rule/B64/T1/H16/K128/iterations:1/repeats:15/manual_time",
  "aggregate_name": "median", "ms": 0.05, "call_ms": 0.06},
 {"run_name": "fwd_bwd_delta_rule/B16/T2048/H16/K128/iterations:1/repeats:15/manual_time",
  "aggregate_name": "median", "ms": 2.5, "call_ms": 2.6},
 {"run_name": "reference:fwd_bwd_delta_rule/B16/T2048/H16/K128/iterations:1/repeats:15/manual_time",
  "aggregate_name": "median", "ms": 40.0, "call_ms": 41.0},
 {"run_name": "fwd_bwd_sdpa/B16/T2048/H16/K128/iterations:1/repeats:15/manual_time",
  "aggregate_name": "median", "ms": 1.9, "call_ms": 2.0},
 {"run_name": "fwd_bwd_gated_delta_rule/B16/T2048/H16/K128/fp16/iterations:1/repeats:15/manual_time",
  "aggregate_name": "median", "ms": 3.5, "call_ms": 3.6},
 {"run_name": "delta_rule/B4/T8192/H16/K128/iterations:1/repeats:15/manual_time", "error_occurred": true,
  "error_message": "delta_rule: backend = kernel, but deltabench's CUDA kernels cannot serve this call:\n  why"}]}
JSON
"$python" "$src/bench/fla_compare.py" --ours "$tmp/bench.json" --out "$tmp/kernels.csv" >"$tmp/log.txt" 2>&1
check "without FLA the script exits 0" test $? -eq 0
check "the CSV names the device and commit" grep -qx "# device: Test GPU" "$tmp/kernels.csv"
check "the CSV says FLA did not run" grep -qx "# fla: not run" "$tmp/kernels.csv"
check "the CSV carries the measured copy rate" grep -qx "# copy_GB_per_s: 4100.5" "$tmp/kernels.csv"
check "the CSV carries the measured matrix rate" grep -qx "# matmul_TFLOP_per_s: 690.25" "$tmp/kernels.csv"
check "medians, not means, become rows" grep -qx "delta_rule,16,2048,16,128,128,bf16,deltabench,1.500000,1.600000" "$tmp/kernels.csv"
check "SDPA rows are torch-sdpa" grep -qx "sdpa,16,2048,16,128,128,bf16,torch-sdpa,0.540000,0.560000" "$tmp/kernels.csv"
check "decode rows keep V" grep -qx "decode_gated_delta_rule,64,1,16,128,128,bf16,deltabench,0.050000,0.060000" "$tmp/kernels.csv"
check "forward + backward rows are deltabench's" grep -qx "fwd_bwd_delta_rule,16,2048,16,128,128,bf16,deltabench,2.500000,2.600000" "$tmp/kernels.csv"
check "reference: rows are deltabench-reference" \
  grep -qx "fwd_bwd_delta_rule,16,2048,16,128,128,bf16,deltabench-reference,40.000000,41.000000" "$tmp/kernels.csv"
check "an fp16 case's row says fp16" \
  grep -qx "fwd_bwd_gated_delta_rule,16,2048,16,128,128,fp16,deltabench,3.500000,3.600000" "$tmp/kernels.csv"
check "forward + backward SDPA rows are torch-sdpa" grep -qx "fwd_bwd_sdpa,16,2048,16,128,128,bf16,torch-sdpa,1.900000,2.000000" "$tmp/kernels.csv"
# The CSV is written by rename (rewritten after each FLA case on a GPU): nothing half-written stays behind.
check "no partial CSV remains" test ! -e "$tmp/kernels.csv.partial"
check "a case kernels_bench skipped is named with its sentence, on one line" \
  grep -qx "# not timed (deltabench): delta_rule/B4/T8192/H16/K128: delta_rule: backend = kernel, but deltabench's CUDA kernels cannot serve this call: why" "$tmp/kernels.csv"
check "without FLA cases no FLA count is claimed" bash -c "! grep -q '^# fla cases' '$tmp/kernels.csv'"
"$bin" kernel-report "$tmp/kernels.csv" --out "$tmp/report" >"$tmp/report.txt" 2>&1
check "deltabench kernel-report reads it" test $? -eq 0
check "the report says why a case of ours was not timed" \
  grep -q "not timed (deltabench): delta_rule/B4/T8192/H16/K128: delta_rule: backend = kernel, but" "$tmp/report/table.md"
check "the report states the 16 x 2K target as missed" grep -q "0.600 (missed)" "$tmp/report/table.md"
check "the report states the B=64 decode target as met" grep -q "0.060 (met)" "$tmp/report/table.md"
check "the report has the forward + backward table with the reference and SDPA beside" \
  grep -q "^| fwd_bwd_delta_rule B16 x T2048, H16, K128 V128 | 2.5000 | 40.0000 | missing | n/a | 1.9000 | .* | 2.780 (met) |" "$tmp/report/table.md"
check "the report's floor is at the rates measured in the run" \
  grep -q "4.10 TB/s and 690 TFLOP/s (this machine's copy and bf16 matrix rates, measured in the run)" "$tmp/report/table.md"

if ((failures)); then
  cat "$tmp/log.txt" "$tmp/report.txt"
  echo "$failures check(s) failed"
  exit 1
fi
