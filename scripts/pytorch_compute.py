#!/usr/bin/env python3
"""The original CNN's model compute in PyTorch, for comparison with `bench train-compute`.

Same network (the original project's layers and PyTorch's default initialisation), Adam at 1e-3,
batches of 64 over EXAMPLES random feature maps of 13 x 63 for EPOCHS epochs, a no-grad pass over
VAL maps after each epoch, one loss read-back per batch: what `bench train-compute` times in
libtorch through tch. Needs a Python whose `import torch` works (the full `torch==2.13.0` wheel
with its CUDA dependencies; the CPU libraries scripts/setup installs are not enough for
`import torch`). Prints one JSON line.

    scripts/pytorch_compute.py --examples 4800 --val 269 --threads 1
"""
import argparse
import json
import time

import torch
from torch import nn


class OriginalNet(nn.Module):
    def __init__(self, rows: int, frames: int):
        super().__init__()
        layers = []
        for cin, cout in [(1, 16), (16, 32), (32, 64)]:
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        self.conv_stack = nn.Sequential(*layers)
        flat = 64 * (rows // 8) * (frames // 8)
        self.linear_stack = nn.Sequential(nn.Linear(flat, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10))

    def forward(self, x):
        return self.linear_stack(self.conv_stack(x).flatten(1))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--examples", type=int, required=True, help="training examples per epoch")
    p.add_argument("--val", type=int, required=True, help="validation examples per epoch")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(42)
    rows, frames = 13, 63
    model = OriginalNet(rows, frames)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    xs = torch.rand(a.examples, 1, rows, frames) * 2 - 1
    ys = torch.arange(a.examples) % 10
    val = torch.rand(a.val, 1, rows, frames) * 2 - 1
    start = time.perf_counter()
    for _ in range(a.epochs):
        model.train()
        for i in range(0, a.examples, a.batch_size):
            opt.zero_grad()
            loss = loss_fn(model(xs[i : i + a.batch_size]), ys[i : i + a.batch_size])
            loss.backward()
            opt.step()
            loss.item()
        model.eval()
        with torch.no_grad():
            model(val)
    seconds = time.perf_counter() - start
    print(json.dumps({"pytorch_compute_s": seconds, "threads": a.threads, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
