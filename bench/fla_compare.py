#!/usr/bin/env python3
"""Times flash-linear-attention (FLA) on the cases of the registry, beside kernels_bench's results.

    fla_compare.py --ours kernels_bench.json --out kernels.csv [--fla <dir holding an unmodified fla/ package>]
                   [--filter <regex of case names, as kernels_bench's --benchmark_filter>]
    fla_compare.py --list-cases        the registry's cases, one "op B T H K V dtype" line each

The registry is bench/kernel_cases.toml (or $DELTABENCH_KERNEL_CASES), the file kernels_bench and the
report read; its sweeps expand here as bench/kernel_cases.cpp expands them (tests/scripts/
kernel_cases_test.sh compares this listing with `deltabench kernel-cases`). The CSV carries the copy
and matrix rates kernels_bench measured in the run (copy_GB_per_s, matmul_TFLOP_per_s), from which the
report computes each case's floor.

Writes one CSV of median milliseconds, a row per (case, implementation): deltabench's kernels and torch
SDPA from kernels_bench's JSON, FLA timed here. `deltabench kernel-report kernels.csv` turns it into
the tables and throughput curves. Without --fla (or where FLA fails on a case) the FLA rows are left out.

FLA is never part of this repository: scripts/device.sh passes a copy unpacked from its git history.
Timing matches bench/kernels_bench.cpp: a 256 MB write flushes L2, CUDA events around the call, median
of 15, taken twice: ms, the GPU's time (a spin kernel holds the GPU while Python queues the call, so
launch costs are hidden), and call_ms, the call from an idle GPU with Python's and Triton's launch
costs. Decode is timed eagerly per call (as FLA is used from Python), 100 calls per timing. Forward +
backward cases (fwd_bwd_*) time the op and torch.autograd.grad of every input for a fixed random do;
kernels_bench's "reference:" rows (deltabench's reference ops) become impl deltabench-reference.

Timing only: FLA refuses the gated backward on Hopper with triton < 3.7.1 (FLA issue #640, a reported
miscompile); this script lifts that guard in memory so that the gated forward + backward can be timed,
as bench/train_step_fla.py does. Correctness of FLA is not what is measured here.
"""
import argparse
import json
import os
import re
import sys
import time
import tomllib
import types
from pathlib import Path


def registry_path() -> Path:
    env = os.environ.get("DELTABENCH_KERNEL_CASES")
    return Path(env) if env else Path(__file__).with_name("kernel_cases.toml")


def cases(path: Path):
    """(op, B, T, H, K, V, dtype) of every case: the fixed cases in order, then each sweep's new ones (a
    sweep's tables in the file's order; B = max(1, tokens // T) where the sweep gives tokens; each B of an
    array at the sweep's one T). dtype: a fixed row's eighth field, a sweep's `dtype`, else bf16."""
    registry = tomllib.loads(path.read_text())
    out = [tuple(row[:6]) + (row[7] if len(row) > 7 else "bf16",) for row in registry.get("fixed", {}).get("cases", [])]
    for sweep in registry.get("sweeps", {}).values():  # tomllib keeps the file's order
        for op in sweep["ops"]:
            if isinstance(sweep.get("B"), list):
                points = [(B, sweep["T"][0]) for B in sweep["B"]]
            else:
                points = [(max(1, sweep["tokens"] // T) if "tokens" in sweep else sweep["B"], T) for T in sweep["T"]]
            for B, T in points:
                case = (op, B, T, sweep["H"], sweep["K"], sweep["V"], sweep.get("dtype", "bf16"))
                if case not in out:
                    out.append(case)
    return out


def case_name(op, B, T, H, K, V, dtype):
    """Google Benchmark's name of a case, as kernels_bench gives it (bench/kernel_cases.cpp, case_name)."""
    return f"{op}/B{B}/T{T}/H{H}/K{K}" + ("" if dtype == "bf16" else f"/{dtype}")


def import_fla(path: str):
    """fla.ops from an unmodified copy, without fla/__init__.py (it pulls in layers and transformers)."""
    sys.path.insert(0, path)
    package = types.ModuleType("fla")
    package.__path__ = [str(Path(path) / "fla")]
    init = (Path(path) / "fla" / "__init__.py").read_text()
    version = re.search(r"__version__\s*=\s*['\"]([^'\"]+)['\"]", init)
    package.__version__ = version[1] if version else "unknown"  # fla.utils imports it
    sys.modules["fla"] = package
    import fla.ops.common.chunk_o as chunk_o
    chunk_o.TRITON_ABOVE_3_7_1 = True  # timing only: see the module docstring
    from fla.ops.delta_rule import chunk_delta_rule, fused_recurrent_delta_rule
    from fla.ops.gated_delta_rule import chunk_gated_delta_rule, fused_recurrent_gated_delta_rule
    from fla.ops.simple_gla import chunk_simple_gla, fused_recurrent_simple_gla

    ops = {
        "delta_rule": lambda q, k, v, g, beta, h: chunk_delta_rule(q, k, v, beta),
        "gated_delta_rule": lambda q, k, v, g, beta, h: chunk_gated_delta_rule(q, k, v, g, beta),
        "linear_attention": lambda q, k, v, g, beta, h: chunk_simple_gla(q, k, v, g),  # with scalar decay
        "decode_gated_delta_rule": lambda q, k, v, g, beta, h: fused_recurrent_gated_delta_rule(
            q, k, v, g, beta, initial_state=h, output_final_state=True),
        # The other families' decode steps, as FLA's layers decode (keywords: the orders differ by version).
        "decode_delta_rule": lambda q, k, v, g, beta, h: fused_recurrent_delta_rule(
            q=q, k=k, v=v, beta=beta, initial_state=h, output_final_state=True),
        "decode_linear_attention": lambda q, k, v, g, beta, h: fused_recurrent_simple_gla(
            q=q, k=k, v=v, g=g, initial_state=h, output_final_state=True),
    }
    ops["fwd_bwd_delta_rule"] = ops["delta_rule"]
    ops["fwd_bwd_gated_delta_rule"] = ops["gated_delta_rule"]
    ops["fwd_bwd_linear_attention"] = ops["linear_attention"]
    return package.__version__, ops


_flush = []  # the L2 flush buffer, allocated at the first timing: without FLA this script needs no GPU
SPIN_CYCLES = 10_000_000  # as kernels_bench's kSpinCycles (bench/gpu_timing.h): about 5 ms on the H100


def gpu_ms_once(fn, calls, hide_launch):
    """Milliseconds per call of `calls` calls of fn, L2 flushed first; with hide_launch, a spin kernel holds
    the GPU while Python queues the calls (bench/gpu_timing.h's time_once)."""
    import torch
    if not _flush:
        _flush.append(torch.empty(256 << 20, dtype=torch.uint8, device="cuda"))
    _flush[0].zero_()
    if hide_launch:
        torch.cuda._sleep(SPIN_CYCLES)
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(calls):
        fn()
    stop.record()
    stop.synchronize()
    return start.elapsed_time(stop) / calls


def gpu_median_ms(fn, calls=1, reps=15):
    """(ms, call_ms): the medians of the GPU's time and of the call from an idle GPU."""
    gpu, call = [], []
    for _ in range(reps):
        gpu.append(gpu_ms_once(fn, calls, True))
        call.append(gpu_ms_once(fn, calls, False))
    return sorted(gpu)[reps // 2], sorted(call)[reps // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--list-cases", action="store_true", help="print the registry's cases and stop")
    ap.add_argument("--ours", help="kernels_bench's --benchmark_out JSON")
    ap.add_argument("--out", help="the CSV to write")
    ap.add_argument("--fla", help="a directory holding an unmodified fla/ package")
    ap.add_argument("--filter", help="time FLA only on the cases whose name (op/B/T/H/K, /fp16 after an fp16 case's) this regex finds")
    args = ap.parse_args()
    if args.list_cases:
        for case in cases(registry_path()):
            print(" ".join(map(str, case)))
        return
    if not args.ours or not args.out:
        ap.error("--ours and --out are required (or --list-cases)")

    bench = json.loads(Path(args.ours).read_text())
    context = bench.get("context", {})
    # run_name: "<case>/iterations:1/repeats:15/manual_time"; the case is what comes before "/iterations:".
    ours = {b["run_name"].split("/iterations:")[0]: (b["ms"], b["call_ms"])
            for b in bench["benchmarks"] if b.get("aggregate_name") == "median"}
    # The cases kernels_bench skipped (backend kernel where no kernel serves them), with its sentence, and
    # FLA's that failed: the CSV says why a row is missing, not only that it is.
    not_timed = [("deltabench", b["run_name"].split("/iterations:")[0], " ".join(b.get("error_message", "").split()))
                 for b in bench["benchmarks"] if b.get("error_occurred")]

    fla_version, ops = None, {}
    if args.fla:
        try:
            fla_version, ops = import_fla(args.fla)
        except Exception as e:  # the rows of ours must not be lost with FLA
            print(f"fla_compare: cannot import FLA from {args.fla}: {type(e).__name__}: {e}", file=sys.stderr)

    import torch
    import torch.nn.functional as F

    median_ms = gpu_median_ms

    # Ours first, then FLA case by case, the CSV rewritten (whole, by rename) after each: a run stopped at
    # its time limit (FLA's first calls autotune for minutes) keeps every row timed until then.
    registry = cases(registry_path())
    rows = []
    for case in registry:
        name = case_name(*case)
        if name in ours:
            rows.append((*case, "torch-sdpa" if case[0].endswith("sdpa") else "deltabench", *ours[name]))
        if "reference:" + name in ours:
            rows.append((*case, "deltabench-reference", *ours["reference:" + name]))
    # FLA on the fixed cases, and on a sweep's cases where kernels_bench timed them (it times the sweeps
    # only when asked: DELTABENCH_KERNEL_SWEEPS).
    fixed = len(tomllib.loads(registry_path().read_text()).get("fixed", {}).get("cases", []))
    fla_cases = [case for i, case in enumerate(registry)
                 if case[0] in ops and (i < fixed or case_name(*case) in ours)
                 and not (args.filter and not re.search(args.filter, case_name(*case)))]
    # FLA's gated forward + backward last: its first call at a new length autotunes for minutes on a cold
    # machine (in one call its 1 x 32K case alone outlasted 230 s), and what is timed before a time limit stays.
    fla_cases.sort(key=lambda c: c[0] == "fwd_bwd_gated_delta_rule")
    timed = 0

    def write_csv():
        lines = [f"# device: {context.get('device', 'unknown')}",
                 f"# commit: {context.get('commit', 'unknown')}",
                 f"# torch: {torch.__version__}",
                 f"# fla: {fla_version or 'not run'}"]
        for key in ("copy_GB_per_s", "matmul_TFLOP_per_s"):  # the floor's rates, measured by kernels_bench
            if key in context:
                lines.append(f"# {key}: {context[key]}")
        if fla_cases:
            lines.append(f"# fla cases: {timed} of {len(fla_cases)} tried so far")
        lines += [f"# not timed ({impl}): {case}: {why}" for impl, case, why in not_timed]
        lines.append("op,B,T,H,K,V,dtype,impl,ms,call_ms")
        lines += [f"{op},{B},{T},{H},{K},{V},{dtype},{impl},{ms:.6f},{call:.6f}"
                  for op, B, T, H, K, V, dtype, impl, ms, call in rows]
        partial = Path(str(args.out) + ".partial")
        partial.write_text("\n".join(lines) + "\n")
        partial.replace(args.out)

    write_csv()
    for op, B, T, H, K, V, dtype in fla_cases:
        name = case_name(op, B, T, H, K, V, dtype)
        dt = torch.float16 if dtype == "fp16" else torch.bfloat16
        torch.manual_seed(0)
        q = F.normalize(torch.randn(B, T, H, K, device="cuda"), dim=-1).to(dt)
        k = F.normalize(torch.randn(B, T, H, K, device="cuda"), dim=-1).to(dt)
        v = torch.randn(B, T, H, V, device="cuda").to(dt)
        beta = torch.randn(B, T, H, device="cuda").sigmoid().to(dt)
        g = F.logsigmoid(torch.randn(B, T, H, device="cuda")) / 16
        h = torch.zeros(B, H, K, V, device="cuda")
        fwd_bwd = op.startswith("fwd_bwd_")
        if fwd_bwd:
            # The gradients of the inputs the op reads, as kernels_bench takes them: beta for the delta
            # rules, g (the decay) for the gated rule and linear attention.
            leaves = [q, k, v] + ([beta] if "delta_rule" in op else []) + ([g] if "delta_rule" not in op or "gated" in op else [])
            leaves = [t.requires_grad_() for t in leaves]
            do = torch.randn(B, T, H, V, device="cuda").to(dt)

            def fn():
                o = ops[op](q, k, v, g, beta, h)
                o = o[0] if isinstance(o, tuple) else o
                torch.autograd.grad(o, leaves, do)
        else:
            fn = lambda: ops[op](q, k, v, g, beta, h)
        try:
            with torch.set_grad_enabled(fwd_bwd):
                # The first call compiles and autotunes FLA's kernels for a shape they have not seen: its seconds
                # say where a run's FLA time went (a cold machine spends minutes there).
                first = time.perf_counter()
                fn()
                torch.cuda.synchronize()
                first = time.perf_counter() - first
                ms, call_ms = median_ms(fn, calls=100 if op.startswith("decode") else 1)
            rows.append((op, B, T, H, K, V, dtype, "fla", ms, call_ms))
            our_ms, our_call_ms = ours.get(name, (float("nan"), float("nan")))
            print(f"fla_compare: {name}: FLA {ms:.4f} ms ({call_ms:.4f} from an idle GPU), "
                  f"deltabench {our_ms:.4f} ms ({our_call_ms:.4f}), ours/FLA {our_ms / ms:.2f}; "
                  f"first call {first:.1f} s")
        except Exception as e:  # one failing case must not lose the others
            print(f"fla_compare: {name}: FLA failed: {type(e).__name__}: {e}", file=sys.stderr)
            not_timed.append(("fla", name, " ".join(f"{type(e).__name__}: {e}".split())))
        timed += 1
        write_csv()

    print(f"fla_compare: wrote {len(rows)} rows to {args.out}")


if __name__ == "__main__":
    main()
