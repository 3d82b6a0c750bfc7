#!/usr/bin/env bash
# Device-side run behind docs/benchmarks/training.md: doctor, PyTorch's OPT-1.3B training throughput, slope
# dense and SLoPe at the same shape, the SLoPe run interrupted with SIGINT after step 4 and resumed, eval and
# generate on its checkpoint, then dense and SLoPe with --recompute-activations (SKIP_DOCTOR, SKIP_TORCH,
# SKIP_DENSE, SKIP_EVAL, SKIP_RECOMPUTE = 1 leave a part out). Logs go to $OUT (default ./out), at most 8 files
# (what a device call brings back). Run from the repository root with the static binary in .gpu/
# (../shared/tools/gpu-build.sh).
set -uo pipefail
OUT=${OUT:-out}; mkdir -p "$OUT"
export SLOPE_CACHE_DIR=${SLOPE_CACHE_DIR:-/tmp/slope-cache}
STEPS=${STEPS:-8}
PYTHON=${PYTHON:-/opt/torch/.venv/bin/python}
shape=(--model opt-1.3b --vocab-size 50272 --batch-size 4 --sequence-length 2048 --log-every 1 --eval-batches 1 --eval-interval 100 --adapter-fraction 0)

if [ "${SKIP_DOCTOR:-0}" != 1 ]; then
  ./.gpu/slope doctor > "$OUT/doctor.txt" 2>&1; echo "doctor exit $?"; grep -E "passed|failed|FAIL" "$OUT/doctor.txt" | tail -3
fi
if [ "${SKIP_TORCH:-0}" != 1 ]; then
  "$PYTHON" bench/pytorch/train_opt.py --steps 10 --json "$OUT/pytorch.json" > "$OUT/pytorch.txt" 2>&1; tail -2 "$OUT/pytorch.txt"
fi
if [ "${SKIP_DENSE:-0}" != 1 ]; then
  ./.gpu/slope pretrain "${shape[@]}" --steps "$STEPS" --dense --out /tmp/run-dense > "$OUT/dense.txt" 2>&1; echo "dense exit $?"
fi
# SLoPe: SIGINT after step 4 must save a checkpoint; --resume must finish the remaining steps.
./.gpu/slope pretrain "${shape[@]}" --steps "$STEPS" --out /tmp/run-slope > "$OUT/slope.txt" 2>&1 &
pid=$!
until grep -q "step 4/$STEPS" "$OUT/slope.txt" 2>/dev/null || ! kill -0 $pid 2>/dev/null; do sleep 0.2; done
kill -INT $pid 2>/dev/null; wait $pid; echo "slope (interrupted) exit $?"
./.gpu/slope pretrain --out /tmp/run-slope --resume > "$OUT/slope-resume.txt" 2>&1; echo "resume exit $?"
if [ "${SKIP_EVAL:-0}" != 1 ]; then
  ./.gpu/slope eval /tmp/run-slope/checkpoint.safetensors --batches 2 > "$OUT/eval-generate.txt" 2>&1; echo "eval exit $?"
  ./.gpu/slope generate /tmp/run-slope/checkpoint.safetensors --prompt "The" --max-tokens 24 --temperature 0 >> "$OUT/eval-generate.txt" 2>&1
  echo "generate exit $?"; grep -E "perplexity|tokens in" "$OUT/eval-generate.txt"
fi
# Both again with activation recomputation (memory against throughput); one file, so $OUT stays at 8 files.
if [ "${SKIP_RECOMPUTE:-0}" != 1 ]; then
  for mode in --dense ""; do
    echo "== recompute ${mode:-slope} ==" >> "$OUT/recompute.txt"
    ./.gpu/slope pretrain "${shape[@]}" --steps "$STEPS" $mode --recompute-activations --out /tmp/run-recompute$mode >> "$OUT/recompute.txt" 2>&1
    echo "recompute ${mode:-slope} exit $?"
  done
fi
echo; echo "== summary =="
for f in dense slope slope-resume recompute; do
  [ -f "$OUT/$f.txt" ] || continue
  echo "-- $f"; grep -E "^== |^step [0-9]+/|throughput|peak memory|checkpoint|interrupt|stopp" "$OUT/$f.txt" | tail -24
done
