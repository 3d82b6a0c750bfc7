#!/usr/bin/env python3
"""The table of bench/device/accuracy.sh: validation loss at the best step and at the end, slope against the PyTorch
reference, per variant and seed (and their mean over seeds), and the SLoPe/dense ratios of each framework.

    python3 bench/device/accuracy_table.py WORK_FOLDER [--label L --recipe R --device D --precision P] [--json out.json]

WORK_FOLDER holds <variant>-seed<k>-slope/metrics.jsonl (slope pretrain's log) and <variant>-seed<k>-torch.json
(train_reference.py --json).
"""
import argparse
import json
import os
import re
import statistics


def slope_curve(path):
    rows = [json.loads(line) for line in open(path)]
    return [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]


def torch_curve(path):
    return [(r["step"], r["val_loss"]) for r in json.load(open(path))["history"]]


def summary(curve):
    best = min(curve, key=lambda point: point[1])
    return {"best": best[1], "best_step": best[0], "end": curve[-1][1], "end_step": curve[-1][0]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("work")
    parser.add_argument("--label", default="")
    parser.add_argument("--recipe", default="")
    parser.add_argument("--device", default="")
    parser.add_argument("--precision", default="")
    parser.add_argument("--json")
    args = parser.parse_args()
    runs = {}  # (variant, seed) -> framework -> summary
    for entry in sorted(os.listdir(args.work)):
        match = re.fullmatch(r"(.+)-seed(\d+)-(slope|torch)(\.json)?", entry)
        if not match:
            continue
        variant, seed, framework = match.group(1), int(match.group(2)), match.group(3)
        path = os.path.join(args.work, entry, "metrics.jsonl") if framework == "slope" else os.path.join(args.work, entry)
        try:
            curve = slope_curve(path) if framework == "slope" else torch_curve(path)
        except (OSError, ValueError, KeyError) as error:
            print(f"{entry}: no result ({error})")
            continue
        if curve:
            runs.setdefault((variant, seed), {})[framework] = summary(curve)

    order = {"dense": 0, "slope": 1, "slope+adapters": 2}
    keys = sorted(runs, key=lambda k: (order.get(k[0], 9), k[1]))
    print(f"\n== validation loss, {args.label}: {args.recipe or 'default recipe'}; {args.device} ({args.precision}) ==")
    print(f"{'variant':16} {'seed':>4} {'slope best (step)':>18} {'PyTorch best (step)':>20} {'ratio':>6} "
          f"{'slope end':>9} {'PyTorch end':>11} {'ratio':>6}")

    def line(name, seed, s, t):
        def cell(r, key):
            return f"{r[key]:.4f} ({r[key + '_step']})" if key == "best" else f"{r[key]:.4f}"
        ratio = lambda key: f"{s[key] / t[key]:.4f}" if s and t else "-"
        print(f"{name:16} {seed:>4} {cell(s, 'best') if s else '-':>18} {cell(t, 'best') if t else '-':>20} {ratio('best'):>6} "
              f"{cell(s, 'end') if s else '-':>9} {cell(t, 'end') if t else '-':>11} {ratio('end'):>6}")

    for variant, seed in keys:
        line(variant, str(seed), runs[(variant, seed)].get("slope"), runs[(variant, seed)].get("torch"))
    means = {}
    for variant in sorted({k[0] for k in keys}, key=lambda v: order.get(v, 9)):
        for framework in ("slope", "torch"):
            found = [runs[k][framework] for k in keys if k[0] == variant and framework in runs[k]]
            if found:
                means.setdefault(variant, {})[framework] = {
                    key: statistics.mean(r[key] for r in found) for key in ("best", "end", "best_step", "end_step")}
    if len({k[1] for k in keys}) > 1:
        for variant, found in means.items():
            line(variant, "mean", found.get("slope"), found.get("torch"))
    print("SLoPe / dense (mean over seeds):")
    for variant in ("slope", "slope+adapters"):
        for key in ("best", "end"):
            ratios = {f: means[variant][f][key] / means["dense"][f][key] for f in ("slope", "torch")
                      if f in means.get(variant, {}) and f in means.get("dense", {})}
            if len(ratios) == 2:
                print(f"  {variant:15} {key:4}: slope {ratios['slope']:.4f}  PyTorch {ratios['torch']:.4f}  "
                      f"difference {abs(ratios['slope'] / ratios['torch'] - 1) * 100:.2f}%")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"label": args.label, "recipe": args.recipe, "device": args.device, "precision": args.precision,
                       "runs": [{"variant": v, "seed": s, **runs[(v, s)]} for v, s in keys], "means": means}, f, indent=2)


if __name__ == "__main__":
    main()
