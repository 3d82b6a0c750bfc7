#!/usr/bin/env python3
"""One line per shape from `slope bench linear --json` (and bench/pytorch/bench_linear.py --json when present):
SLoPe's forward, layer step and merged-inference speedups over dense, PyTorch's 2:4 forward speedup.

    python3 bench/device/side_by_side.py linear.json [torch-linear.json]
"""
import json
import os
import sys


def main():
    slope = json.load(open(sys.argv[1]))
    torch_rows = {}
    if len(sys.argv) > 2 and os.path.exists(sys.argv[2]):
        for row in json.load(open(sys.argv[2])):
            torch_rows[(row["tokens"], row["in"], row["out"])] = row
    shapes = {}
    for result in slope:
        s = result["shape"]
        key = (s["tokens"], s["inFeatures"], s["outFeatures"])
        name = "merged" if result["measurement"].startswith("inference") else result["measurement"]
        shapes.setdefault(key, {})[name] = result["speedup"]
    print(f"{'T×in×out':>18}  {'fwd':>6}  {'dX':>6}  {'step':>6}  {'merged':>6}  {'torch 2:4 fwd':>13}")
    for key, m in shapes.items():
        t = torch_rows.get(key, {})
        sparse = min((v for k, v in t.items() if k in ("cusparselt_ms", "cutlass_ms")), default=None)
        torch_ratio = f"{t['dense_ms'] / sparse:.2f}x" if sparse else "-"
        cells = [f"{m.get(k, float('nan')):.2f}x" for k in ("forward", "backward dX", "whole layer step", "merged")]
        print(f"{'×'.join(map(str, key)):>18}  " + "  ".join(f"{c:>6}" for c in cells) + f"  {torch_ratio:>13}")


if __name__ == "__main__":
    main()
