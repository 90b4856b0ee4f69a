#!/usr/bin/env bash
# Runs' resume states (train/resume.h: <dir>/<run hash>/state.pt) carried between GPU windows of different
# sessions, so that a run in flight when a window ends goes on in the next session's window instead of
# starting over (`run --resume-any-commit` takes a state saved at another commit; the run's record names each).
#
#   resume_states.sh seed SRC DIR         copy SRC's states into DIR where DIR holds none of that run (a state
#                                         already in DIR, from an earlier call on the same machine, is newer)
#   resume_states.sh pack DIR OUT [MB]    DIR's states, the smallest first while their sum stays within MB MiB
#                                         (default 32: what a window's call can carry beside the tree, .deb and
#                                         .whl, 64 MiB in all), as one tar in parts of 15 MiB under OUT
#                                         (resume.tar.part00, ...; the device tool brings back files of at most
#                                         16 MiB), with a MANIFEST of the runs kept and those left out; prints one
#                                         line saying so
#   resume_states.sh land PARTS DEST      the parts in folder PARTS put together and unpacked into DEST, which
#                                         they replace whole (the set a window left is the newest); prints a line
#
# scripts/device.sh --window seeds from .store/SUITE.resume and packs into $OUT; scripts/window_land.sh lands the
# parts it finds beside a window's store into .store/SUITE.resume, which the next window's call carries.
set -euo pipefail

die() {
  echo "resume_states.sh: $*" >&2
  exit 2
}

states_in() {  # "size path" of each <hash>/state.pt under $1, smallest first
  find "$1" -mindepth 2 -maxdepth 2 -name state.pt -printf '%s %p\n' 2>/dev/null | sort -n
}

case "${1:-}" in
  seed)
    (($# == 3)) || die "usage: seed SRC DIR"
    src="$2" dir="$3" n=0
    if [[ -d "$src" ]]; then
      while read -r _ f; do
        h=$(basename "$(dirname "$f")")
        [[ -e "$dir/$h/state.pt" ]] && continue
        mkdir -p "$dir/$h"
        cp "$f" "$dir/$h/state.pt.partial" && mv "$dir/$h/state.pt.partial" "$dir/$h/state.pt"
        n=$((n + 1))
      done < <(states_in "$src")
    fi
    echo "resume states carried in: $n (from ${src})"
    ;;
  pack)
    (($# == 3 || $# == 4)) || die "usage: pack DIR OUT [MB]"
    dir="$2" out="$3" mb="${4:-32}"
    [[ "$mb" =~ ^[0-9]+$ ]] || die "pack: MB must be a whole number of MiB, got '$mb'"
    budget=$((mb * 1024 * 1024)) total=0
    kept=() left=()
    while read -r size f; do
      h=$(basename "$(dirname "$f")")
      if ((total + size <= budget)); then
        kept+=("$h/state.pt")
        total=$((total + size))
      else
        left+=("$h")
      fi
    done < <(states_in "$dir")
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    {
      for k in "${kept[@]}"; do echo "kept ${k%/state.pt}"; done
      for l in "${left[@]}"; do echo "left $l"; done
    } >"$work/MANIFEST"
    mkdir -p "$out"
    files=(-C "$work" MANIFEST)
    ((${#kept[@]})) && files+=(-C "$dir" "${kept[@]}")
    tar -cf "$work/resume.tar" "${files[@]}"
    rm -f "$out"/resume.tar.part*
    split -b 15M -d -a 2 "$work/resume.tar" "$out/resume.tar.part"
    echo "resume states packed: ${#kept[@]} ($((total / 1024 / 1024)) MiB, in $(ls "$out"/resume.tar.part* | wc -l) part(s));" \
      "left out over ${mb} MiB: ${#left[@]}"
    ;;
  land)
    (($# == 3)) || die "usage: land PARTS DEST"
    parts_dir="$2" dest="$3"
    parts=("$parts_dir"/resume.tar.part*)
    [[ -f "${parts[0]}" ]] || die "land: no resume.tar.part* in $parts_dir"
    mkdir -p "$(dirname "$dest")"
    work=$(mktemp -d "$(dirname "$dest")/.resume-land.XXXXXX")  # beside DEST: the last mv is a rename
    trap 'rm -rf "$work"' EXIT
    cat "${parts[@]}" >"$work/resume.tar"
    mkdir "$work/states"
    tar -xf "$work/resume.tar" -C "$work/states" || die "land: the parts in $parts_dir do not make a whole tar"
    [[ -f "$work/states/MANIFEST" ]] || die "land: the tar from $parts_dir has no MANIFEST"
    for h in $(sed -n 's/^kept //p' "$work/states/MANIFEST"); do
      [[ -f "$work/states/$h/state.pt" ]] || die "land: MANIFEST keeps $h, but its state.pt is not in the tar"
    done
    kept_n=$(grep -c '^kept ' "$work/states/MANIFEST" || true)
    left_n=$(grep -c '^left ' "$work/states/MANIFEST" || true)
    rm -f "$work/states/MANIFEST"
    # The old set moves aside (a rename, same folder) and goes only once the new one is in place.
    [[ -e "$dest" ]] && mv "$dest" "$work/old"
    if ! mv "$work/states" "$dest"; then
      [[ -e "$work/old" ]] && mv "$work/old" "$dest"
      die "land: could not put the new states at $dest; the earlier ones are back there"
    fi
    echo "resume states landed in $dest: $kept_n (left out by the window's budget: $left_n)"
    ;;
  *)
    die "usage: resume_states.sh seed SRC DIR | pack DIR OUT [MB] | land PARTS DEST"
    ;;
esac
