#!/usr/bin/env bash
# Device-side run behind docs/benchmarks/inference.md: `slope bench generate` (dense, SLoPe merged and unmerged) and
# transformers' generate (bench/pytorch/bench_generate.py) at the same shape, batch sizes and lengths, one after the
# other in one lease. $MODEL (opt-1.3b), $BATCHES (1,8,32), $PROMPT (512), $NEW (128) override the defaults.
# Logs and JSON go to $OUT (default ./out).
set -uo pipefail
OUT=${OUT:-out}; mkdir -p "$OUT"
export SLOPE_CACHE_DIR=${SLOPE_CACHE_DIR:-/tmp/slope-cache}
PYTHON=${PYTHON:-/opt/torch/.venv/bin/python}
MODEL=${MODEL:-opt-1.3b}; BATCHES=${BATCHES:-1,8,32}; PROMPT=${PROMPT:-512}; NEW=${NEW:-128}
./.gpu/slope bench generate --device cuda --model "$MODEL" --batches "$BATCHES" --prompt-tokens "$PROMPT" --new-tokens "$NEW" \
  --json "$OUT/generate-slope.json" > "$OUT/generate-slope.txt" 2>&1; echo "slope bench generate exit $?"
"$PYTHON" bench/pytorch/bench_generate.py --model "$MODEL" --batches "$BATCHES" --prompt-tokens "$PROMPT" --new-tokens "$NEW" \
  --json "$OUT/generate-torch.json" > "$OUT/generate-torch.txt" 2>&1; echo "transformers generate exit $?"
cat "$OUT/generate-slope.txt" "$OUT/generate-torch.txt"
