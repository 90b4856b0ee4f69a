#!/usr/bin/env bash
# NVIDIA's Multi-Process Service for runs at once on one GPU. Without it the GPU time-slices between
# processes: the kernels of two runs never execute together, so four small runs on one H200 leave most
# of its SMs idle. With it their kernels share the SMs. This changes no setting of the GPU (its compute
# mode stays as it is): it starts a user-space control daemon whose pipes and logs live under
# $DELTABENCH_MPS_DIR (default /tmp/deltabench-mps); CUDA programs that see the same
# CUDA_MPS_PIPE_DIRECTORY connect to it.
#
#   source scripts/mps.sh start   start the daemon and export CUDA_MPS_PIPE_DIRECTORY/LOG_DIRECTORY into
#                                 this shell (sourced); prints one line saying whether it runs
#   scripts/mps.sh stop           ask the daemon to quit (its server goes when its last client has)
#
# Returns non-zero from start when the daemon cannot be started (no nvidia-cuda-mps-control, or it exits):
# the caller says so and runs without it, named as such in its summary.

mps_dir="${DELTABENCH_MPS_DIR:-/tmp/deltabench-mps}"
export CUDA_MPS_PIPE_DIRECTORY="$mps_dir/pipe" CUDA_MPS_LOG_DIRECTORY="$mps_dir/log"

mps_start() {
  if ! command -v nvidia-cuda-mps-control >/dev/null; then
    echo "mps: nvidia-cuda-mps-control is not on this machine; the runs time-slice the GPU"
    return 1
  fi
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
  if echo get_server_list | nvidia-cuda-mps-control >/dev/null 2>&1; then
    echo "mps: the daemon was running already ($CUDA_MPS_PIPE_DIRECTORY)"
    return 0
  fi
  if ! nvidia-cuda-mps-control -d; then
    echo "mps: nvidia-cuda-mps-control -d failed; the runs time-slice the GPU"
    return 1
  fi
  sleep 1
  if ! echo get_server_list | nvidia-cuda-mps-control >/dev/null 2>&1; then
    echo "mps: the daemon does not answer ($(tail -n 2 "$CUDA_MPS_LOG_DIRECTORY/control.log" 2>/dev/null | tr '\n' ' '))"
    return 1
  fi
  echo "mps: daemon started ($CUDA_MPS_PIPE_DIRECTORY)"
}

mps_stop() {
  command -v nvidia-cuda-mps-control >/dev/null || return 0
  echo quit | nvidia-cuda-mps-control >/dev/null 2>&1 || true
}

case "${1:-}" in
  start) mps_start ;;
  stop) mps_stop ;;
  *)
    echo "usage: source scripts/mps.sh start | scripts/mps.sh stop" >&2
    false
    ;;
esac
