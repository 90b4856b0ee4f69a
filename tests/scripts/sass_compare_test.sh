#!/usr/bin/env bash
# Tests scripts/sass_compare.py on small listings in cuobjdump's format: the same code under another
# file's anonymous-namespace tag, other addresses and spacing matches; one changed instruction, a
# missing function or an extra one does not.
#   sass_compare_test.sh <python> <source dir>
set -uo pipefail
python="$1"
src="$2"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/../support/check.sh"

listing() {  # $1: the file tag, $2: the second instruction, $3: a second function's name (or none)
  cat <<SASS

Fatbin elf code:
================
arch = sm_90a
code version = [1,8]
host = linux
compile_size = 64bit

	code for sm_90a
		Function : _ZN10deltabench4cuda49_GLOBAL__N__4972956f_16_${1}_cu_592c517b6kernelEv
	.headerflags	@"EF_CUDA_SM90 EF_CUDA_VIRTUAL_SM(EF_CUDA_SM90)"
        /*0000*/                   LDC R1, c[0x0][0x28] ;                 /* 0x00000a00ff017b82 */
                                                                          /* 0x000fe20000000800 */
        /*0010*/                   $2 ;   /* 0x0000000000037919 */
                                                                          /* 0x000e220000002600 */
		..........
SASS
  if [[ $3 != none ]]; then
    cat <<SASS
		Function : $3
        /*0000*/                   EXIT ;                                 /* 0x000000000000794d */
		..........
SASS
  fi
}

listing chunk_forward "S2R R3, SR_CTAID.Y" none >"$tmp/before.sass"
listing chunk_fwd "S2R R3,   SR_CTAID.Y" none | sed 's|/\*0010\*/|/*0020*/|; s/4972956f_16/8a80a48f_12/' >"$tmp/moved.sass"
listing chunk_fwd "S2R R3, SR_CTAID.X" none >"$tmp/changed.sass"
listing chunk_forward "S2R R3, SR_CTAID.Y" _Z5extrav >"$tmp/extra.sass"

"$python" "$src/scripts/sass_compare.py" "$tmp/before.sass" "$tmp/moved.sass" >"$tmp/log.txt" 2>&1
check "a kernel moved to another file, other addresses and spacing: the same" test $? -eq 0
check "it counts the instruction lines" grep -q "1 functions before, 1 after, 4 instruction lines before" "$tmp/log.txt"
"$python" "$src/scripts/sass_compare.py" "$tmp/before.sass" "$tmp/changed.sass" >>"$tmp/log.txt" 2>&1
check "one changed instruction: different" test $? -eq 1
check "it shows the changed line" grep -q "after:  S2R R3, SR_CTAID.X" "$tmp/log.txt"
"$python" "$src/scripts/sass_compare.py" "$tmp/before.sass" "$tmp/extra.sass" >>"$tmp/log.txt" 2>&1
check "an extra function: different" test $? -eq 1
"$python" "$src/scripts/sass_compare.py" "$tmp/extra.sass" "$tmp/before.sass" >>"$tmp/log.txt" 2>&1
check "a missing function: different" test $? -eq 1
"$python" "$src/scripts/sass_compare.py" "$tmp/before.sass" >>"$tmp/log.txt" 2>&1
check "a missing argument: usage, status 2" test $? -eq 2

if ((failures)); then
  cat "$tmp/log.txt"
  echo "$failures check(s) failed"
  exit 1
fi
echo "sass_compare: all checks passed"
