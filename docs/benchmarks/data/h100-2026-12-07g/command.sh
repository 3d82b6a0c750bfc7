set -u
for b in slope base; do gunzip -c .gpu/$b.gz > .gpu/$b; chmod +x .gpu/$b; done
nvidia-smi --query-gpu=name --format=csv,noheader
export SLOPE_CACHE_DIR=/tmp/slope-cache-slope
./.gpu/slope doctor > $OUT/doctor.txt 2>&1; echo "doctor exit $?"; grep -E "skinny 2:4|passed, " $OUT/doctor.txt; grep -E "FAIL" $OUT/doctor.txt | cut -c1-160 | head -8
BUILDS="base slope" OUT=$OUT/ab bash bench/device/builds-ab.sh 2>&1 | tail -64
STEPS=60 LENGTHS=128 OUT=$OUT/bert bash bench/device/bert.sh 2>&1 | tail -4
SLOPE=./.gpu/base STEPS=60 LENGTHS=128 KINDS=dense TORCH=0 OUT=$OUT/bert-base bash bench/device/bert.sh 2>&1 | tail -1
SLOPE_ARGS="--attention-dropout 0" STEPS=60 LENGTHS=128 KINDS=dense TORCH=0 OUT=$OUT/bert-noattn bash bench/device/bert.sh 2>&1 | tail -1
./.gpu/slope bench serve --device cuda --clients 32 > $OUT/serve-32.txt 2>&1; echo "serve exit $?"; tail -6 $OUT/serve-32.txt
