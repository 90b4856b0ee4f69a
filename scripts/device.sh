#!/usr/bin/env bash
# The GPU machine's one script: builds deltabench against that machine's own torch (the one its
# python3 imports) with all cores, runs every test (the CUDA-labelled ones too), the smoke table on
# the GPU and the benchmarks, and leaves logs and data under $OUT (default: ./out): summary.md,
# build.log, tests.log, train.log, two training JSON-lines files, the reference ops' benchmark JSON and
# kernels.csv (eight files: the device tool returns at most eight). --kernels leaves summary.md,
# build.log, tests.log, bench.log, kernels_bench.json, kernels.csv and ncu.log. The device copy of the
# tree's .git is the checkout's base commit, not the tree that runs: the script names its commit from
# DELTABENCH_COMMIT, else from .device-commit (ignored by git; write it with
# `git describe --always --dirty >.device-commit` and carry it), else from git.
#
# A cold machine's build (145-153 s) is spared where .prebuilt is carried: the programs a mode needs, built on the
# CPU machine for sm_90a by scripts/device_prebuild.sh from the same sources against the same torch
# (scripts/prebuilt.sh checks both and that every target of the mode is there; the summary's first lines say which
# way it went and why). Such a call needs no .deb or .whl. Modes that build every target (the default, --harness)
# always build.
#
# The GPU image has no SQLite headers: carry .deb/sqlite (Debian's libsqlite3-dev unpacked there with
# dpkg-deb -x; the image's own libsqlite3.so.0 is linked). For the FLA comparison carry .fla: an
# unmodified fla/ package from FLA's git history, einops and packaging, all ignored by git.
# scripts/device_carry.sh makes .deb, .whl and (given FLA's git directory) .fla. FLA's autotuning (triton's timings of
# its configs) comes back with DELTABENCH_KEEP_TRITON=1 as triton-<GPU>.tar.gz; landed as .triton/<GPU>.tar.gz (ignored)
# and carried, it spares the next cold machine's FLA its autotuning (scripts/triton_cache.sh). It is one file more:
# --sm90 and --kernels leave room for it, the default run and --train (8 files each) do not.
# The kernel times land in kernels.csv; `deltabench kernel-report kernels.csv` on a machine with
# gnuplot writes the tables and throughput curves (results/kernels/).
#
#   scripts/device.sh            build, test, smoke, benchmarks
#   scripts/device.sh --no-bench build, test, smoke
#   scripts/device.sh --kernels  build, the CUDA kernel tests and sanitizers, the kernel benchmark, FLA beside it,
#                                Nsight Compute: the forward kernel's profile, a forward + backward's time by kernel
#   scripts/device.sh --train    build, the training GPU tests (captured step against eager), the training-step
#                                benchmark (ours eager and captured; PyTorch + FLA beside it from a carried .fla), the
#                                Zoology preset captured and eager, runs at once on one GPU (bench/per_gpu_probe.sh):
#                                summary.md, build.log, tests.log, bench.log, train.log, probe.log,
#                                train_step_bench.json, train_step_fla.json
#                                DELTABENCH_KERNEL_BENCH=0: --kernels without benchmarks, FLA and profiles
#                                --train's switches: DELTABENCH_TEST_SECONDS (180), DELTABENCH_TRAIN_PRESET=0 (no preset
#                                runs), DELTABENCH_TRAIN_EAGER=0 (the preset captured only), DELTABENCH_PER_GPU_PROBE=0,
#                                DELTABENCH_FLA_SECONDS (200), DELTABENCH_FLA_LENGTHS (64,256,512),
#                                DELTABENCH_TRAIN_BACKENDS ("kernel reference": the preset to its early stop on each),
#                                DELTABENCH_RUN_TEST=1 (tests/apps/run_command_test.sh), DELTABENCH_STEP_PROFILE=1
#                                (step_profile.log: the step's GPU time by kernel, Nsight Compute), DELTABENCH_KERNEL_TESTS (a
#                                kernels_cuda_tests tag, e.g. "[backward]")
#                                --kernels' switches: DELTABENCH_KERNEL_SWEEPS=1 (the registry's sweeps too, not only
#                                its fixed cases; FLA follows), DELTABENCH_BENCH_FILTER (a regex of case names, for kernels_bench
#                                and FLA), DELTABENCH_FLA_FILTER (FLA's alone, where it differs), DELTABENCH_BENCH_SECONDS (240),
#                                DELTABENCH_FLA_SECONDS (200), DELTABENCH_NCU=0,
#                                DELTABENCH_KERNEL_TESTS (a Catch2 spec for kernels_cuda_tests: "[sm90]", "~[sm90]"), DELTABENCH_SANITIZE=0
#   scripts/device.sh --window SUITE  build deltabench, then one GPU window of a long suite (issue 15): the store,
#                                merged from the committed results/SUITE/runs.json, the one carried in
#                                .store/SUITE.sqlite (ignored by git) and this warm machine's from an earlier call, goes on for
#                                DELTABENCH_SUITE_SECONDS (default 480), stopped by SIGTERM at the limit (the runs in
#                                flight are saved, below); carry .deb, .whl (the sm_90a training op is built from
#                                CUTLASS's headers: without them the window trains on the chunked pair) and
#                                .device-commit, and .store/SUITE.resume where a window left states; leaves SUITE.sqlite (land it with
#                                scripts/window_land.sh SUITE <store>: the committed export and report), suite.log and window.md (a row for results/SUITE/RUNS.md:
#                                date, commit, GPU, runs before and after, seconds); the runs in flight save
#                                their state in .resume/SUITE, so a next window on the same warm machine goes on with
#                                them from their last saved epoch, and they come back as resume.tar.part* (at most
#                                DELTABENCH_RESUME_OUT_MB, 32), which window_land.sh lands in .store/SUITE.resume:
#                                carried, a fresh machine's window goes on from them (run --resume-any-commit);
#                                DELTABENCH_MPS=1 runs them through NVIDIA's Multi-Process Service (scripts/mps.sh),
#                                DELTABENCH_PER_GPU sets the runs at once, DELTABENCH_ONLY the runs it may take
#                                (run's --only, one AXIS=V1,V2 a word), DELTABENCH_CALL_SECONDS the device call's
#                                limit (the window then ends 30 s before it, however long the build took); a run
#                                its cell's finished runs say would outlast the window is not started (run's
#                                --time-limit), unless DELTABENCH_TIME_LIMIT=0 (for a window another call follows)
#   scripts/device.sh --stages   after a change to the chunked pair's kernels: build, the kernel tests of the chunked
#                                backward and the training kernels (kernels_cuda_tests, filter DELTABENCH_KERNEL_TESTS),
#                                train_cuda_tests and models_cuda_tests (the pieces' kernels), racecheck and memcheck
#                                on the backward's [small] cases (DELTABENCH_SANITIZE=0: not), the fixed forward +
#                                backward cases of the three families with their aten-stages: rows (bench.json),
#                                Nsight Compute's GPU time by kernel of the delta
#                                rule's at 16 x 2K (ncu.txt); then, where every test passed and DELTABENCH_THEN_WINDOW
#                                names a suite, one window of it as --window runs it (its switches too), on the same build:
#                                summary.md, build.log, tests.log, bench.json, ncu.txt (+ SUITE.sqlite, suite.log, window.md);
#                                with DELTABENCH_SM90=1, --sm90's checks too (they do not stop a window)
#   scripts/device.sh --sm90     the sm_90a kernels (kernels/common/sm90): build kernels_cuda_tests, train_cuda_tests and
#                                stage_bench, the [sm90] tests, train_cuda_tests and the ops' training cases with
#                                DELTABENCH_SM90_TRAIN=1 and =0 (the op, the chunked pair; DELTABENCH_SM90_TRAIN_TESTS=0: not; DELTABENCH_SM90_TRAIN_SECONDS,
#                                180), racecheck and memcheck on [sm90][small], the Hopper forward and its state
#                                pass timed beside ours today and FLA's (bench/stage_bench.cpp, bench/fla_stage.py), the
#                                forward's kernels, the state passes, the UT backward and dq/dk/dW profiled, the models' captured training step on the sm_90a training op
#                                against auto (train_step_bench's kernel:3 rows): summary.md, build.log, tests.log,
#                                stage_bench.json, stage.md, train_step_sm90.json, ncu.txt. Carry .whl holding nvidia-cutlass's wheel (and .fla for FLA). Switches:
#                                DELTABENCH_SM90_TESTS=0 (no tests), DELTABENCH_SM90_KERNEL_TESTS=0 (the models' and
#                                ops' training tests alone), DELTABENCH_SM90_BENCH=0 (no bench, FLA or ncu),
#                                DELTABENCH_SM90_STAGES=0 (no bench or FLA, the profiles alone),
#                                DELTABENCH_SANITIZE=0, DELTABENCH_SM90_TEST_SECONDS (300), DELTABENCH_STAGE_SECONDS
#                                (180), DELTABENCH_FLA_SECONDS (150), DELTABENCH_FLA_STAGE_FILTER (/B16/T2048/H16/),
#                                DELTABENCH_STEP_SECONDS (120; 0: no training step), DELTABENCH_STEP_FILTER (train_step_bench's rows; the
#                                delta rules' kernel:2 and 3), DELTABENCH_STAGE_FILTER (stage_bench's rows, a regex;
#                                all), DELTABENCH_NCU=0 (no profile), DELTABENCH_STEP_PROFILE=1 (step_profile.log: the
#                                captured DeltaNet step at L 256 by kernel under kernel:2 and kernel:3, Nsight Compute).
#                                A warm machine keeps the build: the tests in one call (DELTABENCH_SM90_BENCH=0) and the
#                                benchmarks in the next (DELTABENCH_SM90_TESTS=0 DELTABENCH_SANITIZE=0) fit the call limit
#   scripts/device.sh --build    build every target in build-device/ (the binaries for a command's own steps)
#   scripts/device.sh --harness  build, every test, then the README's GPU suite command (zoology-mqar, no flags: the
#                                suite's own "cuda", the default runs per GPU) for DELTABENCH_SUITE_SECONDS
#                                (default 150) on a store that starts from the committed results/zoology-mqar/runs.json
#                                (so its new runs land there too), its stored runs listed with device and backend,
#                                and the report
#
# nlohmann-json's headers come the same way as SQLite's: carry .deb/nlohmann (nlohmann-json3-dev unpacked).
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${OUT:-$root/out}"
build_dir="${DELTABENCH_BUILD_DIR:-$root/build-device}"
jobs="${DELTABENCH_JOBS:-$(nproc)}"
python="${DELTABENCH_PYTHON:-$(command -v python3)}"
run_bench=1
kernels_only=0
[[ "${1:-}" == "--no-bench" ]] && run_bench=0
[[ "${1:-}" == "--kernels" ]] && kernels_only=1
[[ "${DELTABENCH_KERNEL_BENCH:-1}" == 0 ]] && run_bench=0  # --kernels without benchmarks and profiles
harness=0
[[ "${1:-}" == "--harness" ]] && harness=1
train_only=0
[[ "${1:-}" == "--train" ]] && train_only=1
build_only=0
[[ "${1:-}" == "--build" ]] && build_only=1
stages=0
[[ "${1:-}" == "--stages" ]] && stages=1
sm90_only=0
[[ "${1:-}" == "--sm90" ]] && sm90_only=1
window_suite=""
if [[ "${1:-}" == "--window" ]]; then
  window_suite="${2:-}"
  [[ -n "$window_suite" ]] || { echo "device.sh --window: give the suite, e.g. --window zoology-mqar" >&2; exit 2; }
fi
mkdir -p "$out"
summary="$out/summary.md"
: >"$summary"
note() { printf '%s\n' "$*" | tee -a "$summary"; }
# compute-sanitizer's TOOL over deltabench's kernels in kernels_cuda_tests' cases FILTER, for at most
# SECONDS: a line in the summary, its output (LIMIT bytes of it) in tests.log; returns the tool's rc (124:
# stopped by the time limit).
sanitize() {
  local tool="$1" filter="$2" seconds="$3" limit="${4:-20000}" rc
  timeout "$seconds" compute-sanitizer --tool "$tool" --error-exitcode 1 --kernel-name kns=deltabench \
    "$build_dir/tests/kernels_cuda_tests" "$filter" >"$out/sanitizer.tmp" 2>&1
  rc=$?
  { echo "== compute-sanitizer $tool"; head -c "$limit" "$out/sanitizer.tmp"; } >>"$out/tests.log"
  note "- compute-sanitizer $tool ($filter): rc=$rc: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$out/sanitizer.tmp" | tail -n 1)"
  rm -f "$out/sanitizer.tmp"
  return $rc
}
status=0

note "# deltabench device run"
note ""
note "- date: $(date -u +%FT%TZ)"
if [[ -z "${DELTABENCH_COMMIT:-}" ]]; then
  DELTABENCH_COMMIT=$(cat "$root/.device-commit" 2>/dev/null || git -C "$root" describe --always --dirty 2>/dev/null ||
    echo unknown)
fi
export DELTABENCH_COMMIT
note "- commit: $DELTABENCH_COMMIT"
note "- gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo none)"
note "- nvcc: $(nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
note "- torch: $("$python" -c 'import torch; print(torch.__version__)' 2>/dev/null)"
note "- cores: $(nproc)"

# FLA's autotuning kept between calls (scripts/triton_cache.sh): a carried .triton/<GPU>.tar.gz restored; with
# DELTABENCH_KEEP_TRITON=1 the timings back in $OUT at the end, as triton-<GPU>.tar.gz.
source "$root/scripts/triton_cache.sh"
triton_cache_restore "$root" >"$out/triton.tmp"  # in this shell: it exports the cache's settings
note "- $(cat "$out/triton.tmp")"
rm -f "$out/triton.tmp"
keep_triton() { [[ "${DELTABENCH_KEEP_TRITON:-0}" != 1 ]] || echo "- $(triton_cache_keep "$out")" >>"$summary"; }
trap keep_triton EXIT

# The CUDA kernels against SDPA (kernels_bench.json); FLA beside them from an unmodified fla/ package
# carried in .fla; every time in kernels.csv; the kernel report's tables from it into the summary (the
# plots are drawn where gnuplot is). Progress lines name each case as it starts and ends. $1: the log.
kernel_benchmarks() {
  local log="$1" report_dir fla_args=()
  local filter=()
  [[ -n "${DELTABENCH_BENCH_FILTER:-}" ]] && filter=(--benchmark_filter="$DELTABENCH_BENCH_FILTER")
  DELTABENCH_COMMIT="${DELTABENCH_COMMIT:-unknown}" timeout "${DELTABENCH_BENCH_SECONDS:-240}" \
    "$build_dir/bench/kernels_bench" --benchmark_out="$out/kernels_bench.json" --benchmark_out_format=json \
    "${filter[@]}" >"$log" 2>&1 || status=1
  note ""
  note "CUDA kernels (Google Benchmark, median of 15, L2 flushed; full JSON: kernels_bench.json)"
  grep -E '_median' "$log" | sed -E 's/iterations:1\/repeats:15\/manual_time_median//' | tee -a "$summary"
  grep -iE 'error|what\(\)' "$log" | head -n 5 | tee -a "$summary"
  [[ -d "$root/.fla/fla" ]] && fla_args=(--fla "$root/.fla")
  # FLA's cases: DELTABENCH_FLA_FILTER where given (a cold machine's autotuning makes each FLA case minutes), else
  # the benchmark's filter.
  local fla_filter="${DELTABENCH_FLA_FILTER:-${DELTABENCH_BENCH_FILTER:-}}"
  [[ -n "$fla_filter" ]] && fla_args+=(--filter "$fla_filter")
  timeout "${DELTABENCH_FLA_SECONDS:-200}" "$python" "$root/bench/fla_compare.py" --ours "$out/kernels_bench.json" --out "$out/kernels.csv" \
    "${fla_args[@]}" >>"$log" 2>&1 || status=1
  grep -E '^fla_compare: ' "$log" | tail -n 20
  report_dir=$(mktemp -d)
  "$build_dir/deltabench" kernel-report "$out/kernels.csv" --out "$report_dir" >>"$log" 2>&1 || status=1
  note ""
  cat "$report_dir/table.md" 2>/dev/null | tee -a "$summary"
  rm -rf "$report_dir"
}

# The sm_90a kernels (kernels/common/sm90): their tests (into tests.log), the sanitizers on the small ones,
# the Hopper forward and its state pass timed beside ours today and FLA's (stage_bench.json, stage.md; FLA
# from a carried .fla) and the kernels profiled (the forward's two; both rules' backward state pass, UT backward and
# dq/dk/dW, the gated forward state pass, with every stall reason; appended to ncu.txt). Sets sm90_rc.
sm90_checks() {
  start=$(date +%s)
  sm90_tests=0
  note ""
  if [[ "${DELTABENCH_SM90_TESTS:-1}" != 0 ]]; then
    # One process a test case, so that a kernel's sticky CUDA error (an illegal address) fails its own case
    # and not every case after it. Catch2 splits a test spec at commas: the names' are escaped.
    local bin="$build_dir/tests/kernels_cuda_tests" deadline=$(($(date +%s) + ${DELTABENCH_SM90_TEST_SECONDS:-300}))
    local names=() name rc
    # DELTABENCH_SM90_KERNEL_TESTS=0: not the [sm90] cases, only the models' and ops' training tests below.
    if [[ "${DELTABENCH_SM90_KERNEL_TESTS:-1}" == 0 ]]; then
      note "- sm90 kernels: kernels_cuda_tests [sm90] not run (DELTABENCH_SM90_KERNEL_TESTS=0)"
    elif "$bin" --help 2>&1 | grep -q -- '--list-test-names-only'; then  # Catch2 v2 (Debian 12)
      mapfile -t names < <("$bin" --list-test-names-only '[sm90]')
    else  # v3 (the GPU machine): names alone at quiet verbosity
      mapfile -t names < <("$bin" --list-tests '[sm90]' --verbosity quiet)
    fi
    ((${#names[@]})) && note "- sm90 kernels: kernels_cuda_tests [sm90], ${#names[@]} cases, a process each (tests.log):"
    for name in "${names[@]}"; do
      [[ -n "$name" ]] || continue
      if (($(date +%s) >= deadline)); then
        note "  - not run (DELTABENCH_SM90_TEST_SECONDS spent): $name"
        sm90_tests=1
        continue
      fi
      { echo "== kernels_cuda_tests: $name"; timeout $((deadline - $(date +%s))) "$bin" "${name//,/\\,}"; } >>"$out/tests.log" 2>&1
      rc=$?
      ((rc != 0)) && sm90_tests=1
      note "  - rc=$rc: $name"
    done
    # The models' training and the ops' training calls with the sm_90a training op on for the process (Hopper's
    # default) and off (DELTABENCH_SM90_TRAIN=0, kernels/common/cuda_dispatch.h: the chunked pair, which A100s and
    # head dims 32 and 256 train on): the runs' record, the gradient, 50-step and captured-step tests on each.
    # DELTABENCH_SM90_TRAIN_TESTS=0: not.
    if [[ "${DELTABENCH_SM90_TRAIN_TESTS:-1}" != 0 ]]; then
      local train_start setting
      for setting in 1 0; do
        train_start=$(date +%s)
        { echo "== train_cuda_tests, DELTABENCH_SM90_TRAIN=$setting"; DELTABENCH_SM90_TRAIN=$setting OMP_NUM_THREADS=1 \
          timeout "${DELTABENCH_SM90_TRAIN_SECONDS:-180}" "$build_dir/tests/train_cuda_tests"; } >>"$out/tests.log" 2>&1
        rc=$?
        ((rc != 0)) && sm90_tests=1
        note "  - rc=$rc in $(($(date +%s) - train_start)) s: train_cuda_tests with DELTABENCH_SM90_TRAIN=$setting"
        for name in 'cuda: auto and kernel train*' 'cuda: the public ops use*' 'cuda: the training kernels take q*'; do
          { echo "== kernels_cuda_tests, DELTABENCH_SM90_TRAIN=$setting: $name"; DELTABENCH_SM90_TRAIN=$setting timeout 60 "$bin" "$name"; } \
            >>"$out/tests.log" 2>&1
          rc=$?
          ((rc != 0)) && sm90_tests=1
          note "  - rc=$rc: $name (DELTABENCH_SM90_TRAIN=$setting)"
        done
      done
    fi
  fi
  note "- sm90 kernels: rc=$sm90_tests in $(($(date +%s) - start)) s; failures (tests.log):"
  sed -n '/== kernels_cuda_tests: /,$p' "$out/tests.log" | grep -E 'FAILED|with expansion|<=|sm90 kernels not run' |
    head -n 24 | tee -a "$summary"
  if [[ "${DELTABENCH_SANITIZE:-1}" != 0 ]] && command -v compute-sanitizer >/dev/null; then
    for tool in racecheck memcheck; do
      sanitize "$tool" '[sm90][small]' 90
      san_rc=$?
      ((san_rc != 0 && san_rc != 124)) && sm90_tests=1
    done
  fi
  if [[ "${DELTABENCH_SM90_BENCH:-1}" == 0 ]]; then
    sm90_rc=$sm90_tests
    return
  fi
  # DELTABENCH_SM90_STAGES=0: no stage_bench, training step or FLA, only the profiles below (a second call on a
  # warm machine, after one that timed the stages).
  if [[ "${DELTABENCH_SM90_STAGES:-1}" != 0 ]]; then
    timeout "${DELTABENCH_STAGE_SECONDS:-180}" "$build_dir/bench/stage_bench" --benchmark_filter="${DELTABENCH_STAGE_FILTER:-.}" \
      --benchmark_out="$out/stage_bench.json" --benchmark_out_format=json >"$out/stage.tmp" 2>&1 || status=1
    # The models' captured training step with the chunked pair on the sm_90a training op (set_sm90_train)
    # against auto as runs train: DeltaNet and Gated DeltaNet, Zoology's MQAR model (K 64) at its three shapes.
    # DELTABENCH_STEP_FILTER another set of train_step_bench's rows: '^train_step/mixer:1/V:8192/d:128/.*/kernel:[34]/'
    # is linear attention's step under auto against kernel on the sm_90a op (its denominator apart), L 64-512.
    # DELTABENCH_STEP_SECONDS=0: no training step (a call for the stages alone).
    if [[ "${DELTABENCH_STEP_SECONDS:-120}" != 0 ]]; then
      start=$(date +%s)
      timeout "${DELTABENCH_STEP_SECONDS:-120}" "$build_dir/bench/train_step_bench" --device=cuda \
        --benchmark_filter="${DELTABENCH_STEP_FILTER:-^train_step/mixer:[23]/V:8192/d:128/.*/graph:1/kernel:[23]/}" \
        --benchmark_out="$out/train_step_sm90.json" --benchmark_out_format=json >"$out/step.tmp" 2>&1 || status=1
      note ""
      note "training step, auto on the chunked pair (kernel:2) against auto on the sm90 training op, the default (kernel:3), mean ms ($(($(date +%s) - start)) s):"
      grep -E '^train_step/' "$out/step.tmp" | sed -E 's/V:8192\/d:128\///; s/\/real_time//' | tee -a "$summary"
      grep -iE 'error' "$out/step.tmp" | head -n 5 | tee -a "$summary"
      rm -f "$out/step.tmp"
    fi
    # Where the captured step's GPU time goes with the chunked pair (kernel:2) and with the sm90 training op
    # (kernel:3): every kernel of the first 3000 launches, summed by kernel (bench/ncu_summary.py).
    if [[ "${DELTABENCH_STEP_PROFILE:-0}" == 1 ]] && command -v ncu >/dev/null; then
      for kernel in 2 3; do
        timeout 150 ncu --metrics gpu__time_duration.sum --csv -c 3000 "$build_dir/bench/train_step_bench" --device=cuda \
          --benchmark_filter="^train_step/mixer:2/V:8192/d:128/L:256/B:256/pairs:16/graph:1/kernel:$kernel/" \
          >"$out/profile.csv" 2>&1 || status=1
        "$python" "$root/bench/ncu_summary.py" "$out/profile.csv" --label "DeltaNet, kernel:$kernel, L 256, B 256, 3000 launches" \
          --top 25 >>"$out/step_profile.log" 2>&1 || status=1
      done
      rm -f "$out/profile.csv"
      note "step profile (step_profile.log):"
      grep -A12 -E '^ncu_summary' "$out/step_profile.log" | tee -a "$summary"
    fi
    # FLA's first call of each kernel at each shape autotunes: by default only the registry's standard shape
    # (DELTABENCH_FLA_STAGE_FILTER, a regex of row names; "." for every row).
    fla_args=(--filter "${DELTABENCH_FLA_STAGE_FILTER:-/B16/T2048/H16/}")
    [[ -d "$root/.fla/fla" ]] && fla_args+=(--fla "$root/.fla")
    timeout "${DELTABENCH_FLA_SECONDS:-150}" "$python" "$root/bench/fla_stage.py" --ours "$out/stage_bench.json" \
      --out "$out/stage.md" "${fla_args[@]}" >>"$out/stage.tmp" 2>&1 || status=1
    note ""
    if [[ -f "$out/stage.md" ]]; then
      tee -a "$summary" <"$out/stage.md"
    else
      # No table (stage_bench cut off by DELTABENCH_STAGE_SECONDS leaves no JSON, or FLA's script failed): the rows
      # stage_bench printed as it went, their medians, so that what was measured still comes back.
      note "- no stage.md: stage_bench's medians as printed (console), then the last lines of its and FLA's output:"
      grep -E '_median ' "$out/stage.tmp" | cut -c1-220 | head -n 80 | tee -a "$summary"
      tail -n 12 "$out/stage.tmp" | tee -a "$summary"
    fi
    rm -f "$out/stage.tmp"
  fi
  if [[ "${DELTABENCH_NCU:-1}" != 0 ]] && command -v ncu >/dev/null; then
    { echo; echo "== ncu: the sm90 forward's two kernels (UT transform; the state pass with the output), delta rule 16 x 2K"; } >>"$out/ncu.txt"
    timeout 100 ncu --kernel-name 'regex:(ut|state)_forward_kernel' --launch-skip 2 --launch-count 2 \
      --section SpeedOfLight --section Occupancy --section WarpStateStats --section LaunchStats \
      "$build_dir/bench/stage_bench" --benchmark_filter='^fwd/sm90/delta_rule/B16/' \
      --benchmark_repetitions=1 >>"$out/ncu.txt" 2>&1
    # The kernels slower than FLA's at 16 x 2K on an H100 (c4f1aa3: the backward state pass 1.37x / 1.42x, the UT
    # backward reading T 1.08x / 1.43x), with what says why: stalls ("No Instruction": kernels/delta_rule/NOTES.md,
    # version 3n), the schedulers' issue rate, the instruction mix, and the source's hot spots; then dq/dk/dW of both
    # rules (3n's hypothesis) and the gated forward state pass (3o), their stalls alone.
    local detail=(--section SpeedOfLight --section Occupancy --section WarpStateStats --section LaunchStats
      --section SchedulerStats --section InstructionStats --section MemoryWorkloadAnalysis_Tables --section SourceCounters)
    # Every stall reason's warps per issued instruction (WarpStateStats' chart, which the text report leaves out).
    local reason stalls=()
    for reason in no_instruction barrier long_scoreboard short_scoreboard wait math_pipe_throttle mio_throttle lg_throttle \
                  not_selected selected dispatch_stall branch_resolving membar sleeping; do
      stalls+=("smsp__average_warps_issue_stalled_${reason}_per_issue_active.ratio")
    done
    local IFS_was="$IFS"
    IFS=,
    detail+=(--metrics "${stalls[*]}")
    IFS="$IFS_was"
    local brief=(--section SpeedOfLight --section Occupancy --section WarpStateStats --metrics "${detail[-1]}")
    local what kernel row kind sections
    for what in "state_backward_kernel|state_bwd/sm90/delta_rule|detail" "state_backward_kernel|state_bwd/sm90/gated_delta_rule|brief" \
                "ut_backward_kernel|ut_bwd/sm90_t/delta_rule|detail" "ut_backward_kernel|ut_bwd/sm90_t/gated_delta_rule|detail" \
                "dqkw_kernel|dqkw/sm90/delta_rule|brief" "dqkw_kernel|dqkw/sm90/gated_delta_rule|brief" \
                "state_forward_kernel|state_fwd/sm90/gated_delta_rule|brief"; do
      IFS='|' read -r kernel row kind <<<"$what"
      if [[ "$kind" == detail ]]; then sections=("${detail[@]}"); else sections=("${brief[@]}"); fi
      { echo; echo "== ncu: $kernel, $row, 16 x 2K"; } >>"$out/ncu.txt"
      timeout 90 ncu --kernel-name "regex:$kernel" --launch-skip 1 --launch-count 1 "${sections[@]}" \
        "$build_dir/bench/stage_bench" --benchmark_filter="^$row/B16/" --benchmark_repetitions=1 >>"$out/ncu.txt" 2>&1
    done
  fi
  sm90_rc=$sm90_tests
}

# Build ---------------------------------------------------------------------------------------
start=$(date +%s)
sqlite_args=()
targets=()
((kernels_only)) && targets=(--target kernels_cuda_tests kernels_bench deltabench)
((train_only)) && targets=(--target train_cuda_tests kernels_cuda_tests models_cuda_tests train_step_bench kernels_bench deltabench)
# --build's targets, where a command needs only some: DELTABENCH_BUILD_TARGETS="kernels_cuda_tests deltabench"
((build_only)) && [[ -n "${DELTABENCH_BUILD_TARGETS:-}" ]] && read -r -a targets <<<"--target $DELTABENCH_BUILD_TARGETS"
[[ -n "$window_suite" ]] && targets=(--target deltabench)
((stages)) && targets=(--target kernels_cuda_tests train_cuda_tests models_cuda_tests kernels_bench stage_bench deltabench)
((sm90_only)) && targets=(--target kernels_cuda_tests train_cuda_tests stage_bench train_step_bench)
# Binaries carried from scripts/device_prebuild.sh (.prebuilt, ignored by git) in place of the build, where they
# were built from this tree's sources against this torch and hold every target of this mode (scripts/prebuilt.sh);
# else the build below, and the summary says why not.
source "$root/scripts/prebuilt.sh"
prebuilt=0
target_names=()
((${#targets[@]})) && target_names=("${targets[@]:1}")
prebuilt_use "$root" "$build_dir" "$python" "${target_names[@]}" >"$out/prebuilt.tmp" 2>&1 && prebuilt=1
[[ -s "$out/prebuilt.tmp" ]] && note "- $(cat "$out/prebuilt.tmp")"
rm -f "$out/prebuilt.tmp"
if ((prebuilt == 0)); then
  # CUTLASS's headers for the sm_90a kernels (cmake/Cute.cmake): the image's python has no nvidia-cutlass, so
  # carry its wheel in .whl (pip download --no-deps nvidia-cutlass==4.2.0.0 -d .whl); its headers are unpacked
  # into the build folder, where CMake looks.
  if ! "$python" -c "import importlib.util as u, sys; sys.exit(u.find_spec('cutlass_library') is None)" 2>/dev/null &&
     [[ ! -f "$build_dir/.cutlass/cutlass_library/source/include/cute/tensor.hpp" ]]; then
    wheel=$(ls "$root"/.whl/nvidia_cutlass-*.whl 2>/dev/null | head -n 1)
    if [[ -n "$wheel" ]]; then
      "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$build_dir/.cutlass" "$wheel" \
        >"$out/cutlass.log" 2>&1 || { note "- CUTLASS: installing $wheel failed:"; tail -n 3 "$out/cutlass.log" | tee -a "$summary"; }
      rm -f "$out/cutlass.log"
    else
      note "- CUTLASS: no nvidia-cutlass here and no wheel carried in .whl: the sm_90a kernels are not built"
    fi
  fi
  if [[ ! -f /usr/include/sqlite3.h && -f "$root/.deb/sqlite/usr/include/sqlite3.h" ]]; then
    sqlite_lib=$(ls /usr/lib/x86_64-linux-gnu/libsqlite3.so* /lib/x86_64-linux-gnu/libsqlite3.so* 2>/dev/null | head -n 1)
    sqlite_args=(-DSQLite3_INCLUDE_DIR="$root/.deb/sqlite/usr/include" -DSQLite3_LIBRARY="$sqlite_lib")
  fi
  if [[ ! -d /usr/share/cmake/nlohmann_json && ! -d /usr/lib/cmake/nlohmann_json && -d "$root/.deb/nlohmann/usr/share/cmake/nlohmann_json" ]]; then
    sqlite_args+=(-Dnlohmann_json_DIR="$root/.deb/nlohmann/usr/share/cmake/nlohmann_json")
  fi
  {
    # sm_90a alone: the GPU here is Hopper, where an sm_80 binary does not run (cmake/Cuda.cmake).
    cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDELTABENCH_PYTHON="$python" \
      -DDELTABENCH_CUDA_ARCHS=90a "${sqlite_args[@]}" &&
      cmake --build "$build_dir" -j "$jobs" "${targets[@]}"
  } >"$out/build.log" 2>&1
  build_rc=$?
  note "- build: rc=$build_rc in $(($(date +%s) - start)) s with $jobs jobs (log: build.log)"
  if ((build_rc != 0)); then
    tail -n 40 "$out/build.log"
    exit 1
  fi
fi
((build_only)) && exit 0

# --sm90: the sm_90a kernels alone.
if ((sm90_only)); then
  : >"$out/tests.log"
  sm90_checks
  note "status: $((sm90_rc != 0 || status != 0))"
  exit $((sm90_rc != 0 || status != 0))
fi

# --stages: the chunked pair's kernels tested, timed against the ATen stages in the same run, and profiled by
# kernel; then a window where asked and every test passed.
if ((stages)); then
  start=$(date +%s)
  filter="${DELTABENCH_KERNEL_TESTS:-cuda: the chunked backward*,cuda: the delta rules*,cuda: the training kernels*,cuda: the op*,cuda: the public ops*,cuda: auto and kernel*}"
  timeout 240 "$build_dir/tests/kernels_cuda_tests" "$filter" >"$out/tests.log" 2>&1
  kernel_tests=$?
  OMP_NUM_THREADS=1 timeout 150 "$build_dir/tests/train_cuda_tests" >>"$out/tests.log" 2>&1
  train_tests=$?
  timeout 150 "$build_dir/tests/models_cuda_tests" >>"$out/tests.log" 2>&1 || train_tests=1
  note "- kernels_cuda_tests (\"$filter\"): rc=$kernel_tests; train_cuda_tests and models_cuda_tests: rc=$train_tests; $(($(date +%s) - start)) s (tests.log)"
  grep -E '^All tests passed|^test cases:|FAILED' "$out/tests.log" | head -n 12 | tee -a "$summary"
  # The backward's [small] cases under compute-sanitizer (DELTABENCH_SANITIZE=0: not): a race in the
  # double-buffered staging need not show in the numbers. An error fails like a test (no window); a tool
  # stopped by its time limit (rc 124) only says so.
  if [[ "${DELTABENCH_SANITIZE:-1}" != 0 ]] && command -v compute-sanitizer >/dev/null; then
    for tool in racecheck memcheck; do
      sanitize "$tool" '[backward][small]' "${DELTABENCH_SANITIZE_SECONDS:-90}"
      san_rc=$?
      ((san_rc != 0 && san_rc != 124)) && kernel_tests=1
    done
  fi
  timeout "${DELTABENCH_BENCH_SECONDS:-120}" "$build_dir/bench/kernels_bench" \
    --benchmark_filter='^(aten-stages:)?fwd_bwd_(gated_delta_rule|delta_rule|linear_attention)/' \
    --benchmark_out="$out/bench.json" --benchmark_out_format=json >"$out/bench.tmp" 2>&1 || status=1
  note ""
  note "Forward + backward, the stage kernels and the ATen stages (median of 15, L2 flushed; bench.json):"
  grep -E '_median' "$out/bench.tmp" | sed -E 's/iterations:1\/repeats:15\/manual_time_median//' | tee -a "$summary"
  rm -f "$out/bench.tmp"
  if command -v ncu >/dev/null; then
    timeout 90 ncu --metrics gpu__time_duration.sum --csv -c 600 "$build_dir/bench/kernels_bench" \
      --benchmark_filter='^fwd_bwd_delta_rule/B16/' --benchmark_repetitions=1 >"$out/profile.csv" 2>&1
    "$python" "$root/bench/ncu_summary.py" "$out/profile.csv" --label "fwd_bwd_delta_rule, 16 x 2K, 600 launches" \
      --top 20 >"$out/ncu.txt" 2>&1
    rm -f "$out/profile.csv"
    note ""
    note "Nsight Compute, fwd_bwd_delta_rule at 16 x 2K, GPU time by kernel (ncu.txt):"
    head -n 12 "$out/ncu.txt" | tee -a "$summary"
  fi
  # The sm_90a kernels too where asked (DELTABENCH_SM90=1; --sm90 runs them alone): nothing trains on
  # them yet, so a failure there says so and does not stop a window.
  [[ "${DELTABENCH_SM90:-0}" != 0 ]] && sm90_checks
  if ((kernel_tests != 0 || train_tests != 0)); then
    note "status: 1 (a test failed: no window)"
    exit 1
  fi
  window_suite="${DELTABENCH_THEN_WINDOW:-}"
  if [[ -z "$window_suite" ]]; then
    note "status: $status"
    exit $status
  fi
fi

# One window of a long suite (--window): the carried store, the suite until the time limit, the store back.
if [[ -n "$window_suite" ]]; then
  store="$out/$window_suite.sqlite"
  count() {  # runs of the suite in store $1 (default: the window's), and the grid's size: "done total" (none: "0 ?")
    local path="${1:-$store}"
    [[ -f "$path" ]] || { echo "0 ?"; return; }
    (cd "$root" && "$build_dir/deltabench" run "$window_suite" --store "$path" --dry-run 2>/dev/null) |
      sed -n 's/.*: \([0-9]*\) runs in the grid; \([0-9]*\) already in.*/\2 \1/p' | head -n 1
  }
  # The window's store is every record there is: the committed export (results/SUITE/runs.json, the windows
  # of earlier sessions), the carried store, and the one an earlier call of this session left on this warm
  # machine (kept beside the runs' resume states). `store merge` keeps each run once and refuses two
  # different results for one run.
  carried="$root/.store/$window_suite.sqlite" kept="$root/.resume/$window_suite.sqlite"
  committed="$root/results/$window_suite/runs.json"
  seeds=()
  for f in "$committed" "$carried" "$kept"; do [[ -f "$f" ]] && seeds+=("$f"); done
  # The other suites' committed exports too: a run of this suite that one of them finished (the same experiment)
  # is copied rather than trained (run's reuse; --no-reuse not given); window_land.sh keeps this suite's alone.
  for f in "$root"/results/*/runs.json; do [[ -f "$f" && "$f" != "$committed" ]] && seeds+=("$f"); done
  if ((${#seeds[@]})); then
    if ! "$build_dir/deltabench" store merge "${seeds[@]}" -o "$store" >>"$out/suite.log" 2>&1; then
      note "- the store: merging ${seeds[*]} failed:"
      tail -n 3 "$out/suite.log" | tee -a "$summary"
      exit 1
    fi
    note "- the store: merged from ${seeds[*]#"$root/"}"
  fi
  # Runs at once through NVIDIA's Multi-Process Service (DELTABENCH_MPS=1; scripts/mps.sh), and how many
  # at once (DELTABENCH_PER_GPU; default: run's own).
  per_gpu=()
  [[ -n "${DELTABENCH_PER_GPU:-}" ]] && per_gpu=(--per-gpu "$DELTABENCH_PER_GPU")
  mps=0
  if [[ "${DELTABENCH_MPS:-0}" == 1 ]]; then
    # Sourced: it exports the daemon's pipe directory, which the runs' processes inherit.
    # shellcheck source=scripts/mps.sh
    source "$root/scripts/mps.sh" start >"$out/mps.tmp" 2>&1 && mps=1
    note "- $(tr '\n' ' ' <"$out/mps.tmp")"
    rm -f "$out/mps.tmp"
  fi
  # The runs this window may take (DELTABENCH_ONLY="model=delta_net,gated_delta_net d_model=64": run's --only,
  # one per word), e.g. the grid's cells that stop early first.
  only=()
  read -r -a only_words <<<"${DELTABENCH_ONLY:-}"
  for w in "${only_words[@]}"; do only+=(--only "$w"); done
  note "- runs at once: ${DELTABENCH_PER_GPU:-the default of run}; MPS: $( ((mps)) && echo on || echo off); only: ${DELTABENCH_ONLY:-every run}"
  read -r before total < <(count)
  seconds="${DELTABENCH_SUITE_SECONDS:-480}"
  # DELTABENCH_CALL_SECONDS: the device call's own limit. The window then ends 30 s before it, whatever the
  # build took, so that the store is kept and brought back (2026-12-06: a 540 s window after a 63 s build ran
  # into a 600 s call's limit, and the store came back only through its write-ahead log).
  if [[ -n "${DELTABENCH_CALL_SECONDS:-}" ]]; then
    left=$((DELTABENCH_CALL_SECONDS - SECONDS - 30))
    if ((left < 30)); then
      note "- window of $window_suite: not run: DELTABENCH_CALL_SECONDS=$DELTABENCH_CALL_SECONDS leaves $left s after $SECONDS s of setup (at least 30 needed)"
      exit 1
    fi
    ((left < seconds)) && seconds=$left
  fi
  start=$(date +%s)
  # The runs in flight save their state every epoch (at most every 30 s) in .resume/SUITE on this machine: a next
  # call on the same warm machine goes on from there. At the end they come back in $OUT (resume.tar.part*,
  # scripts/resume_states.sh), and window_land.sh puts them in .store/SUITE.resume: carried (carry
  # .store/SUITE.resume), they seed a fresh machine's, and its runs go on from them (--resume-any-commit: they
  # were saved at an earlier session's commit, which each run's record then names).
  resume_dir="$root/.resume/$window_suite"
  states_before=$(ls "$resume_dir" 2>/dev/null | wc -l)
  note "- $(bash "$root/scripts/resume_states.sh" seed "$root/.store/$window_suite.resume" "$resume_dir" 2>&1)"
  # run's --time-limit: a run its cell's finished runs say would outlast the window is not started (2026-12-06:
  # 8 zoology-mqar runs of about 10 minutes began a 453 s window on the session's last call, and were lost).
  # DELTABENCH_TIME_LIMIT=0 starts them anyway: for a window that another call on this warm machine will follow,
  # which resumes them from their saved epochs.
  time_limit=(--time-limit "$seconds")
  [[ "${DELTABENCH_TIME_LIMIT:-1}" == 0 ]] && time_limit=()
  (cd "$root" && timeout -s TERM "$seconds" "$build_dir/deltabench" run "$window_suite" --store "$store" \
    --progress-interval 60 --no-report --resume-dir "$resume_dir" --resume-interval "${DELTABENCH_RESUME_INTERVAL:-30}" \
    --resume-any-commit "${per_gpu[@]}" "${only[@]}" "${time_limit[@]}") >>"$out/suite.log" 2>&1
  rc=$?
  ((mps)) && "$root/scripts/mps.sh" stop
  elapsed=$(($(date +%s) - start))
  # Kept for a next call through `store merge`, not cp: a store stopped by the time limit may hold its last
  # runs in its write-ahead log (SUITE.sqlite-wal), which a copy of the main file alone loses (2026-12-04,
  # session 3: the kept copy had 11 runs where the store had 16).
  mkdir -p "$root/.resume" && "$build_dir/deltabench" store merge "$store" -o "$kept" >>"$out/suite.log" 2>&1
  # The store back as one file without its write-ahead log: $OUT brings back 8 files at most, and the runs'
  # resume states below may take 3 of them.
  if "$build_dir/deltabench" store merge "$store" -o "$out/whole.sqlite" >>"$out/suite.log" 2>&1; then
    rm -f "$store" "$store-wal" "$store-shm" && mv "$out/whole.sqlite" "$store"
  fi
  read -r after total < <(count)
  gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
  note "- window of $window_suite: rc=$rc (124: stopped at the time limit, as planned), $elapsed s, runs in the store ${before:-?} -> ${after:-?} of ${total:-?}"
  note "- runs not started by --time-limit (predicted to outlast the window): $(grep -c 'left for a later window' "$out/suite.log")"
  note "- runs copied from other suites (the same experiments): $(grep -h -o '^\(\[[^]]*\] \)\?[0-9]* run(s) copied from suite [^:]*' "$out/suite.log" | head -n 1)"
  note "- runs' resume states on this machine: $states_before at the start (from an earlier call), $(ls "$resume_dir" 2>/dev/null | wc -l) at the end; resumed: $(grep -c 'resumed after epoch' "$out/suite.log")"
  # Back in $OUT within DELTABENCH_RESUME_OUT_MB (default 32 MiB: the next call carries them beside the tree, .whl and
  # .deb, 64 MiB in all), the smallest first; the rest start over in the next session.
  note "- $(bash "$root/scripts/resume_states.sh" pack "$resume_dir" "$out" "${DELTABENCH_RESUME_OUT_MB:-32}" 2>&1)"
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$(date -u +%F)" "$DELTABENCH_COMMIT" "${gpu:-none}" "${before:-?}" \
    "${after:-?}" "${total:-?}" "$elapsed" >"$out/window.md"
  tail -n 5 "$out/suite.log" | tee -a "$summary"
  note "status: $status"
  exit $status
fi

note "- first libraries a test binary needs: $(readelf -d "$build_dir/tests/train_tests" 2>/dev/null | grep NEEDED | head -n 3 | sed 's/.*\[\(.*\)\]/\1/' | tr '\n' ' ')"

if ((kernels_only)); then
  # The CUDA kernel tests, the benchmark, FLA, a profile, then compute-sanitizer on the small cases.
  start=$(date +%s)
  # DELTABENCH_KERNEL_TESTS: a Catch2 test spec (a tag such as "[sm90]", or "~[sm90]") for a part of them.
  tests_spec=()
  [[ -n "${DELTABENCH_KERNEL_TESTS:-}" ]] && tests_spec=("$DELTABENCH_KERNEL_TESTS")
  OMP_NUM_THREADS=1 "$build_dir/tests/kernels_cuda_tests" "${tests_spec[@]}" >"$out/tests.log" 2>&1 || status=1
  note "- kernels_cuda_tests ${tests_spec[*]:-(all)}: $(tail -n 2 "$out/tests.log" | tr '\n' ' ') in $(($(date +%s) - start)) s"
  grep -B 3 -A 12 'FAILED' "$out/tests.log" | head -n 60
  grep -E '^(training kernel |chunk_dout, chunk_grads |chunk_ut_forward, chunk_ut_backward )' "$out/tests.log" >"$out/backward_errors.log"
  note "- training kernels' relative RMS errors: $(wc -l <"$out/backward_errors.log") cases in backward_errors.log"
  ((run_bench)) && kernel_benchmarks "$out/bench.log"
  if ((run_bench)) && [[ "${DELTABENCH_NCU:-1}" != 0 ]] && command -v ncu >/dev/null; then
    # The stall reasons per issued instruction and the source hot spots (the kernels build with -lineinfo).
    timeout 150 ncu --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
      --section MemoryWorkloadAnalysis --section SourceCounters \
      --metrics 'regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio' -k regex:chunk_forward_tc -c 1 \
      "$build_dir/bench/kernels_bench" --benchmark_filter='^delta_rule/B16/' --benchmark_repetitions=1 \
      >"$out/ncu.log" 2>&1
    note ""
    note "Nsight Compute, one chunk_forward_tc_kernel launch (delta rule, 16 x 2K): see ncu.log"
    # Where a forward + backward's GPU time goes (16 x 2K, both delta rules): every kernel of the first 600
    # launches (a few calls of the op), summed by kernel (bench/ncu_summary.py): the chunked backward's own
    # kernels (chunk_dout, chunk_grads, chunk_ut_*, the walks) against what ATen still does around them.
    for rule in delta_rule gated_delta_rule; do
      timeout 120 ncu --metrics gpu__time_duration.sum --csv -c 600 "$build_dir/bench/kernels_bench" \
        --benchmark_filter="^fwd_bwd_$rule/B16/" --benchmark_repetitions=1 >"$out/profile.csv" 2>&1
      "$python" "$root/bench/ncu_summary.py" "$out/profile.csv" --label "fwd_bwd_$rule, 16 x 2K, 600 launches" \
        --top 30 >"$out/ncu.tmp" 2>&1
      note "Nsight Compute, fwd_bwd_$rule at 16 x 2K, GPU time by kernel (the first 600 launches; all in ncu.log):"
      head -n 14 "$out/ncu.tmp" | tee -a "$summary"
      cat "$out/ncu.tmp" >>"$out/ncu.log"
    done
    rm -f "$out/profile.csv" "$out/ncu.tmp"
    # The segment-parallel pass's two launches (gated delta rule, 1 x 32K): step 1 without outputs, step 3.
    timeout 90 ncu --section SpeedOfLight --section LaunchStats -k regex:chunk_forward_tc -c 2 \
      "$build_dir/bench/kernels_bench" --benchmark_filter='^gated_delta_rule/B1/' --benchmark_repetitions=1 \
      >"$out/ncu.tmp" 2>&1
    note "Nsight Compute, the segmented 1 x 32K gated launches (grid, duration):"
    grep -E '^  [a-z_ ]*void|Grid Size|Duration' "$out/ncu.tmp" | tee -a "$summary"
    cat "$out/ncu.tmp" >>"$out/ncu.log"
    # The decode step at B = 64: how close to the memory system's limit it runs.
    timeout 60 ncu --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy -k regex:recurrent_decode \
      -c 1 "$build_dir/bench/kernels_bench" --benchmark_filter='^decode_gated_delta_rule/B64/' --benchmark_repetitions=1 \
      >"$out/ncu.tmp" 2>&1
    note "Nsight Compute, one decode step at B = 64:"
    grep -E 'Duration|DRAM Throughput|Memory Throughput|Achieved Occupancy' "$out/ncu.tmp" | tee -a "$summary"
    cat "$out/ncu.tmp" >>"$out/ncu.log"
    rm -f "$out/ncu.tmp"
  fi
  # Last: the slowest step, so that a time limit cuts it rather than the numbers.
  if [[ "${DELTABENCH_SANITIZE:-1}" != 0 ]] && command -v compute-sanitizer >/dev/null; then
    for tool in memcheck racecheck; do
      sanitize "$tool" '[small]' 150 || status=1
    done
  fi
  note ""
  note "status: $status"
  exit $status
fi

if ((train_only)); then
  # The captured step against the eager one (200 steps, three mixers, fp32 and bf16), divergence, learning.
  start=$(date +%s)
  OMP_NUM_THREADS=1 timeout "${DELTABENCH_TEST_SECONDS:-180}" "$build_dir/tests/train_cuda_tests" >"$out/tests.log" 2>&1 ||
    status=1
  note "- train_cuda_tests: $(tail -n 2 "$out/tests.log" | tr '\n' ' ') in $(($(date +%s) - start)) s"
  grep -B 3 -A 15 'FAILED' "$out/tests.log" | head -n 80
  grep -E 'gradients, kernel against|kernel against reference ops' "$out/tests.log" | tee -a "$summary"
  # The models' own CUDA kernels (the short convolution, the L2 norm): against the fp64 definition and ATen.
  start=$(date +%s)
  OMP_NUM_THREADS=1 timeout 120 "$build_dir/tests/models_cuda_tests" >>"$out/tests.log" 2>&1 || status=1
  note "- models_cuda_tests: $(tail -n 2 "$out/tests.log" | tr '\n' ' ') in $(($(date +%s) - start)) s"
  if command -v compute-sanitizer >/dev/null; then
    timeout 120 compute-sanitizer --tool memcheck --error-exitcode 1 --kernel-name kns=deltabench \
      "$build_dir/tests/models_cuda_tests" "*raw kernels*" >"$out/sanitizer.tmp" 2>&1 || status=1
    note "- compute-sanitizer memcheck (the short convolution's and the L2 norm's kernels): $(grep -E 'ERROR SUMMARY' "$out/sanitizer.tmp" | tail -n 1)"
    cat "$out/sanitizer.tmp" >>"$out/tests.log"
    rm -f "$out/sanitizer.tmp"
  fi
  # The kernel tests of a tag too (DELTABENCH_KERNEL_TESTS, e.g. "[backward]"): after a dispatch change.
  if [[ -n "${DELTABENCH_KERNEL_TESTS:-}" ]]; then
    start=$(date +%s)
    OMP_NUM_THREADS=1 timeout 300 "$build_dir/tests/kernels_cuda_tests" "$DELTABENCH_KERNEL_TESTS" >>"$out/tests.log" 2>&1 ||
      status=1
    note "- kernels_cuda_tests $DELTABENCH_KERNEL_TESTS: $(tail -n 2 "$out/tests.log" | tr '\n' ' ') in $(($(date +%s) - start)) s"
  fi
  # One training step of Zoology's MQAR model: ours eager and captured.
  start=$(date +%s)
  timeout 150 "$build_dir/bench/train_step_bench" --device=cuda --benchmark_out="$out/train_step_bench.json" \
    --benchmark_out_format=json >"$out/bench.log" 2>&1 || status=1
  note ""
  note "training step, ours (Google Benchmark, mean ms per step; $(($(date +%s) - start)) s):"
  grep -E '^train_step/' "$out/bench.log" | sed -E 's/V:8192\/d:128\///; s/\/real_time//' | tee -a "$summary"
  grep -iE 'error' "$out/bench.log" | head -n 5 | tee -a "$summary"
  # Where a captured step's GPU time goes (DELTABENCH_STEP_PROFILE=1): Nsight Compute times every kernel of
  # the first 3000 launches of one case (the warm-up's eager steps, the capture, the replays: the same
  # kernels), summed by kernel (bench/ncu_summary.py). DeltaNet and attention under auto (as runs train on Hopper:
  # kernel:3, the sm_90a training op), at L 256.
  if [[ "${DELTABENCH_STEP_PROFILE:-0}" == 1 ]] && command -v ncu >/dev/null; then
    for case in "DeltaNet, auto:mixer:2/V:8192/d:128/L:256/B:256/pairs:16/graph:1/kernel:3" \
      "attention, auto:mixer:0/V:8192/d:128/L:256/B:256/pairs:16/graph:1/kernel:2"; do
      label="${case%%:mixer*}" filter="${case#*:}"
      timeout 240 ncu --metrics gpu__time_duration.sum --csv -c 3000 "$build_dir/bench/train_step_bench" --device=cuda \
        --benchmark_filter="^train_step/$filter" >"$out/profile.csv" 2>&1 || status=1
      "$python" "$root/bench/ncu_summary.py" "$out/profile.csv" --label "$label, L 256, B 256, 3000 launches" \
        --top 30 >>"$out/step_profile.log" 2>&1 || status=1
    done
    rm -f "$out/profile.csv"
    head -n 16 "$out/step_profile.log" | tee -a "$summary"
  fi
  # The Zoology preset as a user trains it, 300 steps: captured (and eager, unless DELTABENCH_TRAIN_EAGER=0).
  # DELTABENCH_TRAIN_BACKENDS="kernel reference": the preset to its early stop on each backend instead.
  metrics_dir=$(mktemp -d)
  modes=(captured eager)
  [[ "${DELTABENCH_TRAIN_EAGER:-1}" == 0 ]] && modes=(captured)
  [[ "${DELTABENCH_TRAIN_PRESET:-1}" == 0 ]] && modes=()
  for mode in "${modes[@]}"; do
    flags=()
    [[ $mode == eager ]] && flags=(--eager)
    (cd "$metrics_dir" && timeout 60 "$build_dir/deltabench" train "$root/configs/zoology-mqar.toml" --max-steps 300 \
      "${flags[@]}") >>"$out/train.log" 2>&1 || status=1
  done
  for backend in ${DELTABENCH_TRAIN_BACKENDS:-}; do
    (cd "$metrics_dir" && timeout 150 "$build_dir/deltabench" train "$root/configs/zoology-mqar.toml" --backend "$backend" \
      --metrics "zoology-mqar-$backend.jsonl") >>"$out/train.log" 2>&1 || status=1
    cp "$metrics_dir/zoology-mqar-$backend.jsonl" "$out/" 2>/dev/null
  done
  note ""
  [[ -f "$out/train.log" ]] && grep -E '^(summary|backend|step):' "$out/train.log" | tee -a "$summary"
  # The run command's test on the GPU (its --backend kernel grid among the checks), DELTABENCH_RUN_TEST=1.
  if [[ "${DELTABENCH_RUN_TEST:-0}" == 1 ]]; then
    start=$(date +%s)
    timeout 300 bash "$root/tests/apps/run_command_test.sh" "$build_dir/deltabench" "$root" >"$out/run_test.log" 2>&1 ||
      status=1
    note "- tests/apps/run_command_test.sh on the GPU: $(tail -n 1 "$out/run_test.log") in $(($(date +%s) - start)) s"
    grep -E '^FAILED|kernel' "$out/run_test.log" | tee -a "$summary"
  fi
  # How many runs to train at once on one GPU: N copies of a Zoology run started together (the rule
  # behind run --per-gpu's default). DeltaNet at L 256 (GPU-bound on reference ops) and attention at L 64.
  if [[ "${DELTABENCH_PER_GPU_PROBE:-1}" != 0 ]]; then
    probe_dir=$(mktemp -d)
    sed -e 's/^kind = "delta_net"/kind = "attention"\nattention_dropout = 0.1/' -e 's/^num_heads = 2 .*/num_heads = 1/' \
      -e 's/^embed_dropout = 0.1/embed_dropout = 0.1\nposition_embeddings = true/' -e 's/^seq_len = 256/seq_len = 64/' \
      -e 's/^num_kv_pairs = 16/num_kv_pairs = 4/' -e 's/^batch_size = 256 .*/batch_size = 512/' \
      "$root/configs/zoology-mqar.toml" >"$probe_dir/zoology-attention-l64.toml"
    note ""
    note "runs at once on one GPU (bench/per_gpu_probe.sh):"
    for probe in "$root/configs/zoology-mqar.toml 400" "$probe_dir/zoology-attention-l64.toml 1500"; do
      read -r probe_config probe_steps <<<"$probe"
      timeout 150 bash "$root/bench/per_gpu_probe.sh" "$build_dir/deltabench" "$probe_config" "$probe_steps" 1 2 4 \
        >>"$out/probe.log" 2>&1 || status=1
    done
    grep -E '^per_gpu_probe: ' "$out/probe.log" | tee -a "$summary"
  fi
  # PyTorch + FLA last: triton compiles and autotunes on its first calls; a time limit cuts only this.
  if [[ -d "$root/.fla/fla" ]]; then
    start=$(date +%s)
    timeout "${DELTABENCH_FLA_SECONDS:-200}" "$python" "$root/bench/train_step_fla.py" --fla "$root/.fla" \
      --lengths "${DELTABENCH_FLA_LENGTHS:-64,256,512}" --out "$out/train_step_fla.json" >>"$out/bench.log" 2>&1 ||
      status=1
    note ""
    note "training step, PyTorch + FLA (median ms per step, $(($(date +%s) - start)) s with triton's compilation):"
    grep -E '^train_step_fla: ' "$out/bench.log" | tee -a "$summary"
  fi
  note ""
  note "status: $status"
  exit $status
fi

# Tests ---------------------------------------------------------------------------------------
start=$(date +%s)
test_cap=3000
((harness)) && test_cap=240  # the suite run that follows needs the rest of the call
(cd "$build_dir" && OMP_NUM_THREADS=1 timeout "$test_cap" ctest -j "$jobs" --output-on-failure --timeout 900) >"$out/tests.log" 2>&1
test_rc=$?
((test_rc != 0)) && status=1
note "- tests: rc=$test_rc in $(($(date +%s) - start)) s: $(grep -E 'tests passed' "$out/tests.log" | tail -n 1)"
grep -E '^\s*[0-9]+ - .*\((Failed|Timeout|Not Run|SEGFAULT|Exception)' "$out/tests.log" | tee -a "$summary"

# The harness as a user meets it: the README's GPU suite command with no --device, four workers on the
# visible GPUs sharing the grid through the store's claims, stopped after a while (SIGTERM to the parent;
# its workers die with it), then what the store holds and the report.
if ((harness)); then
  # One DeltaNet experiment first (the Zoology preset: head dim 64, which the forward kernel serves at
  # evaluation): its summary names the device and the op backends that ran.
  metrics_dir=$(mktemp -d)
  (cd "$metrics_dir" && timeout 90 "$build_dir/deltabench" train "$root/configs/zoology-mqar.toml" --max-steps 300) \
    >"$out/train.log" 2>&1 || status=1
  grep -E '^(zoology-mqar:|summary:|backend:)' "$out/train.log" | tee -a "$summary"
  seconds="${DELTABENCH_SUITE_SECONDS:-150}"
  store="$out/zoology-mqar.sqlite"
  # The grid's runs done in earlier windows (the committed export), so that this call's runs are new ones
  # and its store merges into the export without conflicts.
  if [[ -f "$root/results/zoology-mqar/runs.json" ]]; then
    "$build_dir/deltabench" store merge "$root/results/zoology-mqar/runs.json" -o "$store" 2>&1 | tee -a "$summary"
  fi
  start=$(date +%s)
  (cd "$root" && timeout -s TERM "$seconds" "$build_dir/deltabench" run zoology-mqar --store "$store" \
    --progress-interval 20) >"$out/suite.log" 2>&1 &
  suite_pid=$!
  sleep 60
  note "- nvidia-smi 60 s into the suite: $(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader)"
  note "- processes on the GPU: $(nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader | wc -l)"
  wait $suite_pid
  note "- zoology-mqar (the default runs per GPU) for ${seconds} s: rc=$? (124: stopped by timeout, as planned) after $(($(date +%s) - start)) s"
  sleep 2
  note "- workers left after the parent ended: $(pgrep -f -- "--store $store --worker" | wc -l)"
  head -n 3 "$out/suite.log" | tee -a "$summary"
  grep -m 4 'epoch' "$out/suite.log" | tee -a "$summary"
  note ""
  "$build_dir/deltabench" runs list --store "$store" 2>&1 | tee -a "$summary"
  "$build_dir/deltabench" runs export --store "$store" --format json --out "$out/zoology-mqar-runs.json" >/dev/null 2>&1
  # The default keeps the runs in flight resumable beside the store: count them, and keep them off $OUT.
  note "- resume states beside the store when it stopped: $(ls "$store.resume" 2>/dev/null | wc -l)"
  rm -rf "$store.resume"
  report_dir=$(mktemp -d)
  (cd "$root" && "$build_dir/deltabench" report zoology-mqar --store "$store" --out "$report_dir") >>"$out/suite.log" 2>&1 || status=1
  note ""
  head -n 12 "$report_dir/table.md" | tee -a "$summary"
  note ""
  note "status: $status"
  exit $status
fi

# compute-sanitizer on deltabench's own CUDA kernels, small shapes: memcheck and racecheck.
if command -v compute-sanitizer >/dev/null; then
  for tool in memcheck racecheck; do
    filter='[small]'
    [[ $tool == memcheck ]] && filter='[small],cuda: poison_*'
    sanitize "$tool" "$filter" 600 100000000 || status=1
  done
fi

# Smoke on the GPU ----------------------------------------------------------------------------
note ""
"$build_dir/deltabench" smoke --device cuda --batch 8 --seq-len 2048 --heads 16 --head-dim 128 \
  >"$out/smoke.tmp" 2>&1 || status=1
cat "$out/smoke.tmp" >>"$summary"
cat "$out/smoke.tmp"
rm -f "$out/smoke.tmp"

# Training on the GPU: the tiny MQAR preset to the end, and the Zoology preset for a timed slice.
note ""
metrics_dir=$(mktemp -d)
(cd "$metrics_dir" && "$build_dir/deltabench" train "$root/configs/mqar-tiny.toml" --device cuda --metrics train-mqar-tiny.jsonl) \
  >"$out/train.log" 2>&1 || status=1
(cd "$metrics_dir" && "$build_dir/deltabench" train "$root/configs/zoology-mqar.toml" --device cuda --max-steps 300 \
  --metrics train-zoology-mqar.jsonl) >>"$out/train.log" 2>&1 || status=1
grep -E '^(summary|mqar-tiny|zoology-mqar):' "$out/train.log" | tee -a "$summary"

# Benchmarks ----------------------------------------------------------------------------------
if ((run_bench)); then
  "$build_dir/bench/reference_ops_bench" --device=cuda --benchmark_min_time=0.2s \
    --benchmark_out="$out/reference_ops_bench.json" --benchmark_out_format=json \
    >"$out/bench.tmp" 2>&1 || status=1
  note ""
  note "reference ops on the GPU (Google Benchmark, mean time per iteration; full JSON: reference_ops_bench.json)"
  grep -E '^(chunk|recurrent)/' "$out/bench.tmp" | tee -a "$summary"
  rm -f "$out/bench.tmp"

  kernel_benchmarks "$out/bench.tmp"
  rm -f "$out/bench.tmp" "$out/kernels_bench.json"  # kernels.csv keeps the medians: 8 files come back at most
fi

note ""
note "status: $status"
exit $status
