#!/usr/bin/env python3
"""Side-by-side reference for `slope bench linear --device cuda`: PyTorch dense vs PyTorch 2:4 semi-structured.

Times Y = X·Wᵀ (+ b) in bf16 for the same TOKENSxINxOUT shapes slope uses, with CUDA events, warm-up and
medians over --repeats runs on random inputs; ratios are dense / sparse from the same run. Semi-structured
sparsity is measured with both of PyTorch's kernels (cuSPARSELt and CUTLASS) where available.

    python3 bench/pytorch/bench_linear.py [--shapes 8192x4096x16384,...] [--repeats 50] [--json out.json]
"""
import argparse
import json

import torch
import torch.nn.functional as F

from cuda_timing import median_ms


def opt_shapes():
    return [(t, d_in, d_out) for t in (8192, 16384) for d in (2048, 2560, 4096, 5120, 7168, 9216)
            for d_in, d_out in ((d, d), (d, 4 * d), (4 * d, d))]


def prune_2_4(w):
    """Keeps the 2 largest |w| of every 4 consecutive input features (the same mask slope uses)."""
    groups = w.reshape(w.shape[0], -1, 4)
    keep = groups.abs().topk(2, dim=-1).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, keep, True)
    return (groups * mask).reshape_as(w)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shapes", help="comma-separated TOKENSxINxOUT (default: OPT-1.3B…66B linears)")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--json")
    args = parser.parse_args()
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")] if args.shapes else opt_shapes()
    from torch.sparse import to_sparse_semi_structured, SparseSemiStructuredTensor

    torch.manual_seed(0)
    rows = []
    print(f"PyTorch {torch.__version__}, {torch.cuda.get_device_name()}, bf16, median of {args.repeats} runs (CUDA events)")
    for tokens, d_in, d_out in shapes:
        x = torch.randn(tokens, d_in, device="cuda", dtype=torch.bfloat16)
        w = prune_2_4(torch.randn(d_out, d_in, device="cuda", dtype=torch.bfloat16))
        b = torch.randn(d_out, device="cuda", dtype=torch.bfloat16)
        dense = median_ms(lambda: F.linear(x, w, b), args.repeats, args.warmup)
        row = {"tokens": tokens, "in": d_in, "out": d_out, "dense_ms": dense}
        for backend in ("cusparselt", "cutlass"):
            try:
                SparseSemiStructuredTensor._FORCE_CUTLASS = backend == "cutlass"
                ws = to_sparse_semi_structured(w)
                row[f"{backend}_ms"] = median_ms(lambda: F.linear(x, ws, b), args.repeats, args.warmup)
            except Exception as error:  # a backend missing from this build is reported, not fatal
                row[f"{backend}_error"] = str(error).splitlines()[0]
        rows.append(row)
        ratios = "  ".join(f"{k[:-3]} {dense / v:.2f}x" for k, v in row.items() if k.endswith("_ms") and k != "dense_ms")
        print(f"{tokens:>6}x{d_in:>5}x{d_out:>5}  dense {dense:8.3f} ms  {ratios}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
