#!/usr/bin/env bash
# Device-side run behind docs/benchmarks/cuda-*.md: doctor, `slope bench linear` at the default OPT shapes (or
# $SHAPES), PyTorch's dense and 2:4 linear at the same shapes, `slope bench attention` and PyTorch's SDPA, then
# one side-by-side table of the forwards. SKIP_DOCTOR, SKIP_TORCH, SKIP_ATTENTION = 1 leave a part out. Logs go
# to $OUT (default ./out), at most 8 files (what a device call brings back). Run from the repository root with
# the static binary in .gpu/ (../shared/tools/gpu-build.sh).
set -uo pipefail
OUT=${OUT:-out}; mkdir -p "$OUT"
export SLOPE_CACHE_DIR=${SLOPE_CACHE_DIR:-/tmp/slope-cache}
PYTHON=${PYTHON:-/opt/torch/.venv/bin/python}
shapes=(); [ -n "${SHAPES:-}" ] && shapes=(--shapes "$SHAPES")

if [ "${SKIP_DOCTOR:-0}" != 1 ]; then
  ./.gpu/slope doctor > "$OUT/doctor.txt" 2>&1; echo "doctor exit $?"; grep -E "passed|FAIL" "$OUT/doctor.txt" | tail -3
fi
./.gpu/slope bench linear --device cuda "${shapes[@]}" --json "$OUT/linear.json" > "$OUT/linear.txt" 2>&1; echo "bench linear exit $?"
if [ "${SKIP_TORCH:-0}" != 1 ]; then
  "$PYTHON" bench/pytorch/bench_linear.py "${shapes[@]}" --json "$OUT/torch-linear.json" > "$OUT/torch-linear.txt" 2>&1
  echo "torch linear exit $?"
fi
if [ "${SKIP_ATTENTION:-0}" != 1 ]; then
  { ./.gpu/slope bench attention --device cuda; "$PYTHON" bench/pytorch/bench_attention.py; } > "$OUT/attention.txt" 2>&1
  echo "attention exit $?"
fi
echo; echo "== forward and layer step, slope (and PyTorch 2:4 forward where measured) =="
"$PYTHON" bench/device/side_by_side.py "$OUT/linear.json" "$OUT/torch-linear.json"
