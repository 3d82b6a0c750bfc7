#!/usr/bin/env bash
# Same-lease A/B of two (or more) builds of slope: each of $BUILDS (names of .gpu/NAME.gz or .gpu/NAME binaries; the
# first is the baseline) runs decoding's GEMM table (decode-gemm.sh, $KERNELS: mma) and `slope bench generate`
# (generate-ab.sh) with a kernel and decisions cache of its own, then one table of the skinny/dense/merged routes per
# build. Build the baseline first, keep it (`mv .gpu/slope.gz .gpu/base.gz`), build the change, then:
#   BUILDS="base slope" OUT=$OUT bash bench/device/builds-ab.sh
set -uo pipefail
OUT=${OUT:-out}; mkdir -p "$OUT"
for build in ${BUILDS:-base slope}; do
  [ -x ".gpu/$build" ] || { gunzip -c ".gpu/$build.gz" > ".gpu/$build" && chmod +x ".gpu/$build"; } || { echo "no .gpu/$build(.gz)"; exit 1; }
done
for build in ${BUILDS:-base slope}; do
  export SLOPE=./.gpu/$build SLOPE_CACHE_DIR=/tmp/slope-cache-$build
  KERNELS=${KERNELS:-mma} OUT=$OUT/$build bash bench/device/decode-gemm.sh > "$OUT/$build-gemm.txt" 2>&1
  echo "== $build: decoding's GEMMs (ms; the decisions file's timings)"
  grep -E " (1|8)x[0-9]" "$OUT/$build-gemm.txt" | grep -v "^ *[0-9]" | cut -c1-125
  SETTINGS=${SETTINGS:-default} OUT=$OUT/$build bash bench/device/generate-ab.sh > "$OUT/$build-generate.txt" 2>&1
  echo "== $build: generation"; tail -n 7 "$OUT/$build-generate.txt"
done
