#!/usr/bin/env python3
"""Side-by-side reference for `slope bench generate --device cuda`: transformers' generate on the same model shape.

A randomly initialised OPTForCausalLM of the named shape in bf16 (the speed does not depend on the weights), random
prompts of --prompt-tokens, greedy decoding of exactly --new-tokens per sequence, at each batch size. Prefill is
timed as one forward pass over the prompts with a KV cache (what generate runs first); decode is the rest of a
generate call. Medians over --repeats runs after one warm-up, wall clock around synchronised calls.

    python3 bench/pytorch/bench_generate.py [--model opt-1.3b] [--batches 1,8,32] [--prompt-tokens 512] [--new-tokens 128]
"""
import argparse
import json
import statistics
import time

import torch
from transformers import OPTConfig, OPTForCausalLM

SHAPES = {  # hidden, layers, heads, intermediate (OPT's published configurations)
    "opt-125m": (768, 12, 12, 3072), "opt-350m": (1024, 24, 16, 4096), "opt-1.3b": (2048, 24, 32, 8192),
    "opt-2.7b": (2560, 32, 32, 10240), "opt-6.7b": (4096, 32, 32, 16384),
}


def timed(fn):
    torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start, result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="opt-1.3b", choices=sorted(SHAPES))
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    hidden, layers, heads, ffn = SHAPES[args.model]
    config = OPTConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, ffn_dim=ffn,
                       word_embed_proj_dim=hidden, max_position_embeddings=2048, vocab_size=50272)
    torch.manual_seed(0)
    model = OPTForCausalLM(config).to(device="cuda", dtype=torch.bfloat16).eval()
    import transformers
    print(f"transformers {transformers.__version__}, PyTorch {torch.__version__}, {torch.cuda.get_device_name()}, {args.model} bf16, "
          f"{args.prompt_tokens} prompt + {args.new_tokens} new tokens, greedy; median of {args.repeats} runs after one warm-up")
    print(f"{'batch':>5}  {'prefill tok/s':>13}  {'decode tok/s':>12}  {'ms/step':>8}")
    results = []
    for batch in (int(b) for b in args.batches.split(",")):
        prompts = torch.randint(0, config.vocab_size, (batch, args.prompt_tokens), device="cuda")
        mask = torch.ones_like(prompts)
        prefills, totals = [], []
        with torch.inference_mode():
            for run in range(args.repeats + 1):
                prefill, _ = timed(lambda: model(input_ids=prompts, attention_mask=mask, use_cache=True))
                total, out = timed(lambda: model.generate(
                    input_ids=prompts, attention_mask=mask, do_sample=False, max_new_tokens=args.new_tokens,
                    min_new_tokens=args.new_tokens, pad_token_id=1))
                assert out.shape[1] == args.prompt_tokens + args.new_tokens
                if run > 0:
                    prefills.append(prefill)
                    totals.append(total)
        prefill, total = statistics.median(prefills), statistics.median(totals)
        decode = max(total - prefill, 1e-9)
        row = {"batch": batch, "promptTokens": args.prompt_tokens, "newTokens": args.new_tokens,
               "prefillTokensPerSecond": batch * args.prompt_tokens / prefill,
               "decodeTokensPerSecond": batch * (args.new_tokens - 1) / decode,
               "decodeMillisecondsPerStep": 1000 * decode / (args.new_tokens - 1)}
        results.append(row)
        print(f"{batch:>5}  {row['prefillTokensPerSecond']:>13.0f}  {row['decodeTokensPerSecond']:>12.1f}  {row['decodeMillisecondsPerStep']:>8.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
