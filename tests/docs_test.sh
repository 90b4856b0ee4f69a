#!/usr/bin/env bash
# Lists rot (STYLE.md): every repository path that README.md and kernels/**/README.md name in
# backticks or links must exist; a bare file name such as op.cpp must exist in a folder below
# the README's. Paths under build/ and .venv/ are made by the build and skipped.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
status=0
for doc in README.md */README.md kernels/*/README.md; do
  dir=$(dirname "$doc")
  # `path` in backticks and (path) in links that look like repository files or folders.
  # (a doc that names no path is fine: grep's status 1 must not fail the pipeline)
  { grep -oE '`[A-Za-z0-9_./-]+(/|\.(sh|h|cpp|cu|md|json|txt))`|\]\([A-Za-z0-9_./-]+\)' "$doc" || true; } |
    sed -E 's/^`//; s/`$//; s/^\]\(//; s/\)$//' | sort -u |
    while read -r path; do
      case "$path" in build/* | .venv/* | http*) continue ;; esac
      if [[ -e "$path" || -e "$dir/$path" ]]; then continue; fi
      # A generic per-family file name ("op.cpp") must exist in a folder below the doc's.
      if [[ "$path" != */* ]] && [[ -n $(find "$dir" -mindepth 2 -name "$path" -print -quit) ]]; then
        continue
      fi
      echo "$doc names $path, which does not exist"
      exit 1
    done || status=1
done
((status == 0)) && echo "docs: every named path exists"
exit $status
