#!/usr/bin/env bash
# Same-run A/B of one environment setting on `slope pretrain` (e.g. SLOPE_FUSIONS=off against on): for each model
# in $MODELS and mode in $MODES (dense, slope), runs setting $A then $B, $ROUNDS times alternately (so drift
# hits both), at batch 4 × 2048, bf16, $STEPS steps, no checkpoint. Prints the median tokens/s of steps 2… per
# run and B/A over the medians of all rounds. Logs go to $OUT.
#   A=SLOPE_FUSIONS=off B=SLOPE_FUSIONS=on MODELS="opt-1.3b opt-2.7b" OUT=$OUT bash bench/device/ab.sh
set -uo pipefail
OUT=${OUT:-out}; mkdir -p "$OUT"
export SLOPE_CACHE_DIR=${SLOPE_CACHE_DIR:-/tmp/slope-cache}
A=${A:?set A, e.g. SLOPE_FUSIONS=off}; B=${B:?set B, e.g. SLOPE_FUSIONS=on}
MODELS=${MODELS:-opt-1.3b}; MODES=${MODES:-dense slope}; ROUNDS=${ROUNDS:-1}; STEPS=${STEPS:-8}
PYTHON=${PYTHON:-/opt/torch/.venv/bin/python}
results=/tmp/ab-results.txt; : > "$results"
for model in $MODELS; do
  vocab=(--vocab-size 50272); case $model in llama-*) vocab=(--vocab-size 128256);; esac
  for mode in $MODES; do
    flags=(); [ "$mode" = dense ] && flags=(--dense)
    for round in $(seq 1 "$ROUNDS"); do
      for variant in A B; do
        setting=${!variant}; run="/tmp/ab-$model-$mode-$variant-$round"; rm -rf "$run"
        echo "== $setting slope $mode $model round $round" >> "$OUT/ab-$model.txt"
        env "$setting" ./.gpu/slope pretrain --model "$model" "${vocab[@]}" --batch-size 4 --sequence-length 2048 --steps "$STEPS" \
          --log-every 1 --eval-batches 1 --eval-interval 1000 --adapter-fraction 0 --no-final-checkpoint "${flags[@]}" ${EXTRA:-} \
          --out "$run" >> "$OUT/ab-$model.txt" 2>&1
        echo "$model $mode $variant $round $run" >> "$results"
      done
    done
  done
done
echo; echo "== $A (A) against $B (B): tokens/s, median of steps 2…; $(nvidia-smi --query-gpu=name --format=csv,noheader) =="
"$PYTHON" - "$results" <<'PY'
import json, statistics, sys, os, collections
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    model, mode, variant, _, path = line.split()
    metrics = f"{path}/metrics.jsonl"
    if not os.path.exists(metrics): continue
    rows = [json.loads(l) for l in open(metrics)]
    steps = [r for r in rows if "tokens_per_second" in r and r.get("step", 0) >= 2]
    if steps:
        runs[(model, mode, variant)].append((statistics.median(r["tokens_per_second"] for r in steps),
                                              max(r.get("peak_memory_bytes", 0) for r in steps) / 2**30))
print(f"{'model':10} {'mode':6} {'A tok/s (runs)':>24} {'B tok/s (runs)':>24} {'B/A':>6} {'A GiB':>7} {'B GiB':>7}")
for model, mode in sorted({(m, d) for m, d, _ in runs}):
    a, b = runs.get((model, mode, "A"), []), runs.get((model, mode, "B"), [])
    fmt = lambda rs: " ".join(f"{t/1e3:.1f}k" for t, _ in rs) or "-"
    ratio = f"{statistics.median(t for t, _ in b) / statistics.median(t for t, _ in a):.3f}" if a and b else "-"
    mem = lambda rs: f"{max(m for _, m in rs):.2f}" if rs else "-"
    print(f"{model:10} {mode:6} {fmt(a):>24} {fmt(b):>24} {ratio:>6} {mem(a):>7} {mem(b):>7}")
PY
