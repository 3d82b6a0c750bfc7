#!/usr/bin/env bash
# Same-lease A/B of generation settings: `slope bench generate` once per entry of $SETTINGS (space-separated; each an
# environment assignment such as SLOPE_STACK_PROJECTIONS=0, or "default"), at $MODEL (opt-1.3b), $BATCHES (1,8),
# $PROMPT (512) + $NEW (128) tokens, $MODES (dense,merged). Prints each run's table; logs and JSON go to $OUT.
#   SETTINGS="default SLOPE_STACK_PROJECTIONS=0 SLOPE_DENSE_GEMM=cublaslt" OUT=$OUT bash bench/device/generate-ab.sh
set -uo pipefail
SLOPE=${SLOPE:-./.gpu/slope}  # (another build for an A/B: SLOPE=./.gpu/base)
OUT=${OUT:-out}; mkdir -p "$OUT"
export SLOPE_CACHE_DIR=${SLOPE_CACHE_DIR:-/tmp/slope-cache}
MODEL=${MODEL:-opt-1.3b}; BATCHES=${BATCHES:-1,8}; PROMPT=${PROMPT:-512}; NEW=${NEW:-128}; MODES=${MODES:-dense,merged}
for setting in ${SETTINGS:-default}; do
  name=${setting//[^A-Za-z0-9_]/_}
  assignment=(); [ "$setting" != default ] && assignment=("$setting")
  env "${assignment[@]}" "$SLOPE" bench generate --device cuda --model "$MODEL" --batches "$BATCHES" --prompt-tokens "$PROMPT" \
    --new-tokens "$NEW" --modes "$MODES" --json "$OUT/generate-$name.json" > "$OUT/generate-$name.txt" 2>&1
  echo "== $setting (exit $?)"; tail -n 8 "$OUT/generate-$name.txt"
done
