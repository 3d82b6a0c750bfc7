#!/usr/bin/env python3
"""PyTorch reference for slope's training recipe (issue 22): slope's GPT model, data pipeline and SLoPe method written
plainly in PyTorch, so that validation losses can be compared side by side (bench/device/accuracy.sh).

What is mirrored from slope (Sources/SLoPe): the byte tokenizer (UTF-8 bytes, end-of-text 256 after each file; the
files of a folder are its *.txt in sorted order), the last 5% of the tokens held out for validation; the GPT/OPT
block (pre-LayerNorm, learned positions, biases, GELU with the tanh approximation, tied embeddings), its
initialisation (N(0, 0.02), output projections N(0, 0.02/sqrt(2·layers)), positions N(0, 0.01), zero biases);
AdamW with linear warm-up (5% of the steps) and cosine decay to lr/10, global gradient clipping at 1; the data
order itself (slope's SplitMix64 shuffles and random offsets, ported, so both runs train on the same batches);
validation on the first --eval-batches batches of the validation split, the same windows slope scores.

SLoPe (--slope): every block linear is pruned 2:4 by magnitude along its input features at the start (static Mr);
the backward pass multiplies by the double-pruned transpose (Mc: the pruned weight pruned again 2:4 along its
output features, re-selected every --mask-change-frequency steps); the weight gradient is kept only under Mr;
AdamW updates the kept values (pruned ones stay zero). Lazy low-rank adapters for the last --adapter-fraction of
the steps: y += (x·L)·R / r with L uniform(±1/sqrt(din)), R zero.

Not mirrored: the initial weights and adapters (PyTorch draws its own), so the two runs are two samples of one recipe
— unless --init-from names a slope checkpoint of the same shape (for example one written by `slope pretrain --steps 1
--lr 1e-30`, whose weights are its initial ones), whose dense weights are then the reference's initial weights.

    python3 bench/pytorch/train_reference.py --data FILE_OR_FOLDER [--layers 6 --hidden 384 --heads 6 --sequence 256]
        [--batch 64 --steps 1000 --lr 1e-3] [--slope] [--adapter-fraction 0.01] [--sampling windows|random]
        [--weight-decay-on all|matrices] [--beta1 0.9 --beta2 0.95] [--eval-interval 100 --eval-batches 32]
        [--device cuda|cpu] [--precision float32|bfloat16|mixed] [--init-from slope-checkpoint.safetensors] [--json out.json]
"""
import argparse
import json
import math
import os
import time

import torch
import torch.nn.functional as F

END_OF_TEXT = 256


def text_files(path):
    """The file itself, or every .txt under the folder in sorted order (slope's ShardBuilder.textFiles)."""
    if not os.path.isdir(path):
        return [path]
    found = []
    for root, _, names in os.walk(path):
        found += [os.path.relpath(os.path.join(root, n), path) for n in names if n.endswith(".txt")]
    return [os.path.join(path, relative) for relative in sorted(found)]


def load_tokens(path, validation_fraction):
    tokens = []
    for file in text_files(path):
        with open(file, "rb") as f:
            tokens += list(f.read()) + [END_OF_TEXT]
    held = math.floor(len(tokens) * validation_fraction + 0.5)  # Swift's rounded(): halves away from zero
    data = torch.tensor(tokens, dtype=torch.long)
    return data[: len(tokens) - held], data[len(tokens) - held:]


MASK64 = (1 << 64) - 1


class SplitMix64:
    """slope's CorpusGenerator (SplitMix64, bounded by a modulo), so both runs see the same batches in the same order."""

    def __init__(self, seed):
        self.state = seed & MASK64

    def next(self, bound):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return (z ^ (z >> 31)) % bound


class Batches:
    """slope's TokenLoader, number for number: windows of sequence + 1 tokens, each once per epoch in an order
    shuffled by seed and epoch, or a random offset per sequence that depends on seed and the sequence's number."""

    def __init__(self, tokens, batch, sequence, seed, sampling):
        self.tokens, self.batch, self.sequence, self.seed, self.sampling = tokens, batch, sequence, seed, sampling
        self.windows = len(tokens) // (sequence + 1)
        self.epoch, self.at = 0, 0
        self.order = self.shuffled(0) if sampling == "windows" else []

    def shuffled(self, epoch):
        generator = SplitMix64(self.seed + epoch * 0x9E3779B9)
        order = list(range(self.windows))
        for i in range(self.windows - 1, 0, -1):
            j = generator.next(i + 1)
            order[i], order[j] = order[j], order[i]
        return order

    def next(self):
        starts = []
        for _ in range(self.batch):
            if self.sampling == "random":
                state = self.seed ^ (((self.at + 1) * 0xD1B54A32D192ED03) & MASK64)
                starts.append(SplitMix64(state).next(len(self.tokens) - self.sequence))
            else:
                if self.at == self.windows:
                    self.epoch, self.at = self.epoch + 1, 0
                    self.order = self.shuffled(self.epoch)
                starts.append(self.order[self.at] * (self.sequence + 1))
            self.at += 1
        rows = torch.stack([self.tokens[s: s + self.sequence + 1] for s in starts])
        return rows[:, :-1], rows[:, 1:]


def prune_2_4(weight, dim):
    """The mask keeping the 2 largest |w| in every 4 consecutive elements along `dim` (1 = kept)."""
    moved = weight.transpose(dim, -1) if dim != -1 else weight
    groups = moved.abs().reshape(*moved.shape[:-1], -1, 4)
    keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, groups.topk(2, dim=-1).indices, True)
    keep = keep.reshape(moved.shape)
    return keep.transpose(dim, -1) if dim != -1 else keep


class SparseMatmul(torch.autograd.Function):
    """y = x·(W⊙Mr)ᵀ; dx = dy·(W⊙Mc) (the double-pruned transpose); dW = (dyᵀ·x)⊙Mr."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")
    def forward(ctx, x, weight, row_mask, column_mask):
        ctx.save_for_backward(x, weight, row_mask, column_mask)
        return x @ (weight * row_mask).t()

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, dy):
        x, weight, row_mask, column_mask = ctx.saved_tensors
        dx = dy @ (weight * column_mask)
        dw = (dy.reshape(-1, dy.shape[-1]).t() @ x.reshape(-1, x.shape[-1])) * row_mask
        return dx, dw, None, None


class Linear(torch.nn.Module):
    def __init__(self, din, dout, std):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(dout, din) * std)
        self.bias = torch.nn.Parameter(torch.zeros(dout))
        self.row_mask = self.column_mask = None
        self.down = self.up = None

    def make_sparse(self):
        with torch.no_grad():
            self.row_mask = prune_2_4(self.weight, dim=1).to(self.weight.dtype)
            self.weight.mul_(self.row_mask)
        self.reselect_column_mask()

    def reselect_column_mask(self):
        with torch.no_grad():
            self.column_mask = prune_2_4(self.weight * self.row_mask, dim=0).to(self.weight.dtype) * self.row_mask

    def attach_adapter(self, rank):
        din, dout = self.weight.shape[1], self.weight.shape[0]
        rank = min(rank, din, dout)
        bound = 1 / math.sqrt(din)
        self.down = torch.nn.Parameter((torch.rand(din, rank, device=self.weight.device) * 2 - 1).mul_(bound).to(self.weight.dtype))
        self.up = torch.nn.Parameter(torch.zeros(rank, dout, device=self.weight.device, dtype=self.weight.dtype))
        return [self.down, self.up]

    def forward(self, x):
        y = (SparseMatmul.apply(x, self.weight, self.row_mask, self.column_mask) if self.row_mask is not None
             else x @ self.weight.t()) + self.bias
        if self.down is not None:
            y = y + (x @ self.down) @ self.up / self.down.shape[1]
        return y


class Block(torch.nn.Module):
    def __init__(self, hidden, heads, intermediate, residual_std):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = torch.nn.LayerNorm(hidden, eps=1e-5), torch.nn.LayerNorm(hidden, eps=1e-5)
        self.q, self.k, self.v = (Linear(hidden, hidden, 0.02) for _ in range(3))
        self.o = Linear(hidden, hidden, residual_std)
        self.fc1, self.fc2 = Linear(hidden, intermediate, 0.02), Linear(intermediate, hidden, residual_std)

    def linears(self):
        return [self.q, self.k, self.v, self.o, self.fc1, self.fc2]

    def forward(self, x):
        b, t, c = x.shape
        h = self.norm1(x)
        q, k, v = (m(h).view(b, t, self.heads, c // self.heads).transpose(1, 2) for m in (self.q, self.k, self.v))
        attention = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, c)
        x = x + self.o(attention)
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x)), approximate="tanh"))


class GPT(torch.nn.Module):
    def __init__(self, vocab, context, layers, hidden, heads, intermediate):
        super().__init__()
        self.tokens = torch.nn.Parameter(torch.randn(vocab, hidden) * 0.02)
        self.positions = torch.nn.Parameter(torch.randn(context, hidden) * 0.01)
        residual_std = 0.02 / math.sqrt(2 * layers)
        self.blocks = torch.nn.ModuleList(Block(hidden, heads, intermediate, residual_std) for _ in range(layers))
        self.norm = torch.nn.LayerNorm(hidden, eps=1e-5)

    def forward(self, ids, targets):
        x = self.tokens[ids] + self.positions[: ids.shape[1]]
        for block in self.blocks:
            x = block(x)
        logits = self.norm(x) @ self.tokens.t()  # tied embeddings
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))


def load_slope_weights(model, path):
    """The dense weights of a slope checkpoint (HF OPT names; positions with OPT's offset of 2) into `model`."""
    from safetensors.torch import load_file
    tensors = load_file(path)
    prefix = "model.decoder."
    with torch.no_grad():
        def put(target, name):
            source = tensors[prefix + name]
            if source.shape != target.shape:
                raise SystemExit(f"{path}: {name} is {tuple(source.shape)}, the reference's is {tuple(target.shape)}")
            target.copy_(source)
        put(model.tokens, "embed_tokens.weight")
        positions = tensors[prefix + "embed_positions.weight"]
        offset = positions.shape[0] - model.positions.shape[0]
        model.positions.copy_(positions[offset:])
        for i, block in enumerate(model.blocks):
            layer = f"layers.{i}."
            for norm, name in ((block.norm1, "self_attn_layer_norm"), (block.norm2, "final_layer_norm")):
                put(norm.weight, layer + name + ".weight")
                put(norm.bias, layer + name + ".bias")
            for linear, name in zip(block.linears(), ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "fc1", "fc2")):
                put(linear.weight, layer + name + ".weight")
                put(linear.bias, layer + name + ".bias")
        put(model.norm.weight, "final_layer_norm.weight")
        put(model.norm.bias, "final_layer_norm.bias")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--validation-fraction", type=float, default=0.05)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--hidden", type=int, default=384)
    parser.add_argument("--heads", type=int, default=6)
    parser.add_argument("--intermediate", type=int, help="default 4 × hidden")
    parser.add_argument("--sequence", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--min-lr", type=float, help="default lr / 10")
    parser.add_argument("--warmup", type=int, help="default 5% of the steps")
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--weight-decay-on", choices=["all", "matrices"], default="all")
    parser.add_argument("--beta1", type=float, default=0.9)
    parser.add_argument("--beta2", type=float, default=0.95)
    parser.add_argument("--eps", type=float, default=1e-8)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--sampling", choices=["windows", "random"], default="random")
    parser.add_argument("--slope", action="store_true", help="2:4 SLoPe on every block linear")
    parser.add_argument("--mask-change-frequency", type=int, default=100)
    parser.add_argument("--adapter-fraction", type=float, default=0.0)
    parser.add_argument("--adapter-rank", type=int, default=16)
    parser.add_argument("--eval-interval", type=int, default=100)
    parser.add_argument("--eval-batches", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=["float32", "bfloat16", "mixed"], default=None,
                        help="float32; bfloat16 weights and moments (pure bf16); mixed: float32 weights with bf16 autocast "
                             "(nanoGPT's way; the default on CUDA, float32 on the CPU)")
    parser.add_argument("--init-from", help="a slope checkpoint (OPT-style names) whose weights start the model")
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    precision = args.precision or ("mixed" if args.device == "cuda" else "float32")
    dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
    autocast = torch.autocast(device_type=args.device.split(":")[0], dtype=torch.bfloat16, enabled=precision == "mixed")
    train, validation = load_tokens(args.data, args.validation_fraction)
    model = GPT(END_OF_TEXT + 1, args.sequence, args.layers, args.hidden, args.heads, args.intermediate or 4 * args.hidden)
    if args.init_from:
        load_slope_weights(model, args.init_from)
    linears = [m for block in model.blocks for m in block.linears()]
    if args.slope:
        for m in linears:
            m.make_sparse()
    model.to(device=args.device, dtype=dtype)
    for m in linears:
        if m.row_mask is not None:
            m.row_mask, m.column_mask = m.row_mask.to(args.device, dtype), m.column_mask.to(args.device, dtype)

    def groups(parameters):
        if args.weight_decay_on == "all":
            return [{"params": parameters, "weight_decay": args.weight_decay}]
        return [{"params": [p for p in parameters if p.dim() >= 2], "weight_decay": args.weight_decay},
                {"params": [p for p in parameters if p.dim() < 2], "weight_decay": 0.0}]

    optimizer = torch.optim.AdamW(groups(list(model.parameters())), lr=args.lr, betas=(args.beta1, args.beta2), eps=args.eps)
    warmup = args.warmup if args.warmup is not None else max(1, args.steps // 20)
    minimum = args.min_lr if args.min_lr is not None else args.lr / 10

    def learning_rate(step):  # slope's LearningRateSchedule, cosine
        if step <= warmup:
            return args.lr * step / max(warmup, 1)
        progress = min(1.0, (step - warmup) / max(args.steps - warmup, 1))
        return minimum + (args.lr - minimum) * 0.5 * (1 + math.cos(math.pi * progress))

    batches = Batches(train, args.batch, args.sequence, args.seed, args.sampling)
    # slope's TrainingOptions.adapterSteps: ceil(steps · fraction), at least 1 (SLoPe runs only).
    adapter_steps = min(args.steps, max(1, math.ceil(args.steps * args.adapter_fraction))) if args.slope and args.adapter_fraction > 0 else 0
    adapter_start = args.steps - adapter_steps + 1

    def validation_loss():
        model.eval()
        loader = Batches(validation, args.batch, args.sequence, 0, "windows")
        count = max(1, min(args.eval_batches, loader.windows // args.batch))
        total = 0.0
        with torch.no_grad():
            for _ in range(count):
                ids, targets = loader.next()
                with autocast:
                    total += model(ids.to(args.device), targets.to(args.device)).item()
        model.train()
        return total / count

    history, started = [], time.time()
    for step in range(1, args.steps + 1):
        if step == adapter_start:
            adapters = [p for m in linears for p in m.attach_adapter(args.adapter_rank)]
            for group in groups(adapters):
                optimizer.add_param_group({**group, "lr": args.lr, "betas": (args.beta1, args.beta2), "eps": args.eps})
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step)
        ids, targets = batches.next()
        with autocast:
            loss = model(ids.to(args.device), targets.to(args.device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        optimizer.step()
        if args.slope and args.mask_change_frequency > 0 and step % args.mask_change_frequency == 0:
            for m in linears:
                m.reselect_column_mask()
        if step % args.eval_interval == 0 or step == args.steps:
            record = {"step": step, "loss": loss.item(), "val_loss": validation_loss(), "seconds": time.time() - started}
            history.append(record)
            print(f"step {step}/{args.steps}  loss {record['loss']:.4f}  validation {record['val_loss']:.4f}", flush=True)
    best = min(history, key=lambda r: r["val_loss"])
    result = {"framework": f"torch {torch.__version__}", "device": args.device, "variant": "slope" if args.slope else "dense",
              "adapter_fraction": args.adapter_fraction, "precision": precision, "final_val_loss": history[-1]["val_loss"], "best_val_loss": best["val_loss"],
              "best_step": best["step"], "history": history, "arguments": vars(args)}
    print(f"final validation {result['final_val_loss']:.4f}, best {result['best_val_loss']:.4f} at step {result['best_step']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
