#!/usr/bin/env python3
"""Times flash-linear-attention (FLA) on the cases of bench/kernel_cases.h and prints ours over FLA's.

    fla_compare.py --fla <dir holding an unmodified fla/ package> --ours kernels.json --out compare.md

FLA is never part of this repository: scripts/device.sh passes a copy unpacked from its git history.
Timing matches bench/kernels_bench.cpp: a 256 MB write flushes L2, CUDA events around the call,
median of 15. Decode is timed eagerly per call (as FLA is used from Python), 100 calls per timing.
"""
import argparse
import json
import re
import sys
import types
from pathlib import Path


def cases(header: Path):
    pattern = re.compile(r'KernelCase\{"(\w+)",\s*(\d+),\s*(\d+),\s*(\d+),\s*(\d+),\s*(\d+)\}')
    return [(m[1], *map(int, m.groups()[1:])) for m in pattern.finditer(header.read_text())]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fla", required=True)
    ap.add_argument("--ours", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    sys.path.insert(0, args.fla)
    # Import only fla.ops: fla/__init__.py pulls in the layers and models (transformers).
    package = types.ModuleType("fla")
    package.__path__ = [str(Path(args.fla) / "fla")]
    init = (Path(args.fla) / "fla" / "__init__.py").read_text()
    version = re.search(r"__version__\s*=\s*['\"]([^'\"]+)['\"]", init)
    package.__version__ = version[1] if version else "unknown"  # fla.utils imports it
    sys.modules["fla"] = package
    import torch
    import torch.nn.functional as F
    from fla.ops.delta_rule import chunk_delta_rule
    from fla.ops.gated_delta_rule import chunk_gated_delta_rule, fused_recurrent_gated_delta_rule
    from fla.ops.simple_gla import chunk_simple_gla

    flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")

    def median_ms(fn, calls=1, reps=15):
        times = []
        for _ in range(reps):
            flush.zero_()
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(calls):
                fn()
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop) / calls)
        return sorted(times)[len(times) // 2]

    ours = {}
    for b in json.loads(Path(args.ours).read_text())["benchmarks"]:
        if b.get("aggregate_name") == "median":
            ours[b["run_name"]] = b["ms"]

    header = Path(__file__).with_name("kernel_cases.h")
    rows = []
    sdpa = {}
    for op, B, T, H, K, V in cases(header):
        name = f"{op}/B{B}/T{T}/H{H}/K{K}"
        if op == "sdpa":
            sdpa[(B, T, H, K)] = ours.get(name)
            continue
        fla_ms = None
        torch.manual_seed(0)
        q = F.normalize(torch.randn(B, T, H, K, device="cuda"), dim=-1).bfloat16()
        k = F.normalize(torch.randn(B, T, H, K, device="cuda"), dim=-1).bfloat16()
        v = torch.randn(B, T, H, V, device="cuda").bfloat16()
        beta = torch.randn(B, T, H, device="cuda").sigmoid().bfloat16()
        g = F.logsigmoid(torch.randn(B, T, H, device="cuda")) / 16
        with torch.no_grad():
            if op == "delta_rule":
                fn = lambda: chunk_delta_rule(q, k, v, beta)
            elif op == "gated_delta_rule":
                fn = lambda: chunk_gated_delta_rule(q, k, v, g, beta)
            elif op == "linear_attention":  # with scalar decay, as kernels_bench runs it
                fn = lambda: chunk_simple_gla(q, k, v, g)
            elif op == "decode_gated_delta_rule":
                h = torch.zeros(B, H, K, V, device="cuda")
                fn = lambda: fused_recurrent_gated_delta_rule(q, k, v, g, beta, initial_state=h, output_final_state=True)
            else:
                fn = None
            if fn is not None:
                try:
                    fn()
                    torch.cuda.synchronize()
                    fla_ms = median_ms(fn, calls=100 if op.startswith("decode") else 1)
                except Exception as e:  # one failing case must not lose the others
                    print(f"{name}: FLA failed: {type(e).__name__}: {e}", file=sys.stderr)
        rows.append((name, op, B, T, H, K, ours.get(name), fla_ms))

    lines = ["| case | ours ms | FLA ms | ours / FLA | SDPA ms (same B, T) |", "|---|---:|---:|---:|---:|"]
    for name, op, B, T, H, K, o, f in rows:
        s = sdpa.get((B, T, H, K))
        fmt = lambda x: f"{x:.4f}" if x is not None else "n/a"
        ratio = f"{o / f:.2f}" if o and f else "n/a"
        lines.append(f"| {name} | {fmt(o)} | {fmt(f)} | {ratio} | {fmt(s)} |")
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
