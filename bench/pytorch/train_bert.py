#!/usr/bin/env python3
"""Side-by-side reference for `slope pretrain --model bert-large` on the device (bench/device/bert.sh): transformers'
BertForPreTraining trained as NVIDIA's recipe does, timed the same way.

A randomly initialised BertForPreTraining of the named shape (vocabulary 30522, dropout 0.1, sdpa attention) in
bf16 weights, random token ids in full sequences of --sequence-length, 15% of positions predicted (at most
--max-predictions per sequence, as slope's pairs), random next-sentence labels; fused AdamW (torch has no LAMB; the
update is a small part of a step). Tokens/s over the steps after --warmup, peak memory from the allocator.

    python3 bench/pytorch/train_bert.py [--model bert-large] [--batch-size 32] [--sequence-length 128] [--steps 30]
        [--profile]   # GPU time by op over the last 5 steps (profiled, so left out of the tokens/s)
"""
import argparse
import json
import time

import torch
from transformers import BertConfig, BertForPreTraining

SHAPES = {"bert-base": (768, 12, 12, 3072), "bert-large": (1024, 24, 16, 4096)}  # hidden, layers, heads, intermediate


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="bert-large", choices=sorted(SHAPES))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--max-predictions", type=int)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json")
    parser.add_argument("--profile", action="store_true", help="print GPU time by op over the last 5 steps (torch.profiler)")
    args = parser.parse_args()
    if args.profile and args.steps < 6:
        parser.error("--profile takes the last 5 steps: give --steps 6 or more")
    hidden, layers, heads, intermediate = SHAPES[args.model]
    config = BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=intermediate, max_position_embeddings=512, attn_implementation="sdpa")
    torch.manual_seed(0)
    model = BertForPreTraining(config).to("cuda", dtype=torch.bfloat16)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, fused=True)
    batch, length = args.batch_size, args.sequence_length
    predictions = args.max_predictions or max(1, round(length * 0.15625))
    tokens = torch.randint(5, 30522, (batch, length), device="cuda")
    types = torch.zeros_like(tokens)
    types[:, length // 2:] = 1
    labels = torch.full_like(tokens, -100)
    for row in range(batch):
        positions = torch.randperm(length - 2, device="cuda")[:min(predictions, round(0.15 * length))] + 1
        labels[row, positions] = tokens[row, positions]
    next_sentence = torch.randint(0, 2, (batch,), device="cuda")
    times = []
    profiler = None
    profiled = args.warmup + args.steps - 5 if args.profile else args.warmup + args.steps  # the first profiled step
    for step in range(args.warmup + args.steps):
        if step == profiled:
            profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA])
            profiler.__enter__()
        torch.cuda.synchronize()
        start = time.perf_counter()
        out = model(input_ids=tokens, token_type_ids=types, labels=labels, next_sentence_label=next_sentence)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if args.warmup <= step < profiled:  # (profiled steps run slower: not timed)
            times.append(time.perf_counter() - start)
    if profiler is not None:
        profiler.__exit__(None, None, None)
        events = profiler.key_averages()
        def gpu(event):  # (renamed from cuda to device in newer torch)
            return getattr(event, "self_device_time_total", None) or getattr(event, "self_cuda_time_total", 0)
        total = sum(gpu(event) for event in events)
        print(f"GPU time by op over 5 steps (torch.profiler): {total / 5e3:.2f} ms a step")
        for event in sorted(events, key=gpu, reverse=True)[:30]:
            print(f"  {gpu(event) / 5e3:8.3f} ms a step  {event.count // 5:6d} calls  {event.key[:90]}")
    rate = batch * length * len(times) / sum(times)
    peak = torch.cuda.max_memory_allocated() / 2**30
    print(f"transformers BertForPreTraining {args.model} bf16: batch {batch} x {length}: {rate:,.0f} tokens/s, peak {peak:.1f} GiB "
          f"({torch.cuda.get_device_name()})")
    if args.json:
        json.dump({"model": args.model, "batch": batch, "sequence": length, "tokens_per_second": rate, "peak_gib": peak,
                   "device": torch.cuda.get_device_name()}, open(args.json, "w"))


if __name__ == "__main__":
    main()
