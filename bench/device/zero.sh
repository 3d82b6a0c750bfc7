#!/usr/bin/env bash
# ZeRO-1 through NCCL on one GPU: `slope pretrain` as a data-parallel job of one rank (SLOPE_DATA_PARALLEL=1), with
# and without --shard-optimizer, must give the same losses step for step (the sharded path broadcasts every updated
# tensor from its owner). A tiny model, six steps; the run folders are removed afterwards. Logs go to $OUT.
set -uo pipefail
OUT=${OUT:-out}; mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
SLOPE=$(pwd)/.gpu/slope
for mode in plain sharded; do
  extra=(); [ $mode = sharded ] && extra=(--shard-optimizer)
  (cd /tmp && SLOPE_DATA_PARALLEL=1 "$SLOPE" pretrain --model tiny --steps 6 --batch-size 4 --sequence-length 64 \
    --corpus-sentences 2000 --log-every 1 --eval-batches 1 --out "/tmp/slope-zero-$mode" "${extra[@]}" > "$OUT/zero-$mode.txt" 2>&1) \
    || echo "$mode run failed (see $OUT/zero-$mode.txt)"
done
for mode in plain sharded; do
  echo "$mode: $(grep -o '"loss":[0-9.e-]*' /tmp/slope-zero-$mode/metrics.jsonl 2>/dev/null | tr '\n' ' ')"
done
grep -E "ZeRO|parallel" "$OUT/zero-sharded.txt"
rm -rf /tmp/slope-zero-plain /tmp/slope-zero-sharded
