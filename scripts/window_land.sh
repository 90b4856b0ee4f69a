#!/usr/bin/env bash
# After a GPU window of a long suite (scripts/device.sh --window SUITE): merges the stores it brought
# back into the suite's committed export, results/SUITE/runs.json, and renders the report from that
# export into results/SUITE/ (tables and figures), ready to commit. The export is the store of record
# between sessions: the next window starts from it. The runs' resume states that came back beside a store
# (resume.tar.part*) go to .store/SUITE.resume (ignored by git), for the next window's call to carry.
#
#   scripts/window_land.sh SUITE STORE [STORE ...]
#
# A store stopped by a time limit may come back with its write-ahead log (STORE-wal): it is copied
# beside the store so that SQLite replays it. `store merge` keeps each run once and refuses two different
# results for one run; then nothing is written. DELTABENCH_BIN names the program (default
# build/deltabench), DELTABENCH_RESULTS the results folder (default results/).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${DELTABENCH_BIN:-$root/build/deltabench}"
if (($# < 2)); then
  echo "usage: $0 SUITE STORE [STORE ...]" >&2
  exit 2
fi
suite="$1"
shift
name="$(basename "$suite" .toml)"
dir="${DELTABENCH_RESULTS:-$root/results}/$name"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

inputs=()
[[ -f "$dir/runs.json" ]] && inputs+=("$dir/runs.json")
i=0
for store in "$@"; do
  [[ -f "$store" ]] || { echo "window_land.sh: $store: no such store" >&2; exit 2; }
  copy="$tmp/window-$i.sqlite"
  cp "$store" "$copy"
  [[ -f "$store-wal" ]] && cp "$store-wal" "$copy-wal"
  chmod u+w "$copy"*  # the device tool's files come back read-only; SQLite replays the log in place
  inputs+=("$copy")
  i=$((i + 1))
done
"$bin" store merge "${inputs[@]}" -o "$tmp/all.sqlite"
mkdir -p "$dir"
"$bin" runs export --store "$tmp/all.sqlite" --suite "$name" --format json --out "$tmp/runs.json" >/dev/null
mv "$tmp/runs.json" "$dir/runs.json"
"$bin" report "$suite" --store "$dir/runs.json" --out "$dir"

# The runs' resume states a window brought back (resume.tar.part* beside its store; scripts/device.sh --window):
# those of the last store given that has them replace .store/SUITE.resume, which the next window's call carries
# and goes on from. DELTABENCH_STATES names the folder for .store (tests).
parts_dir=""
for store in "$@"; do
  compgen -G "$(dirname "$store")/resume.tar.part*" >/dev/null && parts_dir="$(dirname "$store")"
done
states="${DELTABENCH_STATES:-$root/.store}/$name.resume"
[[ -n "$parts_dir" ]] && bash "$root/scripts/resume_states.sh" land "$parts_dir" "$states"
if [[ -d "$states" ]]; then
  # A state of a run the export now holds (finished in another window) would only be carried for nothing.
  pruned=0
  for d in "$states"/*/; do
    [[ -d "$d" ]] || continue
    if grep -q "\"hash\": \"$(basename "$d")\"" "$dir/runs.json"; then
      rm -rf "$d"
      pruned=$((pruned + 1))
    fi
  done
  ((pruned == 0)) || echo "resume states of runs the export now holds, removed: $pruned"
  echo "carry ${DELTABENCH_STATES:-.store}/$name.resume in the next window's call ($(ls "$states" | wc -l) states)"
fi
