"""The PyTorch + FLA training step that bench/train_step_bench.cpp is measured against.

    train_step_fla.py --fla <dir holding an unmodified fla/ package> --out train_step_fla.json

Zoology's MQAR language model as a researcher writes it in PyTorch with FLA's layers: embedding (with
learned positions for attention), 2 pre-norm blocks of LayerNorm and a mixer, a final LayerNorm, the
tied head at every position, cross-entropy with ignored positions, torch.optim.AdamW (its default
foreach path), bf16 autocast. Mixers: softmax attention (SDPA, one head, as Zoology's MHA), FLA's
LinearAttention, DeltaNet and GatedDeltaNet layers with deltabench's default heads (2) and the same
widths. Shapes: (L 64, B 512), (L 256, B 256), (L 512, B 128), vocabulary 8192, d_model 128.

Timing only: FLA refuses the gated backward on Hopper with triton < 3.7.1 (FLA issue #640, a reported
miscompile); this script lifts that guard in memory so that the step can be timed. Correctness of FLA
is not what is measured here. The first call of each case autotunes triton's kernels: every case runs
warm-up steps before it is timed. Median of the timed steps, each synchronised.
"""

import argparse
import json
import re
import statistics
import sys
import time
import types
from pathlib import Path


def import_fla(path):
    """FLA's layers from an unmodified copy, without the package __init__ files that import every layer."""
    sys.path.insert(0, path)
    root = Path(path) / "fla"
    for name, folder in (("fla", root), ("fla.layers", root / "layers")):
        module = types.ModuleType(name)
        module.__path__ = [str(folder)]
        sys.modules[name] = module
    init = (root / "__init__.py").read_text()
    match = re.search(r"""__version__\s*=\s*["']([^"']+)["']""", init)
    version = match.group(1) if match else "unknown"
    sys.modules["fla"].__version__ = version
    import fla.ops.common.chunk_o as chunk_o
    chunk_o.TRITON_ABOVE_3_7_1 = True  # timing only: see the module docstring
    from fla.layers.delta_net import DeltaNet
    from fla.layers.gated_deltanet import GatedDeltaNet
    from fla.layers.linear_attn import LinearAttention
    return version, {"delta_net": DeltaNet, "gated_delta_net": GatedDeltaNet, "linear_attention": LinearAttention}


def build(torch, layers, mixer, V, d, L):
    nn = torch.nn
    F = torch.nn.functional

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(d, 3 * d)
            self.out = nn.Linear(d, d)

        def forward(self, x):
            q, k, v = self.qkv(x).chunk(3, -1)
            o = F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1), is_causal=True)
            return self.out(o.squeeze(1))

    def make_mixer(i):
        if mixer == "attention":
            return Attention()
        if mixer == "linear_attention":
            return layers[mixer](mode="chunk", hidden_size=d, num_heads=2, feature_map="elu", layer_idx=i)
        if mixer == "delta_net":
            return layers[mixer](mode="chunk", hidden_size=d, num_heads=2, use_beta=True, use_short_conv=True,
                                 conv_size=4, layer_idx=i)
        return layers[mixer](mode="chunk", hidden_size=d, num_heads=2, head_dim=d // 2, expand_v=2,
                             use_short_conv=True, conv_size=4, layer_idx=i)

    class Block(nn.Module):
        def __init__(self, i):
            super().__init__()
            self.norm = nn.LayerNorm(d)
            self.mixer = make_mixer(i)

        def forward(self, x):
            y = self.mixer(self.norm(x))
            return x + (y[0] if isinstance(y, tuple) else y)

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(V, d)
            self.pos = nn.Embedding(L, d) if mixer == "attention" else None
            self.blocks = nn.ModuleList([Block(i) for i in range(2)])
            self.norm = nn.LayerNorm(d)

        def forward(self, tokens):
            x = self.embed(tokens)
            if self.pos is not None:
                x = x + self.pos(torch.arange(tokens.shape[1], device=tokens.device))
            for block in self.blocks:
                x = block(x)
            return F.linear(self.norm(x), self.embed.weight)  # the tied head

    return LM()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fla", required=True, help="a directory holding an unmodified fla/ package")
    ap.add_argument("--out", required=True, help="JSON with one row per case")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per case")
    ap.add_argument("--warmup", type=int, default=10, help="steps before timing (triton autotunes in the first)")
    ap.add_argument("--lengths", default="64,256,512", help="Zoology's shapes to time, by L (64: B 512, 256: B 256, 512: B 128)")
    args = ap.parse_args()

    import torch
    version, layers = import_fla(args.fla)
    device = torch.device("cuda")
    V, d = 8192, 128
    rows = []
    shapes = {64: (512, 4), 256: (256, 16), 512: (128, 64)}
    lengths = [int(x) for x in args.lengths.split(",")]
    for L in lengths:
        if L not in shapes:
            sys.exit(f"train_step_fla.py: --lengths: expected some of 64,256,512, got {L}")

    def write():  # after every case: a time limit that cuts the run keeps what was measured
        Path(args.out).write_text(json.dumps({"fla": version, "torch": torch.__version__,
                                              "gpu": torch.cuda.get_device_name(0), "rows": rows}, indent=1))

    for L in lengths:
        B, pairs = shapes[L]
        for mixer in ("attention", "linear_attention", "delta_net", "gated_delta_net"):
            name = f"{mixer}/L{L}/B{B}"
            try:
                torch.manual_seed(0)
                model = build(torch, layers, mixer, V, d, L).to(device)
                optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
                tokens = torch.randint(0, V, (B, L), device=device)
                targets = torch.full((B, L), -100, device=device, dtype=torch.long)
                targets[:, L - pairs:] = torch.randint(0, V, (B, pairs), device=device)  # MQAR scores `pairs` positions

                def step():
                    with torch.autocast("cuda", dtype=torch.bfloat16):
                        logits = model(tokens)
                    loss = torch.nn.functional.cross_entropy(logits.float().view(-1, V), targets.view(-1), ignore_index=-100)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    optimizer.step()
                    return loss

                for _ in range(args.warmup):
                    step()
                torch.cuda.synchronize()
                times = []
                for _ in range(args.steps):
                    start = time.perf_counter()
                    step()
                    torch.cuda.synchronize()
                    times.append((time.perf_counter() - start) * 1e3)
                ms = statistics.median(times)
                rows.append({"mixer": mixer, "L": L, "B": B, "ms": ms, "tokens_per_s": B * L / ms * 1e3})
                print(f"train_step_fla: {name}: {ms:.3f} ms/step", flush=True)
                write()
            except Exception as e:  # a case FLA cannot run is reported, not fatal
                print(f"train_step_fla: {name}: failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
    write()


if __name__ == "__main__":
    main()
