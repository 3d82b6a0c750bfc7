#!/usr/bin/env bash
# Device-side run behind docs/benchmarks/training.md's size table: for each model in $MODELS (default OPT-1.3B,
# OPT-2.7B and OPT-6.7B; llama-1b and llama-3b also work), PyTorch + transformers, slope dense and slope SLoPe at
# batch 4 × 2048, bf16, $STEPS steps
# each, then one table (median tokens/s of steps 2…, peak memory). Models named in $RECOMPUTE (default opt-6.7b)
# run with activation recomputation in all three (PyTorch: gradient_checkpointing_enable()). No checkpoint is
# written (--no-final-checkpoint), so nothing multi-GB is left on the device's disk. $EXTRA adds slope options
# (e.g. --optimizer-state bfloat16). Logs go to $OUT (default ./out): one file per model (at most 8 come back).
set -uo pipefail
OUT=${OUT:-out}; mkdir -p "$OUT"
export SLOPE_CACHE_DIR=${SLOPE_CACHE_DIR:-/tmp/slope-cache}
MODELS=${MODELS:-opt-1.3b opt-2.7b opt-6.7b}
RECOMPUTE=${RECOMPUTE:-opt-6.7b}
STEPS=${STEPS:-8}
PYTHON=${PYTHON:-/opt/torch/.venv/bin/python}
for model in $MODELS; do
  log="$OUT/train-$model.txt"; : > "$log"
  recompute=(); torch_recompute=()
  case " $RECOMPUTE " in *" $model "*) recompute=(--recompute-activations); torch_recompute=(--gradient-checkpointing);; esac
  if [ "${SKIP_TORCH:-0}" != 1 ]; then
    echo "== pytorch $model" >> "$log"
    "$PYTHON" bench/pytorch/train_opt.py --model "$model" --steps "$STEPS" "${torch_recompute[@]}" --json "/tmp/torch-$model.json" >> "$log" 2>&1
    echo "pytorch $model exit $?"
  fi
  for mode in dense slope; do
    flags=(); [ $mode = dense ] && flags=(--dense)
    rm -rf "/tmp/run-$model-$mode"
    echo "== slope $mode $model" >> "$log"
    vocab=(--vocab-size 50272); case $model in llama-*) vocab=(--vocab-size 128256);; esac  # as the PyTorch models
    ./.gpu/slope pretrain --model "$model" "${vocab[@]}" --batch-size 4 --sequence-length 2048 --steps "$STEPS" --log-every 1 \
      --eval-batches 1 --eval-interval 1000 --adapter-fraction 0 --no-final-checkpoint "${flags[@]}" "${recompute[@]}" ${EXTRA:-} \
      --out "/tmp/run-$model-$mode" >> "$log" 2>&1
    echo "slope $mode $model exit $?"
  done
done
echo; echo "== tokens/s (median of steps 2…) and peak memory; $(nvidia-smi --query-gpu=name --format=csv,noheader) =="
"$PYTHON" - $MODELS <<'PY'
import json, statistics, sys, os
print(f"{'model':10} {'PyTorch':>16} {'slope dense':>22} {'slope SLoPe':>22} {'SLoPe/dense':>11} {'SLoPe/PyTorch':>13} {'mem S/d':>8}")
for model in sys.argv[1:]:
    torch = json.load(open(f"/tmp/torch-{model}.json")) if os.path.exists(f"/tmp/torch-{model}.json") else None
    runs = {}
    for mode in ("dense", "slope"):
        path = f"/tmp/run-{model}-{mode}/metrics.jsonl"
        if not os.path.exists(path): continue
        rows = [json.loads(l) for l in open(path)]
        steps = [r for r in rows if "tokens_per_second" in r and r.get("step", 0) >= 2]
        if steps: runs[mode] = (statistics.median(r["tokens_per_second"] for r in steps), max(r.get("peak_memory_bytes", 0) for r in steps) / 2**30)
    t = f"{torch['tokens_per_second']/1e3:.1f}k {torch['peak_memory_gib']:.1f}G" if torch else "-"
    d = f"{runs['dense'][0]/1e3:.1f}k {runs['dense'][1]:.2f} GiB" if "dense" in runs else "-"
    s = f"{runs['slope'][0]/1e3:.1f}k {runs['slope'][1]:.2f} GiB" if "slope" in runs else "-"
    sd = f"{runs['slope'][0]/runs['dense'][0]:.3f}" if len(runs) == 2 else "-"
    st = f"{runs['slope'][0]/torch['tokens_per_second']:.3f}" if torch and "slope" in runs else "-"
    mem = f"{runs['slope'][1]/runs['dense'][1]:.3f}" if len(runs) == 2 else "-"
    print(f"{model:10} {t:>16} {d:>22} {s:>22} {sd:>11} {st:>13} {mem:>8}")
PY
