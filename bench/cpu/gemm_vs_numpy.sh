#!/usr/bin/env bash
# Side-by-side on this machine: slope's float32 GEMM and 2:4 sparse GEMM against numpy's matmul (OpenBLAS),
# measured in the same run. Usage: bench/cpu/gemm_vs_numpy.sh [SIZE] [REPEATS]
set -euo pipefail
cd "$(dirname "$0")/../.."
size=${1:-1024}
repeats=${2:-20}
swift build -c release --product slope >/dev/null
out=$(mktemp -d)
./.build/release/slope bench gemm --size "$size" --repeats "$repeats" --warmup 3 --json "$out/slope.json"
python3 - "$size" "$repeats" "$out/slope.json" <<'PY'
import json, sys, time
import numpy as np
size, repeats, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(0)
a = rng.standard_normal((size, size), dtype=np.float32)
b = rng.standard_normal((size, size), dtype=np.float32)
for _ in range(3):
    a @ b
samples = []
for _ in range(repeats):
    t = time.perf_counter(); a @ b; samples.append(time.perf_counter() - t)
numpy_gflops = 2 * size**3 / float(np.median(samples)) / 1e9
slope = {r["measurement"]: r["effectiveGFLOPS"] for r in json.load(open(path))}
dense = slope["dense NN"]
sparse = next(v for k, v in slope.items() if k.startswith("sparse"))
print(f"\nnumpy {np.__version__} matmul {size}^3 float32: {numpy_gflops:.1f} GFLOP/s")
print(f"slope dense NN: {dense:.1f} GFLOP/s = {100 * dense / numpy_gflops:.0f}% of numpy")
print(f"slope 2:4 sparse X·Wᵀ: {sparse:.1f} dense-equivalent GFLOP/s = {sparse / slope['dense NT']:.2f}x our dense NT")
PY
