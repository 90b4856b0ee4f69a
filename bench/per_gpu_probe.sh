#!/usr/bin/env bash
# How many runs to train at once on one GPU (`run --per-gpu N`): N copies of one experiment started
# together on GPU 0, each `deltabench train CONFIG --max-steps STEPS`, for each N given. A copy does
# what a suite's run does (generates its data, trains with the captured step, evaluates), so the wall
# time of N copies against N times one copy's is the gain a suite would see. Prints one line per N:
#   per_gpu_probe: <config> N=<n>: <s> s for <n> runs of <steps> steps; <runs/h> runs per hour; <x> of N=1's rate
#
#   bench/per_gpu_probe.sh build/deltabench configs/zoology-mqar.toml 500 1 2 4
set -uo pipefail

if (($# < 4)); then
  echo "usage: $0 DELTABENCH CONFIG STEPS N [N ...]" >&2
  exit 2
fi
deltabench=$(realpath "$1") config=$(realpath "$2") steps="$3"
shift 3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
base_rate="" base_n=0
for n in "$@"; do
  start=$(date +%s%N)
  pids=()
  for ((i = 0; i < n; ++i)); do
    (cd "$work" && exec "$deltabench" train "$config" --max-steps "$steps" --metrics "$work/n$n-$i.jsonl") \
      >"$work/n$n-$i.log" 2>&1 &
    pids+=($!)
  done
  failed=0
  for pid in "${pids[@]}"; do wait "$pid" || failed=$((failed + 1)); done
  wall=$(awk -v a="$start" -v b="$(date +%s%N)" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
  rate=$(awk -v n="$n" -v w="$wall" 'BEGIN { printf "%.3f", 3600 * n / w }')
  [[ -z "$base_rate" ]] && base_rate=$rate base_n=$n
  printf 'per_gpu_probe: %s N=%d: %.1f s for %d runs of %d steps; %.0f runs per hour; %.2f of N=%d'"'"'s rate' \
    "$(basename "$config")" "$n" "$wall" "$n" "$steps" "$rate" "$(awk -v r="$rate" -v b="$base_rate" 'BEGIN { print r / b }')" "$base_n"
  ((failed > 0)) && printf '; %d failed: %s' "$failed" "$(grep -h -m 1 -iE 'error|what' "$work"/n"$n"-*.log | head -n 1)"
  printf '\n'
  grep -h '^summary:' "$work"/n"$n"-*.log | sed 's/^/  /'
done
