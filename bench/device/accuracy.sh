#!/usr/bin/env bash
# Validation loss, slope against the PyTorch reference (bench/pytorch/train_reference.py), behind
# docs/benchmarks/accuracy.md. Both train the same GPT on the same text with the same recipe and data order, for
# each variant in $VARIANTS (dense, slope, slope+adapters) and each seed in $SEEDS, and score the same validation
# windows (the whole held-out 5% by default); then one table: validation loss at the best step and at the end.
#
#   DATA=.gpu/corpus/vim-doc LABEL=default RECIPE="--sampling random" bash bench/device/accuracy.sh
#
# $DATA: a text file or a folder of .txt files (default: Vim's documentation as Debian's vim-runtime ships it,
# /usr/share/vim/vim90/doc, or a copy of it in .gpu/corpus/vim-doc). $RECIPE: options both programs take under
# the same names (--sampling, --weight-decay-on, --weight-decay, --beta1, --beta2, --eps, --mask-change-frequency,
# --adapter-rank, --warmup, --min-lr, --clip). Model: $LAYERS × $HIDDEN, $HEADS heads, sequence $SEQUENCE, batch
# $BATCH, $STEPS steps at --lr $LR; $DEVICE cuda (slope $SLOPE_DTYPE, PyTorch $TORCH_PRECISION) or cpu (float32).
# SAME_INIT=1 starts the PyTorch reference from slope's initial weights of the same seed (a checkpoint written by a
# one-step slope run at lr 1e-30, which leaves the weights as they were), so the two runs differ only in the
# framework, not in the draw of initial weights.
# Results: $OUT/accuracy-$LABEL.json and the logs beside it; no checkpoint is left behind.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-out}; mkdir -p "$OUT"
export SLOPE_CACHE_DIR=${SLOPE_CACHE_DIR:-/tmp/slope-cache}
PYTHON=${PYTHON:-/opt/torch/.venv/bin/python}
SLOPE=${SLOPE:-./.gpu/slope}
if [ -z "${DATA:-}" ]; then
  for candidate in .gpu/corpus/vim-doc /usr/share/vim/vim90/doc; do [ -d "$candidate" ] && DATA=$candidate && break; done
fi
[ -n "${DATA:-}" ] && [ -e "$DATA" ] || { echo "no training text: set DATA to a text file or a folder of .txt files" >&2; exit 2; }
LABEL=${LABEL:-default}; RECIPE=${RECIPE:-}; SEEDS=${SEEDS:-0}; VARIANTS=${VARIANTS:-dense slope slope+adapters}
FRAMEWORKS=${FRAMEWORKS:-slope torch}
LAYERS=${LAYERS:-6}; HIDDEN=${HIDDEN:-384}; HEADS=${HEADS:-6}; SEQUENCE=${SEQUENCE:-256}; BATCH=${BATCH:-64}
STEPS=${STEPS:-2000}; LR=${LR:-1e-3}; EVAL_INTERVAL=${EVAL_INTERVAL:-100}; EVAL_BATCHES=${EVAL_BATCHES:-100000}
ADAPTER_FRACTION=${ADAPTER_FRACTION:-0.01}; DEVICE=${DEVICE:-cuda}
if [ "$DEVICE" = cuda ]; then SLOPE_DTYPE=${SLOPE_DTYPE:-bfloat16}; TORCH_PRECISION=${TORCH_PRECISION:-mixed}
else SLOPE_DTYPE=${SLOPE_DTYPE:-float32}; TORCH_PRECISION=${TORCH_PRECISION:-float32}; fi
work=${WORK:-/tmp/slope-accuracy}/$LABEL; rm -rf "$work"; mkdir -p "$work"
cat > "$work/model.json" <<JSON
{"family": "gpt", "vocabularySize": 257, "contextLength": $SEQUENCE, "layers": $LAYERS, "hiddenSize": $HIDDEN,
 "heads": $HEADS, "keyValueHeads": $HEADS, "intermediateSize": $((4 * HIDDEN)), "activation": "gelu",
 "normEpsilon": 1e-5, "ropeBase": 10000, "tiedEmbeddings": true}
JSON
common=(--steps "$STEPS" --lr "$LR" --eval-interval "$EVAL_INTERVAL" --eval-batches "$EVAL_BATCHES")
for seed in $SEEDS; do
  for variant in $VARIANTS; do
    case $variant in
      dense) slope_flags=(--dense --adapter-fraction 0); torch_flags=();;
      slope) slope_flags=(--adapter-fraction 0); torch_flags=(--slope);;
      slope+adapters) slope_flags=(--adapter-fraction "$ADAPTER_FRACTION"); torch_flags=(--slope --adapter-fraction "$ADAPTER_FRACTION");;
      *) echo "unknown variant $variant (dense, slope, slope+adapters)" >&2; exit 2;;
    esac
    name="$variant-seed$seed"
    init_flags=()
    if [ "${SAME_INIT:-0}" = 1 ]; then
      init="$work/init-seed$seed"
      [ -f "$init/checkpoint.safetensors" ] || "$SLOPE" pretrain --model "$work/model.json" --data "$DATA" --batch-size "$BATCH" \
        --sequence-length "$SEQUENCE" --device "$DEVICE" --dtype float32 --seed "$seed" --dense --steps 1 --lr 1e-30 \
        --adapter-fraction 0 --eval-batches 1 --out "$init" --force > "$OUT/accuracy-$LABEL-init-seed$seed.txt" 2>&1
      init_flags=(--init-from "$init/checkpoint.safetensors")
    fi
    for framework in $FRAMEWORKS; do
      log="$OUT/accuracy-$LABEL-$name-$framework.txt"
      started=$(date +%s)
      if [ "$framework" = slope ]; then
        "$SLOPE" pretrain --model "$work/model.json" --data "$DATA" --batch-size "$BATCH" --sequence-length "$SEQUENCE" \
          --device "$DEVICE" --dtype "$SLOPE_DTYPE" --seed "$seed" --log-every 100 --no-final-checkpoint \
          "${common[@]}" "${slope_flags[@]}" $RECIPE --out "$work/$name-slope" > "$log" 2>&1
      else
        "$PYTHON" "$here/../pytorch/train_reference.py" --data "$DATA" --layers "$LAYERS" --hidden "$HIDDEN" --heads "$HEADS" \
          --sequence "$SEQUENCE" --batch "$BATCH" --device "$DEVICE" --precision "$TORCH_PRECISION" --seed "$seed" \
          "${common[@]}" "${torch_flags[@]}" "${init_flags[@]}" $RECIPE --json "$work/$name-torch.json" > "$log" 2>&1
      fi
      echo "$LABEL $name $framework: exit $?, $(( $(date +%s) - started )) s"
    done
  done
done
"$PYTHON" "$here/accuracy_table.py" "$work" --label "$LABEL" --recipe "$RECIPE" --device "$DEVICE" \
  --precision "slope $SLOPE_DTYPE, PyTorch $TORCH_PRECISION" --json "$OUT/accuracy-$LABEL.json"
