#!/usr/bin/env bash
# Tests scripts/prebuilt.sh and its use in scripts/device.sh: programs packed here are unpacked on the GPU machine in
# place of the build only where they were built from the tree's sources against its torch and hold every target of
# the mode; anything else is a line saying why, and device.sh builds. Small stand-in programs (/bin/true, /bin/echo)
# and a stand-in python that answers for torch.
#   prebuilt_test.sh <source dir>
set -uo pipefail
src="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/../support/check.sh"
source "$src/scripts/prebuilt.sh"

# A tree with sources and the scripts device.sh sources; a build with two programs.
root="$tmp/root"
mkdir -p "$root/kernels" "$root/tests" "$root/scripts" "$root/bench" "$tmp/build/tests"
echo "cmake_minimum_required(VERSION 3.25)" >"$root/CMakeLists.txt"
echo "__global__ void k() {}" >"$root/kernels/k.cu"
cp "$src/scripts/prebuilt.sh" "$src/scripts/device.sh" "$src/scripts/triton_cache.sh" "$root/scripts/"
cp /bin/true "$tmp/build/tests/kernels_cuda_tests"
cp /bin/echo "$tmp/build/deltabench"
# The stand-in python: torch's version and library folder from the environment, anything else to python3.
cat >"$tmp/python" <<'PY'
#!/usr/bin/env bash
case "${2:-}" in
  *"torch.__version__"*) [[ -n "${FAKE_TORCH:-}" ]] && echo "$FAKE_TORCH" || exit 1 ;;
  *"torch.__file__"*) echo "/nonexistent/torch/lib" ;;
  *) exec python3 "$@" ;;
esac
PY
chmod +x "$tmp/python"
export FAKE_TORCH=2.11.0+cu130

prebuilt_pack "$root" "$tmp/build" "$root/.prebuilt" 2.11.0+cu130 tests/kernels_cuda_tests deltabench >"$tmp/pack.txt" 2>&1
check "pack exits 0" test $? -eq 0
check "it says 2 programs packed" grep -q "prebuilt: 2 program(s) packed into $root/.prebuilt" "$tmp/pack.txt"
check "the MANIFEST names the sources' hash, torch and each program" \
  bash -c "grep -qx 'sources $(prebuilt_sources "$root")' '$root/.prebuilt/MANIFEST' &&
           grep -qx 'torch 2.11.0+cu130' '$root/.prebuilt/MANIFEST' &&
           grep -qx 'file tests/kernels_cuda_tests' '$root/.prebuilt/MANIFEST' && grep -qx 'file deltabench' '$root/.prebuilt/MANIFEST'"
check "the programs are compressed" test -f "$root/.prebuilt/tests/kernels_cuda_tests.xz"
prebuilt_pack "$root" "$tmp/build" "$tmp/elsewhere" 2.11.0+cu130 bench/stage_bench >"$tmp/nopack.txt" 2>&1
check "packing a program that was not built is an error naming it" \
  bash -c "grep -q 'prebuilt_pack: $tmp/build/bench/stage_bench is not a built program' '$tmp/nopack.txt'"

# Used: the programs in place, runnable, the library path and source tree exported.
(
  prebuilt_use "$root" "$tmp/dev" "$tmp/python" kernels_cuda_tests deltabench >"$tmp/use.txt" 2>&1
  echo "rc=$? LD_LIBRARY_PATH=$LD_LIBRARY_PATH DELTABENCH_SOURCE_DIR=${DELTABENCH_SOURCE_DIR:-}" >>"$tmp/use.txt"
)
check "use exits 0 and says so" grep -q "prebuilt binaries in place of the build: 2 program(s) for sources $(prebuilt_sources "$root"), torch 2.11.0+cu130" "$tmp/use.txt"
check "... exporting the carried libraries' path first and the source tree" \
  grep -q "rc=0 LD_LIBRARY_PATH=$root/.prebuilt/lib:/nonexistent/torch/lib:.* DELTABENCH_SOURCE_DIR=$root\$" "$tmp/use.txt"
check "the programs are in the build folder and run" "$tmp/dev/tests/kernels_cuda_tests"
check "... byte for byte the stripped programs" bash -c "strip -o '$tmp/t' /bin/echo && cmp -s '$tmp/t' '$tmp/dev/deltabench'"

# Not used, with the reason; nothing left in the build folder.
use_fails() {  # use_fails DESCRIPTION EXPECTED-LINE TARGET...
  local what="$1" line="$2"
  shift 2
  rm -rf "$tmp/dev2"
  prebuilt_use "$root" "$tmp/dev2" "$tmp/python" "$@" >"$tmp/why.txt" 2>&1
  check "$what: exit 1" test $? -eq 1
  check "$what: saying why" grep -qF "$line" "$tmp/why.txt"
  check "$what: no program unpacked" test ! -e "$tmp/dev2/deltabench"
}
use_fails "a target they do not hold" "prebuilt binaries not used: they hold no stage_bench" kernels_cuda_tests stage_bench
use_fails "a mode that builds every target" "this mode builds every target, and they hold only some"
FAKE_TORCH=2.12.0 use_fails "another torch" "built against torch 2.11.0+cu130, this machine's python has 2.12.0" deltabench
FAKE_TORCH="" use_fails "no torch" "this machine's python has none" deltabench
# A call carries only the programs it runs: another's absence is no matter, a target's own is said.
mv "$root/.prebuilt/deltabench.xz" "$tmp/deltabench.xz"
rm -rf "$tmp/dev2"
(prebuilt_use "$root" "$tmp/dev2" "$tmp/python" kernels_cuda_tests >"$tmp/part.txt" 2>&1)
check "without another program's file: used (exit 0)" test $? -eq 0
check "... that program alone unpacked" bash -c "[[ -x '$tmp/dev2/tests/kernels_cuda_tests' && ! -e '$tmp/dev2/deltabench' ]]"
use_fails "a target whose file was not carried" "prebuilt binaries not used: $root/.prebuilt/deltabench.xz is missing or does not unpack" \
  kernels_cuda_tests deltabench
check "... nor the target before it left unpacked" test ! -e "$tmp/dev2/tests/kernels_cuda_tests"
mv "$tmp/deltabench.xz" "$root/.prebuilt/deltabench.xz"
packed=$(prebuilt_sources "$root")
echo "// changed" >>"$root/kernels/k.cu"
use_fails "a changed source" "built from sources $packed, this tree's are $(prebuilt_sources "$root")" deltabench
check "notes, results and scripts are not sources" bash -c "
  source '$src/scripts/prebuilt.sh'; before=\$(prebuilt_sources '$root')
  mkdir -p '$root/results'; echo x >'$root/results/a.md'; echo x >'$root/kernels/NOTES.md'; echo x >>'$root/scripts/prebuilt.sh'
  [[ \$(prebuilt_sources '$root') == \"\$before\" ]]"
mv "$root/.prebuilt" "$tmp/carried"
rm -rf "$tmp/dev2"
prebuilt_use "$root" "$tmp/dev2" "$tmp/python" deltabench >"$tmp/none.txt" 2>&1
check "nothing carried: exit 1, silently" bash -c "[[ $? -eq 1 && ! -s '$tmp/none.txt' ]]"

# device.sh --build: carried programs for the tree take the build's place, and the summary says so.
prebuilt_pack "$root" "$tmp/build" "$root/.prebuilt" 2.11.0+cu130 tests/kernels_cuda_tests deltabench >/dev/null 2>&1
OUT="$tmp/out" DELTABENCH_BUILD_DIR="$tmp/bd" DELTABENCH_PYTHON="$tmp/python" DELTABENCH_COMMIT=test \
  DELTABENCH_BUILD_TARGETS="kernels_cuda_tests deltabench" bash "$root/scripts/device.sh" --build >"$tmp/device.txt" 2>&1
check "device.sh --build with them exits 0" test $? -eq 0
check "... its summary says the prebuilt programs took the build's place" \
  grep -q "^- prebuilt binaries in place of the build: 2 program(s)" "$tmp/out/summary.md"
check "... and no build ran" bash -c "[[ ! -e '$tmp/out/build.log' && -x '$tmp/bd/deltabench' ]]"
echo "// changed again" >>"$root/kernels/k.cu"
OUT="$tmp/out" DELTABENCH_BUILD_DIR="$tmp/bd2" DELTABENCH_PYTHON="$tmp/python" DELTABENCH_COMMIT=test \
  DELTABENCH_BUILD_TARGETS="deltabench" bash "$root/scripts/device.sh" --build >"$tmp/device2.txt" 2>&1
check "for another tree its summary says why not, and it builds" \
  bash -c "grep -q '^- prebuilt binaries not used: built from sources' '$tmp/out/summary.md' && grep -q '^- build: rc=' '$tmp/out/summary.md'"
exit $((failures > 0))
