#!/usr/bin/env bash
# Device-side run behind docs/benchmarks/training.md's BERT table: BERT MLM + NSP pretraining at sequence length 128
# and 512, slope dense vs slope SLoPe (2:4) vs transformers' BertForPreTraining (bench/pytorch/train_bert.py), one
# after the other in one lease. slope trains sentence pairs of the embedded corpus (long documents, so pairs fill the
# length) with BERT's 30522-token vocabulary, bf16, AdamW as the reference (torch has no LAMB; $OPTIMIZER=lamb for
# slope's); no checkpoint is written. $MODEL (bert-large), $BATCH128
# (64), $BATCH512 (16), $STEPS (30), $LENGTHS ("128 512") and $KINDS ("dense slope") override the defaults; $SLOPE_ARGS
# adds flags to slope's runs (e.g. "--attention-dropout 0": no attention-probability dropout, which transformers
# applies), $TORCH=0 skips transformers. Logs to $OUT.
set -uo pipefail
SLOPE=${SLOPE:-./.gpu/slope}  # (another build for an A/B: SLOPE=./.gpu/base)
OUT=${OUT:-out}; mkdir -p "$OUT"
export SLOPE_CACHE_DIR=${SLOPE_CACHE_DIR:-/tmp/slope-cache}
PYTHON=${PYTHON:-/opt/torch/.venv/bin/python}
MODEL=${MODEL:-bert-large}; STEPS=${STEPS:-30}
rows=()
for length in ${LENGTHS:-128 512}; do
  batch=$([ "$length" = 128 ] && echo "${BATCH128:-64}" || echo "${BATCH512:-16}")
  for kind in ${KINDS:-dense slope}; do
    flag=$([ "$kind" = dense ] && echo --dense || echo "")
    log="$OUT/bert-$kind-$length.txt"
    "$SLOPE" pretrain --model "$MODEL" $flag --device cuda --vocab-size 30522 --sequence-length "$length" --batch-size "$batch" \
      --steps "$STEPS" --warmup 5 --optimizer "${OPTIMIZER:-adamw}" --adapter-fraction 0 --corpus-sentences 40000 --sentences-per-document $((length / 2)) \
      --eval-interval 0 --eval-batches 1 --log-every 10 --no-final-checkpoint --out "/tmp/bert-$kind-$length" --force ${SLOPE_ARGS:-} > "$log" 2>&1
    echo "slope $kind $length exit $?"
    rate=$(grep -E "^  throughput" "$log" | awk '{print $2}'); peak=$(grep -E "^  peak memory" "$log" | awk '{print $3, $4}')
    rows+=("$length slope-$kind $batch $rate $peak")
    rm -rf "/tmp/bert-$kind-$length"
  done
  [ "${TORCH:-1}" = 0 ] && continue
  "$PYTHON" bench/pytorch/train_bert.py --model "$MODEL" --batch-size "$batch" --sequence-length "$length" --steps "$STEPS" \
    --json "$OUT/bert-torch-$length.json" > "$OUT/bert-torch-$length.txt" 2>&1
  echo "transformers $length exit $?"
  rows+=("$length transformers $batch $(grep -oE '[0-9,]+ tokens/s' "$OUT/bert-torch-$length.txt" | head -1) $(grep -oE 'peak [0-9.]+ GiB' "$OUT/bert-torch-$length.txt")")
done
printf '%s\n' "length what batch tokens/s peak" "${rows[@]}"
