#!/usr/bin/env python3
"""Times FLA's forward state pass (chunk_gated_delta_rule_fwd_h), its backward one (chunk_gated_delta_rule_bwd_dhu)
and its whole forward (chunk_delta_rule, chunk_gated_delta_rule) on bench/stage_bench.cpp's shapes, beside
stage_bench's rows, and writes one table.

    fla_stage.py --ours stage_bench.json --out stage.md [--fla <dir holding an unmodified fla/ package>]
                 [--filter <regex of row names: FLA is timed on those only>]

The stage: per chunk of 64 tokens v_new = U - W S, S <- exp(G_last) S + K^T (v_new exp(G_last - G)),
writing the state at each chunk's start (h, 16-bit) and v_new; FLA's kernel is one Triton program a
(sequence, head, block of V) as ours is. Inputs as stage_bench draws them (bf16 W, K, U; g per step, its
within-chunk cumulative sum in log2 units, as FLA's forward passes it). Timing is fla_compare.py's (L2 flushed,
median of 15, ms with hidden launches and call_ms from an idle GPU), after an untimed first call that
autotunes. The table: each shape and rule, a row per implementation: ms, call_ms, GB/s of the 16-bit
pass's bytes and its % of this machine's copy rate (from stage_bench's context), and each one's time
over FLA's. Without --fla (or where FLA fails) FLA's rows say why.
"""
import argparse
import json
import math
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fla_compare import gpu_median_ms, import_fla  # noqa: E402

NAME = re.compile(r"(state_fwd|state_bwd|dv_local|dqkw|ut_fwd|ut_bwd|fwd_bwd|fwd)/(\w+)/(\w+)/B(\d+)/T(\d+)/H(\d+)/K(\d+)")


def stage_bytes(stage, B, T, H, K, V, gated):
    """stage_bench.cpp's pass_bytes (state_fwd), backward_pass_bytes (state_bwd), forward_bytes (fwd), and the sm90
    forms of ut_bwd_bytes and dqkw_bytes (16-bit gradients out, as sm90::chunk_train writes them)."""
    tokens, chunks = B * T * H, B * ((T + 63) // 64) * H
    if stage == "state_bwd":
        return 2 * tokens * (3 * K + 3 * V) + 2 * chunks * K * V + (4 * tokens if gated else 0)
    if stage == "ut_fwd":
        return 2 * tokens * (2 * K + 2 * V) + 4 * tokens * (2 if gated else 1)
    if stage == "ut_bwd":
        return 2 * tokens * (2 * K + 2 * V) + 4 * tokens * K + 2 * tokens * (K + V) + 8 * tokens * (2 if gated else 1)
    if stage == "dv_local":
        return 2 * tokens * (2 * K + 2 * V) + (4 * tokens if gated else 0)
    if stage == "dqkw":
        return 2 * tokens * (2 * K + 3 * V) + 8 * tokens * K + 4 * chunks * K * V + (4 * tokens if gated else 0)
    if stage in ("fwd", "fwd_bwd"):  # fwd_bwd: the forward's bytes, for scale only
        return 2 * tokens * (2 * K + 2 * V) + 4 * tokens * (2 if gated else 1)
    return 2 * tokens * (2 * K + 2 * V) + 2 * chunks * K * V + (4 * tokens if gated else 0)


def render(rows, context, copy, fla_version, why_not, out):
    """Writes the table (whole, by rename: a run stopped by its time limit keeps what was timed) and returns it."""
    lines = [f"# The Hopper forward, stage and whole, {context.get('device', 'unknown device')}",
             "",
             f"stage_bench at commit {context.get('commit', 'unknown')}, torch {context.get('torch', '?')}; FLA "
             f"{fla_version or '(not timed: ' + why_not + ')'}; copy rate measured in the run "
             f"{copy / 1e9:.0f} GB/s. bf16, V = K; medians of 15, L2 flushed; ms is the GPU's time, call_ms the "
             "call from an idle GPU. GB/s and % of copy: the bytes a pass that moves each byte once would move "
             "(state_fwd: W, K, U, g read, h and v_new written; state_bwd: q, k, W, dO, dv_local, g read, dh and "
             "dv_new written; fwd: q, k, v, beta, g read, o written) over ms. "
             "state_fwd: the state pass alone (sm90: kernels/common/sm90; sm90_segments: the same in the ops' segments (B 1); walk: the training pair's TF32 walk; "
             "fla: chunk_gated_delta_rule_fwd_h). state_bwd: the backward's (sm90: the pipeline chosen for the grid; sm90_1buf and sm90_2buf: Q, W, dO and dv_local single- or double-buffered; sm90_split: single-buffered, each refilled as soon as its chunk is done with it; fla: chunk_gated_delta_rule_bwd_dhu; "
             "walk: its q^T dO comes precomputed, so it does less). dv_local and dqkw: the backward's chunk-parallel "
             "stages (tf32: the training pair's chunk_dout and chunk_grads, which write q^T dO and dG too; fla: "
             "chunk_bwd_dv_local and chunk_bwd_dqkwg, whose gated rows compute dg too, as sm90's and tf32's do). "
             "ut_fwd: the UT transform, W and U (fla: chunk_gated_delta_rule_fwd_intra, g None for the delta rule). "
             "ut_bwd/sm90_t: sm90 reading T from the UT forward, as the training op does; sm90_t32: the same writing dk and dv fp32 (before version 3k). fwd_bwd/sm90_keep: chunk_train keeping W, U and T from the forward; sm90_keep_state: keeping h and v_new too, as the ops do where the sm_90a op is set (version 3p); sm90_segN: the same in segments of N tokens (B 1). "
             "ut_bwd: the UT transform's backward (fla: prepare_wy_repr_bwd and tf32: chunk_ut_backward get the "
             "inverse from the forward; sm90 recomputes it). fwd_bwd: the forward and every input's gradient (sm90: "
             "sm90::chunk_train, segment-parallel where its cost model chooses; sm90_whole: whole sequences (B 1); chunked: the op's chunked training pair; fla: its chunk op and autograd). fwd: the whole forward (sm90: sm90::chunk_forward, the output "
             "fused into the state pass, segment-parallel where its cost model chooses; sm90_whole: the same with whole sequences (B 1); sm90_apart: the output kernel after the pass, which the ops take for the gated rule where the pass is over one block an SM; fused: the op under backend kernel; reference: the op under backend reference (ATen); an impl ending _fp16: the same with fp16 inputs (the others bf16), FLA's beside in bf16; fla: chunk_delta_rule / chunk_gated_delta_rule).",
             "",
             "| stage | rule | B x T | H | K | impl | ms | call_ms | GB/s | % of copy | / FLA |",
             "|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for (stage, rule, B, T, H, K), impls in rows.items():
        fla = impls.get("fla")
        known = ("sm90", "sm90_t", "sm90_t32", "sm90_keep", "sm90_keep_state", "sm90_1buf", "sm90_2buf", "sm90_split",
                 "sm90_segments", "sm90_whole", "sm90_apart", "walk", "tf32", "fused", "chunked")
        # Rows of other names (sm90_seg2048, ...) after the known ones, before FLA's: none is dropped.
        for impl in known + tuple(sorted(i for i in impls if i not in known and i != "fla")) + ("fla",):
            if impl not in impls:
                continue
            r = impls[impl]
            if isinstance(r, str):
                lines.append(f"| {stage} | {rule} | {B} x {T} | {H} | {K} | {impl} | not timed: {r} | | | | |")
                continue
            ms, call_ms = r
            gbs = stage_bytes(stage, B, T, H, K, K, rule == "gated_delta_rule") / (ms / 1e3) / 1e9
            ratio = f"{ms / fla[0]:.2f}" if isinstance(fla, tuple) else ""
            lines.append(f"| {stage} | {rule} | {B} x {T} | {H} | {K} | {impl} | {ms:.3f} | {call_ms:.3f} | {gbs:.0f} | "
                         f"{100 * gbs * 1e9 / copy:.0f} | {ratio} |")
    text = "\n".join(lines) + "\n"
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(out)
    return text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", required=True, help="stage_bench's --benchmark_out JSON")
    ap.add_argument("--out", required=True, help="the Markdown table to write")
    ap.add_argument("--fla", help="a directory holding an unmodified fla/ package")
    ap.add_argument("--filter", help="time FLA only on the rows whose name (stage/impl/rule/B/T/H/K) this regex finds")
    args = ap.parse_args()

    bench = json.loads(Path(args.ours).read_text())
    context = bench.get("context", {})
    copy = float(context.get("copy_GB_per_s", "nan")) * 1e9
    rows = {}  # (stage, rule, B, T, H, K) -> {impl: (ms, call_ms) or error sentence}
    for b in bench["benchmarks"]:
        m = NAME.match(b["run_name"].split("/iterations:")[0])
        if not m:
            continue
        stage, impl, rule, B, T, H, K = m[1], m[2], m[3], *map(int, m.groups()[3:])
        key = (stage, rule, B, T, H, K)
        if b.get("error_occurred"):
            rows.setdefault(key, {})[impl] = " ".join(b.get("error_message", "").split())
        elif b.get("aggregate_name") == "median":
            rows.setdefault(key, {})[impl] = (b["ms"], b["call_ms"])

    fla_version, fwd_h, why_not = None, None, "no --fla given"
    if args.fla:
        try:
            fla_version, _ = import_fla(args.fla)
            from fla.ops.common.chunk_delta_h import chunk_gated_delta_rule_bwd_dhu, chunk_gated_delta_rule_fwd_h
            from fla.ops.common.chunk_o import chunk_bwd_dqkwg, chunk_bwd_dv_local
            from fla.ops.delta_rule.wy_fast import prepare_wy_repr_bwd as wy_bwd_delta
            from fla.ops.gated_delta_rule.wy_fast import prepare_wy_repr_bwd as wy_bwd_gated
            from fla.ops.gated_delta_rule.chunk_fwd import chunk_gated_delta_rule_fwd_intra as ut_fwd
            from fla.ops.delta_rule import chunk_delta_rule
            from fla.ops.gated_delta_rule import chunk_gated_delta_rule
            from fla.ops.utils import chunk_local_cumsum
            fwd_h = chunk_gated_delta_rule_fwd_h
        except Exception as e:  # our rows must not be lost with FLA
            why_not = f"cannot import FLA from {args.fla}: {type(e).__name__}: {e}"
            print(f"fla_stage: {why_not}", file=sys.stderr)

    if fwd_h is not None:
        import torch
        for (stage, rule, B, T, H, K), impls in rows.items():
            V = K
            gated = rule == "gated_delta_rule"
            if args.filter and not re.search(args.filter, f"{stage}/fla/{rule}/B{B}/T{T}/H{H}/K{K}"):
                continue
            try:
                torch.manual_seed(0)
                k = torch.randn(B, T, H, K, device="cuda")
                k = k / k.norm(dim=-1, keepdim=True)
                logdecay = torch.nn.functional.logsigmoid(torch.randn(B, T, H, device="cuda")) / 16
                if stage in ("fwd", "fwd_bwd"):  # the op, as kernels_bench draws its inputs
                    grad = stage == "fwd_bwd"
                    q = torch.randn(B, T, H, K, device="cuda").bfloat16().requires_grad_(grad)
                    v = torch.randn(B, T, H, V, device="cuda").bfloat16().requires_grad_(grad)
                    beta = torch.randn(B, T, H, device="cuda").sigmoid().requires_grad_(grad)
                    kb = k.bfloat16().requires_grad_(grad)
                    gl = logdecay.clone().requires_grad_(grad)
                    if gated:
                        op = lambda: chunk_gated_delta_rule(q, kb, v, gl, beta)  # noqa: E731
                    else:
                        op = lambda: chunk_delta_rule(q, kb, v, beta)  # noqa: E731
                    if grad:
                        do = torch.randn(B, T, H, V, device="cuda").bfloat16()
                        leaves = [q, kb, v, beta] + ([gl] if gated else [])
                        fn = lambda: torch.autograd.grad(op()[0], leaves, do)  # noqa: E731
                    else:
                        fn = op
                else:
                    w = (k * torch.randn(B, T, H, 1, device="cuda").sigmoid()).bfloat16()
                    kb = k.bfloat16()
                    u = torch.randn(B, T, H, V, device="cuda").bfloat16()
                    # In log2 units, as FLA's chunk_gated_delta_rule_fwd passes it (scale RCP_LN2).
                    g = chunk_local_cumsum(logdecay, chunk_size=64, scale=1 / math.log(2)) if gated else None
                    if stage == "ut_fwd":  # FLA's fused K K^T, inverse and W, U (its delta rule's too: g None)
                        vb = torch.randn(B, T, H, V, device="cuda").bfloat16()
                        beta = torch.randn(B, T, H, device="cuda").sigmoid()
                        fn = lambda: ut_fwd(k=kb, v=vb, g=g, beta=beta)  # noqa: E731
                    elif stage == "ut_bwd":
                        vb = torch.randn(B, T, H, V, device="cuda").bfloat16()
                        beta = torch.randn(B, T, H, device="cuda").sigmoid()
                        A = torch.randn(B, T, H, 64, device="cuda").bfloat16()
                        dw = torch.randn(B, T, H, K, device="cuda").bfloat16()
                        du = torch.randn(B, T, H, V, device="cuda").bfloat16()
                        if gated:
                            fn = lambda: wy_bwd_gated(kb, vb, beta, A, dw, du, g=g)  # noqa: E731
                        else:
                            fn = lambda: wy_bwd_delta(kb, vb, beta, A, dw, du, None)  # noqa: E731
                    elif stage in ("dv_local", "dqkw"):
                        q = torch.randn(B, T, H, K, device="cuda").bfloat16()
                        do = torch.randn(B, T, H, V, device="cuda").bfloat16()
                        if stage == "dv_local":
                            fn = lambda: chunk_bwd_dv_local(q=q, k=kb, do=do, g=g, scale=K ** -0.5)  # noqa: E731
                        else:
                            NT = (T + 63) // 64
                            h = torch.randn(B, NT, H, K, V, device="cuda").bfloat16()
                            dh = torch.randn(B, NT, H, K, V, device="cuda").bfloat16()
                            dv = torch.randn(B, T, H, V, device="cuda").bfloat16()
                            fn = lambda: chunk_bwd_dqkwg(q=q, k=kb, v=u, do=do, h=h, dh=dh, w=w, g=g,  # noqa: E731
                                                         dv=dv, scale=K ** -0.5)
                    elif stage == "state_bwd":
                        q = torch.randn(B, T, H, K, device="cuda").bfloat16()
                        do = torch.randn(B, T, H, V, device="cuda").bfloat16()
                        dv = torch.randn(B, T, H, V, device="cuda").bfloat16()
                        fn = lambda: chunk_gated_delta_rule_bwd_dhu(q=q, k=kb, w=w, do=do, dv=dv, g=g,  # noqa: E731
                                                                    scale=K ** -0.5)
                    else:
                        fn = lambda: fwd_h(k=kb, w=w, u=u, g=g, output_final_state=False)  # noqa: E731
                with torch.set_grad_enabled(stage == "fwd_bwd"):
                    fn()  # autotunes
                    torch.cuda.synchronize()
                    impls["fla"] = gpu_median_ms(fn)
            except Exception as e:
                impls["fla"] = f"{type(e).__name__}: {e}".splitlines()[0]
            print(f"fla_stage: {stage} {rule} B{B} T{T} H{H} K{K}: {impls['fla']}", file=sys.stderr, flush=True)
            render(rows, context, copy, fla_version, why_not, Path(args.out))

    print(render(rows, context, copy, fla_version, why_not, Path(args.out)))


if __name__ == "__main__":
    main()
