#!/usr/bin/env python3
"""Regenerates the Hugging Face fixtures of slope's import tests (Tests/SLoPeTests/HuggingFaceImportTests.swift):
tiny randomly initialised GPT-2, OPT and LLaMA models saved by transformers' save_pretrained, and the float32
logits transformers computes for a few token sequences (logits.json beside each model).

    python3 -m venv /tmp/hf && /tmp/hf/bin/pip install torch transformers safetensors
    /tmp/hf/bin/python Tests/Fixtures/hf/make_fixtures.py

gpt2: GPT2LMHeadModel (Conv1D weights, fused q/k/v), float32. opt: OPTForCausalLM stored in bfloat16 (its logits
are those of the bf16 weights widened to float32). llama: LlamaForCausalLM with grouped-query attention and an
untied output layer, float32, saved in several shards with a model.safetensors.index.json. bert: BertForPreTraining
(exact GELU, pooler, next-sentence head), float32, with its masked-LM and next-sentence logits for a padded batch
(attention_mask) in outputs.json; bert-classifier (3 labels), bert-regression (1 label) and bert-qa: the fine-tuning
heads on the same kind of encoder, with their logits and loss for given labels. `make_fixtures.py bert` remakes
only the BERT ones.
"""
import json
import os

import torch
import sys

from transformers import (BertConfig, BertForPreTraining, BertForQuestionAnswering, BertForSequenceClassification, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, OPTConfig,
                          OPTForCausalLM)

HERE = os.path.dirname(os.path.abspath(__file__))
SEQUENCES = [[1, 5, 9, 2, 33, 60, 7, 7], [63, 0, 12, 40, 41, 3, 18, 25]]


def save(name, model, dtype=torch.float32, shard=None):
    folder = os.path.join(HERE, name)
    os.makedirs(folder, exist_ok=True)
    for old in os.listdir(folder):
        os.remove(os.path.join(folder, old))
    model = model.to(dtype)
    model.save_pretrained(folder, max_shard_size=shard) if shard else model.save_pretrained(folder)
    model = model.to(torch.float32).eval()
    with torch.no_grad():
        logits = model(torch.tensor(SEQUENCES)).logits
    with open(os.path.join(folder, "logits.json"), "w") as f:
        json.dump({"sequences": SEQUENCES, "vocabulary": logits.shape[-1],
                   "logits": [[round(v, 7) for v in row.flatten().tolist()] for row in logits]}, f)
    print(name, sorted(os.listdir(folder)))


def save_bert():
    torch.manual_seed(0)
    folder = os.path.join(HERE, "bert")
    os.makedirs(folder, exist_ok=True)
    for old in os.listdir(folder):
        os.remove(os.path.join(folder, old))
    model = BertForPreTraining(BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                          intermediate_size=48, max_position_embeddings=32, type_vocab_size=2, hidden_act="gelu"))
    # Non-zero biases and norms, so a mistake in any of them shows in the logits.
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.dim() == 1:
                parameter.add_(torch.randn_like(parameter) * 0.2)
    model.save_pretrained(folder)
    model.eval()
    tokens = [[2, 5, 9, 3, 33, 60, 7, 3], [2, 12, 40, 3, 18, 3, 0, 0]]
    types = [[0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1, 0, 0]]
    lengths = [8, 6]
    mask = [[1 if i < n else 0 for i in range(8)] for n in lengths]
    with torch.no_grad():
        out = model(input_ids=torch.tensor(tokens), token_type_ids=torch.tensor(types), attention_mask=torch.tensor(mask))
    with open(os.path.join(folder, "outputs.json"), "w") as f:
        json.dump({"tokens": tokens, "token_types": types, "lengths": lengths,
                   "prediction_logits": [[round(v, 7) for v in row.flatten().tolist()] for row in out.prediction_logits],
                   "seq_relationship_logits": [[round(v, 7) for v in row.tolist()] for row in out.seq_relationship_logits]}, f)
    print("bert", sorted(os.listdir(folder)))


def save_bert_heads():
    tokens = [[2, 5, 9, 3, 33, 60, 7, 3], [2, 12, 40, 3, 18, 3, 0, 0]]
    types = [[0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1, 0, 0]]
    mask = [[1] * 8, [1] * 6 + [0, 0]]
    config = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
                  max_position_embeddings=32, type_vocab_size=2, hidden_act="gelu")
    for name, model, labels in [
            ("bert-classifier", BertForSequenceClassification(BertConfig(num_labels=3, **config)), {"labels": torch.tensor([2, 0])}),
            ("bert-regression", BertForSequenceClassification(BertConfig(num_labels=1, **config)), {"labels": torch.tensor([0.7, -1.2])}),
            ("bert-qa", BertForQuestionAnswering(BertConfig(**config)),
             {"start_positions": torch.tensor([4, 1]), "end_positions": torch.tensor([6, 5])})]:
        torch.manual_seed(1)
        folder = os.path.join(HERE, name)
        os.makedirs(folder, exist_ok=True)
        for old in os.listdir(folder):
            os.remove(os.path.join(folder, old))
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(torch.randn_like(parameter) * (0.2 if parameter.dim() == 1 else 0.05))
        model.save_pretrained(folder)
        model.eval()
        with torch.no_grad():
            out = model(input_ids=torch.tensor(tokens), token_type_ids=torch.tensor(types), attention_mask=torch.tensor(mask), **labels)
        logits = [out.start_logits, out.end_logits] if name == "bert-qa" else [out.logits]
        with open(os.path.join(folder, "outputs.json"), "w") as f:
            json.dump({"tokens": tokens, "token_types": types, "lengths": [8, 6],
                       "labels": {k: v.tolist() for k, v in labels.items()},
                       "logits": [[round(v, 7) for v in t.flatten().tolist()] for t in logits], "loss": round(out.loss.item(), 7)}, f)
        print(name, sorted(os.listdir(folder)))


def main():
    if sys.argv[1:] == ["bert"]:
        save_bert()
        return save_bert_heads()
    torch.manual_seed(0)
    save("gpt2", GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=32, n_embd=32, n_layer=2, n_head=4,
                                            activation_function="gelu_new")))
    save("opt", OPTForCausalLM(OPTConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, ffn_dim=64, num_attention_heads=4,
                                         max_position_embeddings=32, word_embed_proj_dim=32, activation_function="relu",
                                         do_layer_norm_before=True)), dtype=torch.bfloat16)
    save("llama", LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                               rms_norm_eps=1e-5, tie_word_embeddings=False)), shard="20KB")
    save_bert()
    save_bert_heads()


if __name__ == "__main__":
    main()
