#!/usr/bin/env bash
# Where a BERT-large training step's GPU time goes, beside transformers': `SLOPE_PROFILE=1` tables of slope dense
# and SLoPe at sequence length 128 (bench/device/bert.sh's run, $STEPS steps, the first left out), then
# bench/pytorch/train_bert.py --profile (torch.profiler, the last 5 of its steps). $BASE names a second build whose
# dense table goes beside this one's (an A/B of a kernel change, e.g. BASE=./.gpu/base); $KINDS ("dense slope")
# picks slope's runs, $TORCH=0 skips transformers. Full logs in $OUT; the top of each table printed.
set -uo pipefail
SLOPE=${SLOPE:-./.gpu/slope}
OUT=${OUT:-out}; mkdir -p "$OUT"
export SLOPE_CACHE_DIR=${SLOPE_CACHE_DIR:-/tmp/slope-cache}
PYTHON=${PYTHON:-/opt/torch/.venv/bin/python}
runs=()
for kind in ${KINDS:-dense slope}; do runs+=("$SLOPE $kind"); done
[ -n "${BASE:-}" ] && runs+=("$BASE dense")
for run in "${runs[@]}"; do
  set -- $run
  name="$(basename "$1")-$2"
  SLOPE=$1 SLOPE_PROFILE=1 STEPS=${STEPS:-12} LENGTHS=128 KINDS=$2 TORCH=0 OUT="$OUT/$name" bash bench/device/bert.sh 2>&1 | tail -1
  echo "== $name"; grep -A${ROWS:-18} "GPU time by op" "$OUT/$name/bert-$2-128.txt" | cut -c1-100
done
[ "${TORCH:-1}" = 0 ] && exit 0
"$PYTHON" bench/pytorch/train_bert.py --batch-size 64 --sequence-length 128 --steps 8 --profile > "$OUT/torch-profile.txt" 2>&1
echo "== transformers"; grep -A${ROWS:-18} "GPU time by op" "$OUT/torch-profile.txt" | cut -c1-120
