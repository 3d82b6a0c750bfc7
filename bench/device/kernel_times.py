#!/usr/bin/env python3
"""Sums an `ncu --csv --metrics gpu__time_duration.sum` report by kernel: launches, total and mean time, share.

    ncu --metrics gpu__time_duration.sum --csv --launch-skip 3000 --launch-count 800 ./.gpu/slope bench generate ... > ncu.csv
    python3 bench/device/kernel_times.py ncu.csv [steps]

With `steps` (the decode steps the launches cover; `argmax` counts the launches of the greedy sampler's kernel, one a
step), the table also gives the time per step.
"""
import csv
import sys
from collections import defaultdict


def main() -> None:
    path = sys.argv[1]
    steps = sys.argv[2] if len(sys.argv) > 2 else None
    with open(path, newline="") as handle:
        lines = [line for line in handle if line.startswith('"')]  # ncu prints its own log lines before the CSV
    totals, counts = defaultdict(float), defaultdict(int)
    for row in csv.DictReader(lines):
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        value = float(row["Metric Value"].replace(",", ""))
        scale = {"nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3}.get(row.get("Metric Unit", "nsecond"), 1e-3)
        name = row["Kernel Name"].split("(")[0][:60]
        totals[name] += value * scale
        counts[name] += 1
    grand = sum(totals.values())
    if steps == "argmax":
        steps = sum(count for name, count in counts.items() if "argmax" in name) or None
        print(f"steps: {steps} (launches of the argmax kernel)")
    elif steps is not None:
        steps = int(steps)
    print(f"{'kernel':60} {'launches':>8} {'total us':>10} {'mean us':>9} {'share':>6}" + (f" {'us/step':>8}" if steps else ""))
    for name, total in sorted(totals.items(), key=lambda item: -item[1]):
        line = f"{name:60} {counts[name]:8d} {total:10.1f} {total / counts[name]:9.2f} {100 * total / grand:5.1f}%"
        print(line + (f" {total / steps:8.1f}" if steps else ""))
    print(f"{'all':60} {sum(counts.values()):8d} {grand:10.1f}" + (f" {'':9} {'':6} {grand / steps:8.1f}" if steps else ""))


if __name__ == "__main__":
    main()
