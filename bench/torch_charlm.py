"""PyTorch references for bench.charlm's `cpu-small` presets, measured side by side on one machine.

    python bench/torch_charlm.py --family lstm --data ../shared/data/tinyshakespeare.txt
    python bench/torch_charlm.py --family gpt --data ../shared/data/tinyshakespeare.txt

`lstm`: a plain `nn.LSTM` of the `rnn` preset's size, batches and schedule (Adam 2e-3, clip 1).
`gpt`: nanoGPT's model and training recipe at its CPU configuration (pre-LN blocks without
biases, fused causal attention, GELU MLP, output layer tied to the token embedding; AdamW
betas 0.9/0.99, weight decay 0.1 on matrices only, 100 warm-up steps then cosine 1e-3 -> 1e-4,
clip 1), written here from its published description so the comparison needs no extra checkout.
It runs in its own environment with PyTorch (textflow never imports torch), e.g.
`make bench-torch`. Prints one JSON line per run in bench.charlm's format.
"""

import argparse
import json
import math
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class CharLSTM(nn.Module):
    def __init__(self, vocab: int, width: int = 256, layers: int = 2):
        super().__init__()
        self.embedding = nn.Embedding(vocab, width)
        self.lstm = nn.LSTM(width, width, num_layers=layers, batch_first=True)
        self.logits = nn.Linear(width, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.lstm(self.embedding(ids))
        return self.logits(hidden)


class Block(nn.Module):
    """Pre-LN decoder block: causal self-attention and a 4x GELU MLP, each on a residual."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm_attention = nn.LayerNorm(width, bias=False)
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.attention_out = nn.Linear(width, width, bias=False)
        self.norm_mlp = nn.LayerNorm(width, bias=False)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width, bias=False), nn.GELU(), nn.Linear(4 * width, width, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps, width = x.shape
        q, k, v = self.qkv(self.norm_attention(x)).split(width, dim=2)
        q, k, v = (t.view(batch, steps, self.heads, width // self.heads).transpose(1, 2) for t in (q, k, v))
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attention_out(attended.transpose(1, 2).reshape(batch, steps, width))
        return x + self.mlp(self.norm_mlp(x))


class CharGPT(nn.Module):
    def __init__(self, vocab: int, context: int = 64, width: int = 128, heads: int = 4, layers: int = 4):
        super().__init__()
        self.tokens = nn.Embedding(vocab, width)
        self.positions = nn.Embedding(context, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(width, bias=False)
        self.logits = nn.Linear(width, vocab, bias=False)
        self.logits.weight = self.tokens.weight  # tied, as in nanoGPT
        self.apply(self._init)
        for name, parameter in self.named_parameters():
            if name.endswith("attention_out.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(parameter, 0.0, 0.02 / math.sqrt(2 * layers))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, 0.0, 0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.tokens(ids) + self.positions(torch.arange(ids.shape[1]))
        for block in self.blocks:
            x = block(x)
        return self.logits(self.norm(x))


def gpt_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    others = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": matrices, "weight_decay": 0.1}, {"params": others, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.99))


def gpt_learning_rate(step: int, iterations: int, peak: float = 1e-3, floor: float = 1e-4, warmup: int = 100) -> float:
    if step < warmup:
        return peak * (step + 1) / (warmup + 1)
    progress = (step - warmup) / max(1, iterations - warmup)
    return floor + 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))) * (peak - floor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=["lstm", "gpt"], default="lstm")
    parser.add_argument("--data", required=True)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1337)
    args = parser.parse_args()
    context, eval_batches = 64, 200
    batch = 32 if args.family == "lstm" else 12

    with open(args.data, encoding="utf-8") as f:
        text = f.read()
    chars = sorted(set(text))
    lookup = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([lookup[c] for c in text], dtype=torch.long)
    cut = int(0.9 * len(ids))
    train, val = ids[:cut], ids[cut:]
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)

    def windows(data: torch.Tensor):
        starts = torch.randint(len(data) - context - 1, (batch,), generator=generator)
        block = torch.stack([data[s : s + context + 1] for s in starts])
        return block[:, :-1], block[:, 1:]

    if args.family == "lstm":
        model = CharLSTM(len(chars))
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    else:
        model = CharGPT(len(chars), context)
        optimizer = gpt_optimizer(model)
    loss_fn = nn.CrossEntropyLoss()
    started = time.perf_counter()
    steady_from = None
    for step in range(args.iterations):
        if args.family == "gpt":
            for group in optimizer.param_groups:
                group["lr"] = gpt_learning_rate(step, args.iterations)
        x, y = windows(train)
        loss = loss_fn(model(x).reshape(-1, len(chars)), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step == 0:
            steady_from = time.perf_counter()
    trained = time.perf_counter()
    model.eval()
    with torch.no_grad():
        val_loss = float(np.mean([loss_fn(model(x).reshape(-1, len(chars)), y.reshape(-1)).item()
                                  for x, y in (windows(val) for _ in range(eval_batches))]))
    print(json.dumps({
        "bench": "charlm", "family": f"torch_{args.family}", "preset": "cpu-small",
        "parameters": sum(p.numel() for p in model.parameters()),
        "iterations": args.iterations, "tokens_seen": batch * context * args.iterations,
        "val_loss": round(val_loss, 4),
        "train_tokens_per_second": round(batch * context * (args.iterations - 1) / (trained - steady_from), 1),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "torch_threads": torch.get_num_threads(),
    }), flush=True)


if __name__ == "__main__":
    main()
