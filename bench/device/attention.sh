#!/usr/bin/env bash
# Device-side attention run behind docs/benchmarks/training.md's attention tables: `slope bench attention` (every
# fused kernel variant with VARIANTS=1) and PyTorch's scaled_dot_product_attention at the same shapes, in one
# process lifetime each, then a side-by-side of the fused defaults against SDPA's FlashAttention-2 backend.
# $SHAPES overrides the default shapes (4×2048 tokens at head dimensions 64, 80, 96, 128, 256; 2×4096×16×128);
# SKIP_DOCTOR=1 leaves the check out; BASE=path also times an earlier build's binary. Logs go to $OUT (default ./out).
set -uo pipefail
OUT=${OUT:-out}; mkdir -p "$OUT"
export SLOPE_CACHE_DIR=${SLOPE_CACHE_DIR:-/tmp/slope-cache}
PYTHON=${PYTHON:-/opt/torch/.venv/bin/python}
SHAPES=${SHAPES:-4x2048x32x64,4x2048x32x80,4x2048x32x96,4x2048x32x128,4x2048x16x256,2x4096x16x128}
variants=(); [ "${VARIANTS:-0}" = 1 ] && variants=(--variants)

if [ "${SKIP_DOCTOR:-0}" != 1 ]; then
  ./.gpu/slope doctor > "$OUT/doctor.txt" 2>&1; echo "doctor exit $?"; grep -E "passed|FAIL|cuDNN" "$OUT/doctor.txt" | tail -12
fi
./.gpu/slope bench attention --device cuda --shapes "$SHAPES" "${variants[@]}" --json "$OUT/attention-slope.json" \
  > "$OUT/attention-slope.txt" 2>&1; echo "slope bench attention exit $?"
if [ -n "${BASE:-}" ]; then
  "$BASE" bench attention --device cuda --shapes "${BASE_SHAPES:-4x2048x32x64,2x4096x16x128}" > "$OUT/attention-base.txt" 2>&1
  echo "base bench attention exit $?"
fi
"$PYTHON" bench/pytorch/bench_attention.py --shapes "$SHAPES" --json "$OUT/attention-torch.json" > "$OUT/attention-torch.txt" 2>&1
echo "torch bench attention exit $?"
cat "$OUT/attention-slope.txt" "$OUT/attention-torch.txt"
[ -n "${BASE:-}" ] && cat "$OUT/attention-base.txt"
echo; echo "== cudnn and fused default (v0) against SDPA flash and cuDNN, TFLOP/s =="
"$PYTHON" - "$OUT/attention-slope.json" "$OUT/attention-torch.json" <<'PY'
import json, sys
slope = json.load(open(sys.argv[1])); torch = json.load(open(sys.argv[2]))
by = lambda name: {r["shape"].replace("x", "×"): r for r in torch if r["backend"] == name}
flash, cudnn = by("flash"), by("cudnn")
print(f"{'B×T×H×D':16} {'route':10} {'fwd':>7} {'flash':>7} {'ratio':>6} {'cudnn':>7} {'ratio':>6} {'bwd':>7} {'flash':>7} {'ratio':>6} {'cudnn':>7} {'ratio':>6}")
for r in slope:
    f, c = flash.get(r["shape"]), cudnn.get(r["shape"])
    if not f or not (r["route"].startswith("fused") or r["route"] == "cudnn"): continue
    row = f"{r['shape']:16} {r['route']:10} {r['forwardTFLOPS']:7.1f} {f['forwardTFLOPS']:7.1f} {r['forwardTFLOPS']/f['forwardTFLOPS']:6.2f}"
    row += f" {c['forwardTFLOPS']:7.1f} {r['forwardTFLOPS']/c['forwardTFLOPS']:6.2f}" if c else " " * 15
    row += f" {r['backwardTFLOPS']:7.1f} {f['backwardTFLOPS']:7.1f} {r['backwardTFLOPS']/f['backwardTFLOPS']:6.2f}"
    row += f" {c['backwardTFLOPS']:7.1f} {r['backwardTFLOPS']/c['backwardTFLOPS']:6.2f}" if c else ""
    print(row)
PY
