#!/usr/bin/env bash
# Where a batch-1 decode step's GPU time goes: ncu's kernel durations (gpu__time_duration.sum, clocks left alone) over
# $COUNT launches of `slope bench generate` past the first $SKIP (the steps run op by op, SLOPE_CUDA_GRAPHS=0, so
# each kernel is its own launch), summed by kernel with bench/device/kernel_times.py, per step (one argmax launch a
# step). $MODES ("dense merged") are profiled one after the other; CSVs in $OUT.
set -uo pipefail
SLOPE=${SLOPE:-./.gpu/slope}
OUT=${OUT:-out}; mkdir -p "$OUT"
export SLOPE_CACHE_DIR=${SLOPE_CACHE_DIR:-/tmp/slope-cache}
for mode in ${MODES:-dense merged}; do
  SLOPE_CUDA_GRAPHS=0 timeout ${LIMIT:-180} ncu --clock-control none --metrics gpu__time_duration.sum --csv \
    --launch-skip ${SKIP:-9000} --launch-count ${COUNT:-1200} \
    "$SLOPE" bench generate --device cuda --batches 1 --modes "$mode" --new-tokens 40 --repeats 1 > "$OUT/ncu-$mode.csv" 2> "$OUT/ncu-$mode.err"
  echo "ncu $mode exit $?"
  python3 bench/device/kernel_times.py "$OUT/ncu-$mode.csv" argmax | cut -c1-110 | head -${ROWS:-22}
done
