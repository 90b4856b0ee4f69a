#!/usr/bin/env python3
"""Where a step's GPU time goes, from Nsight Compute's per-launch CSV.

`ncu --metrics gpu__time_duration.sum --csv <program>` writes one row per profiled launch. This sums
the duration by kernel (parameter lists dropped; template arguments kept, which is where ATen's
elementwise kernels name their operation), and prints the kernels by total time with their share and launch count:

    ncu_summary.py profile.csv [--top 25] [--label "DeltaNet, L 256"]

Lines before the CSV header (the program's own output, ncu's ==PROF== lines) are skipped.
"""

import argparse
import collections
import csv
import io
import re
import sys

UNIT_NS = {"nsecond": 1.0, "ns": 1.0, "usecond": 1e3, "us": 1e3, "msecond": 1e6, "ms": 1e6, "second": 1e9, "s": 1e9}


def short_name(name: str) -> str:
    """The kernel's name without its parameter list and return type: 'void ns::f<A, B>(P)' -> 'ns::f<A, B>'.
    The template arguments stay: ATen's elementwise kernels are told apart by their functor there."""
    name = name.strip()
    if name.endswith(")"):  # the outermost trailing (...), matched from the end
        depth = 0
        for i in range(len(name) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(name[i], 0)
            if depth == 0:
                name = name[:i]
                break
    return re.sub(r"^void ", "", name).strip()


def read_rows(path: str):
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith('"ID"')), None)
    if start is None:
        sys.exit(f"ncu_summary: {path}: no CSV header (a line starting with \"ID\") found")
    return list(csv.DictReader(io.StringIO("\n".join(lines[start:]))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--label", default="")
    args = parser.parse_args()

    rows = read_rows(args.csv)
    totals: dict[str, float] = collections.defaultdict(float)
    counts: collections.Counter = collections.Counter()
    for row in rows:
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        unit = row.get("Metric Unit", "")
        if unit not in UNIT_NS:
            sys.exit(f"ncu_summary: {args.csv}: unknown unit {unit!r} for gpu__time_duration.sum")
        value = float(row["Metric Value"].replace(",", ""))
        name = short_name(row.get("Kernel Name", "?"))
        totals[name] += value * UNIT_NS[unit]
        counts[name] += 1
    if not totals:
        sys.exit(f"ncu_summary: {args.csv}: no gpu__time_duration.sum rows")
    whole = sum(totals.values())
    label = f" ({args.label})" if args.label else ""
    print(f"ncu_summary{label}: {sum(counts.values())} launches, {whole / 1e6:.3f} ms in all")
    for name, ns in sorted(totals.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"  {ns / 1e6:9.3f} ms {100 * ns / whole:5.1f}%  {counts[name]:5d} launches  {name[:160]}")


if __name__ == "__main__":
    main()
