#!/usr/bin/env bash
# Tests scripts/resume_states.sh, which carries runs' resume states from a GPU window to the next session's: the
# states packed within a budget, the smallest first, in parts the device tool brings back (at most 16 MiB); the
# parts landed whole, replacing the states the window was given; seeding a machine that has newer states of its
# own; and the errors for parts that do not make a whole or a set that cannot be put in place.
#   resume_states_test.sh <source dir>
set -uo pipefail
src="$1"
script="$src/scripts/resume_states.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/../support/check.sh"

state() {  # state DIR HASH MIB: a state.pt of MIB MiB of random bytes
  mkdir -p "$1/$2"
  head -c "$(($3 * 1024 * 1024))" /dev/urandom >"$1/$2/state.pt"
}
state "$tmp/machine" aaaa 7
state "$tmp/machine" bbbb 14
state "$tmp/machine" cccc 20
state "$tmp/machine" dddd 30
mkdir -p "$tmp/machine/eeee"  # a run with no state yet: nothing to pack

bash "$script" pack "$tmp/machine" "$tmp/out" 36 >"$tmp/pack.txt" 2>&1
check "pack exits 0" test $? -eq 0
check "it keeps the smallest states within 36 MiB (7 + 14) and leaves 2 out" \
  grep -q "resume states packed: 2 (21 MiB, in 2 part(s)); left out over 36 MiB: 2" "$tmp/pack.txt"
check "no part is over 15 MiB" bash -c "! find '$tmp/out' -name 'resume.tar.part*' -size +15360k | grep -q ."
check "the parts are named as the device tool brings files back" \
  bash -c "ls '$tmp/out' | grep -qx 'resume.tar.part00' && ! ls '$tmp/out' | grep -v '^[A-Za-z0-9._-]*$'"

# The next session's tree held older states, one of a run that has since finished: the landed set replaces them.
state "$tmp/tree/.store/suite.resume" zzzz 1
bash "$script" land "$tmp/out" "$tmp/tree/.store/suite.resume" >"$tmp/land.txt" 2>&1
check "land exits 0" test $? -eq 0
check "it says 2 landed and 2 left out" grep -q "resume states landed in .*: 2 (left out by the window's budget: 2)" "$tmp/land.txt"
check "the landed states are the packed ones, byte for byte" \
  bash -c "cmp '$tmp/machine/aaaa/state.pt' '$tmp/tree/.store/suite.resume/aaaa/state.pt' &&
           cmp '$tmp/machine/bbbb/state.pt' '$tmp/tree/.store/suite.resume/bbbb/state.pt'"
check "the states left out and the older ones are not there" \
  bash -c "[ ! -e '$tmp/tree/.store/suite.resume/cccc' ] && [ ! -e '$tmp/tree/.store/suite.resume/zzzz' ]"
check "nor the MANIFEST or a work folder" \
  bash -c "[ ! -e '$tmp/tree/.store/suite.resume/MANIFEST' ] && ! ls -A '$tmp/tree/.store' | grep -q '^.resume-land'"

# A fresh machine seeded from the carried states; one that already holds a newer state of a run keeps its own.
state "$tmp/warm" bbbb 1
bash "$script" seed "$tmp/tree/.store/suite.resume" "$tmp/warm" >"$tmp/seed.txt" 2>&1
check "seed exits 0 and carries in the one run the machine has no state of" grep -q "resume states carried in: 1" "$tmp/seed.txt"
check "that state is the carried one" cmp -s "$tmp/machine/aaaa/state.pt" "$tmp/warm/aaaa/state.pt"
check "the machine's own state of the other run is kept" test "$(stat -c %s "$tmp/warm/bbbb/state.pt")" -eq 1048576
bash "$script" seed "$tmp/nothing" "$tmp/warm" >"$tmp/seed0.txt" 2>&1
check "seeding from a folder that is not there carries in nothing" grep -q "resume states carried in: 0" "$tmp/seed0.txt"

# No state at all still packs a MANIFEST, and landing it empties the carried states.
mkdir -p "$tmp/empty"
bash "$script" pack "$tmp/empty" "$tmp/out0" >"$tmp/pack0.txt" 2>&1
check "an empty folder packs (0 states)" grep -q "resume states packed: 0 " "$tmp/pack0.txt"
bash "$script" land "$tmp/out0" "$tmp/tree/.store/suite.resume" >/dev/null 2>&1
check "landing it leaves no carried state" test -z "$(ls -A "$tmp/tree/.store/suite.resume")"

# Errors: a missing part, no parts, a bad budget; the carried states are left as they were.
bash "$script" land "$tmp/out" "$tmp/tree/.store/suite.resume" >/dev/null 2>&1
# The last rename failing (a shim mv refuses to move the new set into place): the earlier states are back.
mkdir -p "$tmp/shim"
cat >"$tmp/shim/mv" <<'SHIM'
#!/usr/bin/env bash
[[ "${@: -2:1}" == */states ]] && { echo "mv: refused by the test" >&2; exit 1; }
exec /bin/mv "$@"
SHIM
chmod +x "$tmp/shim/mv"
PATH="$tmp/shim:$PATH" bash "$script" land "$tmp/out" "$tmp/tree/.store/suite.resume" >"$tmp/mv.txt" 2>&1
check "a failed last rename is an error (exit 2)" test $? -eq 2
check "... saying the earlier states are back" grep -q "the earlier ones are back there" "$tmp/mv.txt"
check "... and they are" test -f "$tmp/tree/.store/suite.resume/aaaa/state.pt"
rm "$tmp/out/resume.tar.part01"
bash "$script" land "$tmp/out" "$tmp/tree/.store/suite.resume" >"$tmp/bad.txt" 2>&1
check "parts that do not make a whole tar are refused (exit 2)" test $? -eq 2
check "... saying so" grep -qE "do not make a whole tar|its state.pt is not in the tar" "$tmp/bad.txt"
check "... and the carried states are left as they were" test -f "$tmp/tree/.store/suite.resume/aaaa/state.pt"
bash "$script" land "$tmp/nothing" "$tmp/tree/.store/suite.resume" >"$tmp/none.txt" 2>&1
check "no parts is an error naming the folder" grep -q "no resume.tar.part\* in $tmp/nothing" "$tmp/none.txt"
bash "$script" pack "$tmp/machine" "$tmp/out2" lots >"$tmp/mb.txt" 2>&1
check "a budget that is not a number is an error naming it" grep -q "MB must be a whole number of MiB, got 'lots'" "$tmp/mb.txt"
exit $((failures > 0))
