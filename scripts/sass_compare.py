#!/usr/bin/env python3
"""Whether two builds of the CUDA kernels compiled to the same machine code, function by function.

    scripts/sass_compare.py BEFORE.sass AFTER.sass

Each file is `cuobjdump -sass` of one or more object files or libraries, concatenated (cuobjdump comes
with the CUDA toolkit, and with triton's wheel under triton/backends/nvidia/bin/). Functions are matched
by architecture and mangled name, with nvcc's per-file anonymous-namespace tag
(`NN_GLOBAL__N__<hash>_<len>_<file>_cu_<hash>`) reduced to one placeholder, so that moving a kernel
template from one file to another still matches; instruction lines are compared with their encodings,
addresses and spacing aside. Exit status 0 when every function of BEFORE is in AFTER with the same
instructions and the two hold the same functions, 1 otherwise (the first difference is printed).

This is how a refactor of the .cu files is checked on a machine without a GPU: identical SASS means
the GPU runs of the earlier commit stand for the new one.
"""

import re
import sys

ANONYMOUS = re.compile(r"\d+_GLOBAL__N__[0-9a-f]+_\d+_\w+?_cu_[0-9a-f]{8}")
ADDRESS = re.compile(r"/\*[0-9a-f]{4,}\*/")
ENCODING_ONLY = re.compile(r"\s*/\* 0x[0-9a-f]+ \*/\s*$")


def functions(path):
    """{(arch, name): [instruction lines]} of a cuobjdump -sass listing."""
    out, arch, key = {}, None, None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.match(r"\s*arch = (\w+)", line)
            if m:
                arch, key = m.group(1), None
                continue
            m = re.match(r"\s*Function : (\S+)", line)
            if m:
                key = (arch, ANONYMOUS.sub("ANON", m.group(1)))
                out[key] = []
                continue
            if key is not None and (";" in line or ENCODING_ONLY.match(line)):
                out[key].append(" ".join(ADDRESS.sub("", ANONYMOUS.sub("ANON", line)).split()))
    return out


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    before, after = functions(sys.argv[1]), functions(sys.argv[2])
    only_before = sorted(set(before) - set(after))
    only_after = sorted(set(after) - set(before))
    differing = [k for k in before if k in after and before[k] != after[k]]
    lines = sum(len(v) for v in before.values())
    print(f"sass_compare: {len(before)} functions before, {len(after)} after, {lines} instruction lines before; "
          f"{len(only_before)} only before, {len(only_after)} only after, {len(differing)} differing")
    for k in only_before[:3]:
        print(f"  only before: {k[0]} {k[1]}")
    for k in only_after[:3]:
        print(f"  only after: {k[0]} {k[1]}")
    if differing:
        k = differing[0]
        for i, (x, y) in enumerate(zip(before[k], after[k])):
            if x != y:
                print(f"  {k[0]} {k[1]}, line {i}:\n    before: {x}\n    after:  {y}")
                break
        else:
            print(f"  {k[0]} {k[1]}: {len(before[k])} lines before, {len(after[k])} after")
    return 0 if not (only_before or only_after or differing) else 1


if __name__ == "__main__":
    sys.exit(main())
