#!/usr/bin/env bash
# After a GPU window of a long suite (scripts/device.sh --window SUITE): merges the stores it brought
# back into the suite's committed export, results/SUITE/runs.json, and renders the report from that
# export into results/SUITE/ (tables and figures), ready to commit. The export is the store of record
# between sessions: the next window starts from it.
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
