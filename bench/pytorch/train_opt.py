#!/usr/bin/env python3
"""Side-by-side reference for `slope pretrain` throughput: PyTorch + transformers' OPT or LLaMA trained from scratch.

Builds OPTForCausalLM at an OPT shape (default opt-1.3b: 24 layers, d = 2048, ffn 8192, 32 heads, vocab 50272) or
LlamaForCausalLM at slope's LLaMA shapes (llama-1b, llama-3b: grouped-query attention, SwiGLU, tied embeddings,
vocab 128256), in bf16 with SDPA attention and torch.optim.AdamW, and times whole training steps (forward, backward, optimizer)
on random tokens: median step time over --steps after --warmup steps, tokens/s = batch·sequence / median, MFU
with PaLM's 6N + 12·L·d·T FLOPs per token against the GPU's dense bf16 peak, and peak allocated memory.

    python3 bench/pytorch/train_opt.py [--model opt-1.3b] [--batch 4] [--sequence 2048] [--steps 10] [--gradient-checkpointing]
                                       [--json out.json] [--profile 30]

--profile N prints the N CUDA kernels that took the most GPU time over one more step (torch.profiler), to set
beside `SLOPE_PROFILE=1 slope pretrain …`'s table.
"""
import argparse
import json
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM, OPTConfig, OPTForCausalLM

SHAPES = {  # layers, hidden, heads
    "opt-125m": (12, 768, 12), "opt-1.3b": (24, 2048, 32), "opt-2.7b": (32, 2560, 32), "opt-6.7b": (32, 4096, 32),
}
LLAMA_SHAPES = {  # layers, hidden, heads, key/value heads, ffn — slope's ModelConfiguration.named
    "llama-1b": (16, 2048, 32, 8, 8192), "llama-3b": (28, 3072, 24, 8, 8192),
}
PEAKS = {"H200": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "A100": 312e12}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="opt-1.3b", choices=sorted(SHAPES) + sorted(LLAMA_SHAPES))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--sequence", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations (slope's --recompute-activations)")
    parser.add_argument("--json")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print the N kernels with the most GPU time in one step")
    args = parser.parse_args()

    if args.model in LLAMA_SHAPES:
        layers, hidden, heads, kv_heads, ffn = LLAMA_SHAPES[args.model]
        config = LlamaConfig(
            vocab_size=128256, hidden_size=hidden, intermediate_size=ffn, num_hidden_layers=layers, num_attention_heads=heads,
            num_key_value_heads=kv_heads, max_position_embeddings=8192, rope_theta=500000.0, tie_word_embeddings=True,
            attn_implementation="sdpa")
        torch.manual_seed(0)
        model = LlamaForCausalLM(config).to(device="cuda", dtype=torch.bfloat16)
        positions = 0
    else:
        layers, hidden, heads = SHAPES[args.model]
        config = OPTConfig(
            vocab_size=50272, hidden_size=hidden, num_hidden_layers=layers, ffn_dim=4 * hidden, num_attention_heads=heads,
            max_position_embeddings=2048, word_embed_proj_dim=hidden, do_layer_norm_before=True, dropout=0.0,
            attention_dropout=0.0, activation_dropout=0.0, activation_function="relu", attn_implementation="sdpa")
        torch.manual_seed(0)
        model = OPTForCausalLM(config).to(device="cuda", dtype=torch.bfloat16)
        positions = (config.max_position_embeddings + 2) * hidden
    model.train()
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)
    parameters = sum(p.numel() for p in model.parameters())
    flops_per_token = 6 * (parameters - positions) + 12 * layers * hidden * args.sequence

    def step():
        ids = torch.randint(0, config.vocab_size, (args.batch, args.sequence), device="cuda")
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    torch.cuda.reset_peak_memory_stats()
    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    tokens = args.batch * args.sequence
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAKS.items() if k in name), None)
    result = {
        "framework": f"torch {torch.__version__}", "device": name, "model": args.model, "parameters": parameters,
        "batch": args.batch, "sequence": args.sequence, "median_step_ms": median * 1e3, "tokens_per_second": tokens / median,
        "mfu": tokens / median * flops_per_token / peak if peak else None,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30, "gradient_checkpointing": args.gradient_checkpointing,
    }
    print(f"{args.model} PyTorch bf16 sdpa AdamW: {result['tokens_per_second'] / 1e3:.1f}k tok/s, "
          f"MFU {100 * (result['mfu'] or 0):.1f}%, peak {result['peak_memory_gib']:.1f} GiB ({name})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            step()
            torch.cuda.synchronize()
        averages = prof.key_averages()
        try:
            print(averages.table(sort_by="self_device_time_total", row_limit=args.profile, max_name_column_width=90))
        except (AttributeError, KeyError):  # torch before 2.4 names it for CUDA
            print(averages.table(sort_by="self_cuda_time_total", row_limit=args.profile, max_name_column_width=90))


if __name__ == "__main__":
    main()
