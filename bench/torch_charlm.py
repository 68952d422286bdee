"""PyTorch reference for bench.charlm's `rnn` preset: a plain `nn.LSTM` of the same size,
data, batches and schedule, so the two can be measured side by side on one machine.

    python bench/torch_charlm.py --data ../shared/data/tinyshakespeare.txt

It runs in its own environment with PyTorch (not textflow's: the project never imports
torch), e.g. `make bench-torch`. Prints one JSON line in bench.charlm's format.
"""

import argparse
import json
import time

import numpy as np
import torch
from torch import nn


class CharLSTM(nn.Module):
    def __init__(self, vocab: int, width: int, layers: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab, width)
        self.lstm = nn.LSTM(width, width, num_layers=layers, batch_first=True)
        self.logits = nn.Linear(width, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.lstm(self.embedding(ids))
        return self.logits(hidden)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1337)
    args = parser.parse_args()
    width, layers, context, batch, lr, eval_batches = 256, 2, 64, 32, 2e-3, 200

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

    model = CharLSTM(len(chars), width, layers)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    started = time.perf_counter()
    steady_from = None
    for step in range(args.iterations):
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
        "bench": "charlm", "family": "torch_lstm", "preset": "cpu-small",
        "parameters": sum(p.numel() for p in model.parameters()),
        "iterations": args.iterations, "tokens_seen": batch * context * args.iterations,
        "val_loss": round(val_loss, 4),
        "train_tokens_per_second": round(batch * context * (args.iterations - 1) / (trained - steady_from), 1),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "torch_threads": torch.get_num_threads(),
    }), flush=True)


if __name__ == "__main__":
    main()
