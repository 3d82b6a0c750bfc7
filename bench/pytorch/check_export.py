#!/usr/bin/env python3
"""Checks a `slope export` folder as a Hugging Face user would: AutoTokenizer and AutoModelForCausalLM from the folder
(plus PeftModel when it holds a PEFT adapter, `slope export --adapter peft`), then pipeline("text-generation"),
greedy; its text must equal what `slope generate --temperature 0 --no-merge` printed.

    slope export run/checkpoint.safetensors --out hf/ [--adapter peft]
    slope generate run/checkpoint.safetensors --prompt "The quick" --max-tokens 60 --temperature 0 --no-merge > expected.txt
    python3 bench/pytorch/check_export.py hf/ "The quick" expected.txt

Needs torch and transformers (and peft for an adapter).
"""
import os
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline


def main():
    folder, prompt, expected_path = sys.argv[1], sys.argv[2], sys.argv[3]
    expected = open(expected_path, encoding="utf-8").readline().rstrip("\n")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    kind = type(model).__name__
    if os.path.exists(os.path.join(folder, "adapter_config.json")):
        # transformers applies an adapter it finds beside the weights by itself (with peft installed).
        if not getattr(model, "_hf_peft_config_loaded", False):
            from peft import PeftModel
            model = PeftModel.from_pretrained(model, folder)
        kind += " + PEFT LoRA"
    model.eval()
    new_tokens = len(tokenizer(expected)["input_ids"]) - len(tokenizer(prompt)["input_ids"])
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer)
    text = generator(prompt, max_new_tokens=new_tokens, do_sample=False)[0]["generated_text"]
    print(f"{kind} from {folder}, tokenizer {type(tokenizer).__name__} ({len(tokenizer)} tokens)")
    print(f"  transformers: {text!r}")
    print(f"  slope:        {expected!r}")
    print("  MATCH" if text == expected else "  DIFFERENT")
    sys.exit(0 if text == expected else 1)


if __name__ == "__main__":
    main()
