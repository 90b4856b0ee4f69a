# Sourced by the shell tests: check <description> <command...> prints ok or FAILED for the command and
# counts the failures in $failures; the test exits with $((failures > 0)) at its end.
failures=0
check() {
  local what="$1"
  shift
  if "$@"; then echo "ok: $what"; else echo "FAILED: $what"; failures=$((failures + 1)); fi
}
