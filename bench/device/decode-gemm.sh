#!/usr/bin/env bash
# Device-side run for decoding's GEMMs (docs/benchmarks/inference.md): `slope bench linear` at 1, 4, 8 and 32
# tokens for OPT-1.3B's linears (or $SHAPES), then every route timed for each shape as the sparse-GEMM decisions file
# recorded it (dense, cuSPARSELt's two arrangements, the skinny 2:4 kernel; merged forms), one table per skinny kernel
# ($KERNELS: mma (the default), staged and plain — SLOPE_SKINNY_KERNEL; each keeps its own decisions file). Logs to $OUT.
set -uo pipefail
SLOPE=${SLOPE:-./.gpu/slope}  # (another build for an A/B: SLOPE=./.gpu/base)
OUT=${OUT:-out}; mkdir -p "$OUT"
export SLOPE_CACHE_DIR=${SLOPE_CACHE_DIR:-/tmp/slope-cache}
PYTHON=${PYTHON:-/opt/torch/.venv/bin/python}
SHAPES=${SHAPES:-$(for t in 1 4 8 32; do printf '%sx2048x2048,%sx2048x8192,%sx8192x2048,' $t $t $t; done | sed 's/,$//')}
for kernel in ${KERNELS:-mma staged plain}; do
  SLOPE_SKINNY_KERNEL=$kernel "$SLOPE" bench linear --device cuda --shapes "$SHAPES" --json "$OUT/decode-linear-$kernel.json" \
    > "$OUT/decode-linear-$kernel.txt" 2>&1
  echo "bench linear ($kernel skinny kernel) exit $?"
  grep -E "forward|merged|inference" "$OUT/decode-linear-$kernel.txt" | head -40
  cp "$SLOPE_CACHE_DIR"/sparse-gemm/*-skinny-"$kernel".json "$OUT/decisions-$kernel.json" 2>/dev/null
  "$PYTHON" - "$OUT/decisions-$kernel.json" "$kernel" <<'PY'
import json, sys
try:
    decisions = json.load(open(sys.argv[1]))
except Exception as error:
    sys.exit(f"no decisions file: {error}")
routes = ["dense", "sparseA", "sparseB", "skinny", "folded", "factored", "stacked"]
print(f"skinny kernel: {sys.argv[2]}")
print(f"{'shape':44s} {'chosen':9s} " + " ".join(f"{r:>9s}" for r in routes))
for key in sorted(decisions, key=lambda k: (k.startswith("merged"), k)):
    d = decisions[key]
    ms = d.get("milliseconds", {})
    cells = " ".join(f"{ms[r]:9.4f}" if r in ms else f"{'-':>9s}" for r in routes)
    print(f"{key:44s} {d['route']:9s} {cells}" + (f"  failures: {d['failures']}" if d.get("failures") else ""))
PY
done
