#!/usr/bin/env python3
"""One line per shape from `slope bench linear --json` (and bench/pytorch/bench_linear.py --json when present):
SLoPe's forward, layer step and merged-inference speedups over dense, PyTorch's 2:4 forward speedup.
With --markdown, the table of docs/benchmarks/cuda-*.md instead, issue 3's targets met in bold.

    python3 bench/device/side_by_side.py [--markdown] linear.json [torch-linear.json]
"""
import json
import os
import sys


def load_shapes(path):
    shapes = {}
    for result in json.load(open(path)):
        s = result["shape"]
        key = (s["tokens"], s["inFeatures"], s["outFeatures"])
        name = "merged" if result["measurement"].startswith("inference") else result["measurement"]
        shapes.setdefault(key, {})[name] = result
    return shapes


def markdown(shapes):
    columns = [("forward", "fwd"), ("backward dX", "dX"), ("backward dW (+ bias)", "dW"), ("optimizer step", "opt"),
               ("whole layer step", "step"), ("merged", "merged inference")]
    print("| T×in×out | fwd dense ms | fwd SLoPe ms | " + " | ".join(f"{c} ×" for _, c in columns[:4])
          + " | layer step dense ms | layer step SLoPe ms | step × | merged inference × |")
    print("|---" * 11 + "|")
    for (tokens, fan_in, fan_out), m in shapes.items():
        d = min(fan_in, fan_out)
        wide = max(fan_in, fan_out) == 4 * d
        targets = {"forward": 1.5 if d >= 4096 and wide else None,
                   "whole layer step": 1.25 if d >= 4096 else None, "merged": 1.4 if d >= 4096 else None}

        def ratio(name):
            value = m[name]["speedup"]
            text = f"{value:.2f}x"
            goal = targets.get(name)
            return f"**{text}**" if goal and value >= goal else text
        f, s = m["forward"], m["whole layer step"]
        cells = [f"{f['denseMilliseconds']:.2f}", f"{f['sparseMilliseconds']:.2f}"] + [ratio(n) for n, _ in columns[:4]]
        cells += [f"{s['denseMilliseconds']:.2f}", f"{s['sparseMilliseconds']:.2f}", ratio("whole layer step"), ratio("merged")]
        print(f"| {tokens}×{fan_in}×{fan_out} | " + " | ".join(cells) + " |")


def main():
    args = [a for a in sys.argv[1:] if a != "--markdown"]
    shapes = load_shapes(args[0])
    if "--markdown" in sys.argv:
        return markdown(shapes)
    torch_rows = {}
    if len(args) > 1 and os.path.exists(args[1]):
        for row in json.load(open(args[1])):
            torch_rows[(row["tokens"], row["in"], row["out"])] = row
    print(f"{'T×in×out':>18}  {'fwd':>6}  {'dX':>6}  {'step':>6}  {'merged':>6}  {'torch 2:4 fwd':>13}")
    for key, m in shapes.items():
        t = torch_rows.get(key, {})
        sparse = min((v for k, v in t.items() if k in ("cusparselt_ms", "cutlass_ms")), default=None)
        torch_ratio = f"{t['dense_ms'] / sparse:.2f}x" if sparse else "-"
        cells = [f"{m[k]['speedup']:.2f}x" if k in m else "nan" for k in ("forward", "backward dX", "whole layer step", "merged")]
        print(f"{'×'.join(map(str, key)):>18}  " + "  ".join(f"{c:>6}" for c in cells) + f"  {torch_ratio:>13}")


if __name__ == "__main__":
    main()
