#!/usr/bin/env python3
"""Side-by-side reference for `slope bench attention --device cuda`: PyTorch's scaled_dot_product_attention.

Times causal attention forward and backward in bf16 at the same BATCHxTOKENSxHEADSxHEADDIM shapes, with CUDA
events, warm-up and medians over --repeats runs on random inputs, once per SDPA backend that accepts the shape
(FlashAttention-2, memory-efficient, cuDNN). TFLOP/s counts as slope does (and FlashAttention's benchmarks):
4·B·H·T²·D for the forward, 2.5× that for the backward, halved when causal.

    python3 bench/pytorch/bench_attention.py [--shapes 4x2048x32x64,...] [--repeats 50] [--json out.json]
"""
import argparse
import json

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from cuda_timing import median_ms


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shapes", default="4x2048x32x64,2x4096x16x128")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--full", action="store_true", help="every query sees every key (default: causal)")
    parser.add_argument("--json")
    args = parser.parse_args()
    causal = not args.full
    torch.manual_seed(0)
    print(f"PyTorch {torch.__version__}, {torch.cuda.get_device_name()}, bf16, {'full' if args.full else 'causal'}, "
          f"median of {args.repeats} runs after {args.warmup} warm-up (CUDA events)")
    backends = [("flash", SDPBackend.FLASH_ATTENTION), ("efficient", SDPBackend.EFFICIENT_ATTENTION),
                ("cudnn", SDPBackend.CUDNN_ATTENTION)]
    rows, results = [], []
    for text in args.shapes.split(","):
        b, t, h, d = (int(x) for x in text.split("x"))
        # [B, H, T, D] views of [B, T, H, D] tensors: the layout slope's [B·T, H·D] activations have.
        q, k, v, g = (torch.randn(b, t, h, d, device="cuda", dtype=torch.bfloat16).transpose(1, 2) for _ in range(4))
        for tensor in (q, k, v):
            tensor.requires_grad_(True)
        flops = 4 * b * h * d * t * t * (0.5 if causal else 1)
        for name, backend in backends:
            try:
                with sdpa_kernel([backend]):
                    out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                    forward = median_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal), args.repeats, args.warmup)
                    both = median_ms(lambda: torch.autograd.grad(F.scaled_dot_product_attention(q, k, v, is_causal=causal),
                                                                 (q, k, v), g), args.repeats, args.warmup)
                del out
            except RuntimeError as error:
                rows.append((text, name, f"unavailable: {str(error).splitlines()[0][:60]}", "", "", ""))
                continue
            backward = both - forward
            results.append(dict(shape=text, backend=name, forwardMilliseconds=forward, backwardMilliseconds=backward,
                                forwardTFLOPS=flops / forward / 1e9, backwardTFLOPS=2.5 * flops / backward / 1e9))
            rows.append((text, name, f"{forward:.3f}", f"{flops / forward / 1e9:.1f}", f"{backward:.3f}",
                         f"{2.5 * flops / backward / 1e9:.1f}"))
    header = ("B×T×H×D", "SDPA backend", "forward ms", "TFLOP/s", "backward ms", "TFLOP/s")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for r in [header, tuple("-" * w for w in widths)] + rows:
        print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
