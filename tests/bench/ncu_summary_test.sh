#!/usr/bin/env bash
# Tests bench/ncu_summary.py on a small CSV in Nsight Compute's per-launch format: the program's own
# lines before the header are skipped, durations in ns, us and ms (with thousands separators) add up by
# kernel, the parameter list goes and the template arguments stay, the largest comes first; a file with
# no header or an unknown unit is an error naming the file.
#   ncu_summary_test.sh <python> <source dir>
set -uo pipefail
python="$1"
src="$2"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/../support/check.sh"

header='"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Block Size","Grid Size","Device","CC","Section Name","Metric Name","Metric Unit","Metric Value"'
row() {  # $1 id, $2 kernel name, $3 unit, $4 value
  printf '"%s","1","b","h","%s","1","7","(128, 1, 1)","(10, 1, 1)","0","9.0","Command line profiler metrics","gpu__time_duration.sum","%s","%s"\n' "$1" "$2" "$3" "$4"
}
{
  echo "==PROF== Connected to process 1"
  echo "train_step/mixer:2 ... 11.8 ms"
  echo "$header"
  row 0 'void at::native::vectorized_elementwise_kernel<4, at::native::AddFunctor<float>, std::array<char *, 3>>(int, at::native::AddFunctor<float>, std::array<char *, 3>)' usecond 12.50
  row 1 'void at::native::vectorized_elementwise_kernel<4, at::native::AddFunctor<float>, std::array<char *, 3>>(int, at::native::AddFunctor<float>, std::array<char *, 3>)' nsecond 2,500
  row 2 'void deltabench::cuda::chunk_state_backward_tc_kernel<128, 32>(deltabench::cuda::Params)' msecond 1.5
  row 3 'void at::native::vectorized_elementwise_kernel<4, at::native::MulFunctor<float>, std::array<char *, 3>>(int, at::native::MulFunctor<float>, std::array<char *, 3>)' usecond 100
} >"$tmp/profile.csv"
"$python" "$src/bench/ncu_summary.py" "$tmp/profile.csv" --label "test" >"$tmp/out.txt" 2>&1
check "it reads the CSV (exit 0)" test $? -eq 0
cat "$tmp/out.txt"
check "the total and the launches" grep -q '^ncu_summary (test): 4 launches, 1.615 ms in all$' "$tmp/out.txt"
check "the largest kernel first, its template arguments kept, its parameters gone" \
  bash -c "sed -n 2p '$tmp/out.txt' | grep -qE '^ +1.500 ms +92.9% +1 launches +deltabench::cuda::chunk_state_backward_tc_kernel<128, 32>$'"
check "launches of one kernel add up across units (12.5 us + 2,500 ns)" \
  grep -qE '^ +0.015 ms +0.9% +2 launches +at::native::vectorized_elementwise_kernel<4, at::native::AddFunctor<float>, std::array<char \*, 3>>$' "$tmp/out.txt"
check "another functor is another line" grep -qE '^ +0.100 ms .*MulFunctor' "$tmp/out.txt"

echo "no header here" >"$tmp/bad.csv"
"$python" "$src/bench/ncu_summary.py" "$tmp/bad.csv" >"$tmp/bad.txt" 2>&1
check "a file without the header is an error" test $? -ne 0
check "the error names the file" grep -q "bad.csv: no CSV header" "$tmp/bad.txt"
{ echo "$header"; row 0 'void k()' furlong 3; } >"$tmp/unit.csv"
"$python" "$src/bench/ncu_summary.py" "$tmp/unit.csv" >"$tmp/unit.txt" 2>&1
check "an unknown unit is an error naming it" grep -q "unit.csv: unknown unit 'furlong'" "$tmp/unit.txt"
exit $((failures > 0))
