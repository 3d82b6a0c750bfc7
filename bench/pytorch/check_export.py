#!/usr/bin/env python3
"""Checks a `slope export` folder with Hugging Face transformers: loads it with AutoModelForCausalLM and
compares its greedy continuation of a prompt with the one `slope generate --temperature 0 --no-merge` printed.
For models trained with slope's byte tokenizer (token = UTF-8 byte, 256 = end of text).

    slope export run/checkpoint.safetensors --out hf/
    slope generate run/checkpoint.safetensors --prompt "The quick" --max-tokens 60 --temperature 0 --no-merge > expected.txt
    python3 bench/pytorch/check_export.py hf/ "The quick" expected.txt
"""
import sys

import torch
from transformers import AutoModelForCausalLM


def main():
    folder, prompt, expected_path = sys.argv[1], sys.argv[2], sys.argv[3]
    expected = open(expected_path, encoding="utf-8").readline().rstrip("\n")
    model = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32)
    model.eval()
    prompt_ids = list(prompt.encode("utf-8"))
    new_tokens = len(expected.encode("utf-8")) - len(prompt_ids)
    with torch.no_grad():
        output = model.generate(torch.tensor([prompt_ids]), max_new_tokens=new_tokens, do_sample=False,
                                pad_token_id=256, eos_token_id=256)
    text = bytes(t for t in output[0].tolist() if t < 256).decode("utf-8", errors="replace")
    print(f"{type(model).__name__} from {folder}")
    print(f"  transformers: {text!r}")
    print(f"  slope:        {expected!r}")
    print("  MATCH" if text == expected else "  DIFFERENT")
    sys.exit(0 if text == expected else 1)


if __name__ == "__main__":
    main()
