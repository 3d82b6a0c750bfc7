#!/usr/bin/env bash
# Fuzzes every parser of untrusted input with libFuzzer and AddressSanitizer (fuzz/README.md).
#   fuzz/run.sh [RUNS] [TARGET…]     default: 1000000 inputs per target, every target
# Builds slope-fuzz with libFuzzer and AddressSanitizer into .build-fuzz/, then runs each target over a scratch copy of
# its seed corpus (fuzz/corpus/<target>/ is read, never written). Exits non-zero on the first crash; libFuzzer
# saves the crashing input as crash-<hash> in the current folder (replay: slope-fuzz <target> crash-<hash>).
# $SECONDS_PER_TARGET instead caps each target by time (CI's short pass).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1000000}; shift || true
targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(safetensors tokens tokenizer-json vocab-merges model-json checkpoint-state chat-request chat-template)
# libFuzzer's instrumentation (inline 8-bit counters, PC table, comparisons) and AddressSanitizer in every module, and
# libFuzzer without its own main: SwiftPM gives executables their entry point, and slope-fuzz's calls libFuzzer's
# driver (LLVMFuzzerRunDriver). (-sanitize=fuzzer would also link libFuzzer's main, which clashes with that entry point.)
fuzzer=$(find "$(dirname "$(readlink -f "$(command -v swiftc)")")/../lib/clang" -name 'libclang_rt.fuzzer_no_main-x86_64.a' 2>/dev/null | head -1)
[ -n "$fuzzer" ] || { echo "this toolchain has no libFuzzer (libclang_rt.fuzzer_no_main); cannot fuzz here"; exit 3; }
swift build -c release --product slope-fuzz --scratch-path .build-fuzz \
  -Xswiftc -sanitize=address -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp -Xswiftc -DFUZZING \
  -Xcc -fsanitize=fuzzer-no-link -Xlinker "$fuzzer" -Xlinker -lstdc++ 2>&1 | tail -2
binary=.build-fuzz/release/slope-fuzz
[ -x "$binary" ] || { echo "the fuzz build failed"; exit 1; }
limit=(-runs="$runs"); [ -n "${SECONDS_PER_TARGET:-}" ] && limit=(-max_total_time="$SECONDS_PER_TARGET")
printf '%-18s %12s %10s %8s %s\n' target inputs seconds exec/s result
for target in "${targets[@]}"; do
  scratch=$(mktemp -d)
  start=$(date +%s.%N)
  set +e
  SLOPE_FUZZ_TARGET=$target "$binary" "$scratch" "fuzz/corpus/$target" "${limit[@]}" -rss_limit_mb=4096 -print_final_stats=1 \
    > "$scratch.log" 2>&1
  status=$?
  set -e
  seconds=$(echo "$(date +%s.%N) - $start" | bc)
  done_runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$scratch.log" | grep -oE '[0-9]+$' || echo "?")
  rate=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$scratch.log" | grep -oE '[0-9]+$' || echo "?")
  if [ $status -eq 0 ]; then result="no crash"; else result="CRASH (log: $scratch.log)"; fi
  printf '%-18s %12s %10.0f %8s %s\n' "$target" "$done_runs" "$seconds" "$rate" "$result"
  [ $status -eq 0 ] || { tail -40 "$scratch.log"; exit 1; }
  rm -rf "$scratch" "$scratch.log"
done
