#!/usr/bin/env python3
"""The original project's training re-created in PyTorch, for `scripts/bench`'s ratio.

Not the original train.py (it is not in this repository): a re-creation from the docs and from
`train --recipe original` (TrainConfig::recipe original): FSDD's official split (index 0-4 test,
5-49 train, a seeded 10% of the train part for validation, the hold-out files left out), 13
MFCCs of each clip zero-padded or cut to 1 s (n_fft 256, hop 128, 23 HTK mel bands, dB, top_db
80, as torchaudio's MFCC computes them, here with torch alone), each epoch the training set plus
one augmented copy (each with p = 0.5: circular shift up to 10%, gain -10..+5 dB, white noise
0-15 dB SNR), the original CNN (conv_stack.{0,3,6}, linear_stack.{0,3}, PyTorch's default
initialisation), Adam at 1e-3, batch 64, 10 epochs, the best validation epoch kept. Needs a
Python whose `import torch` works (see scripts/pytorch_compute.py). Prints one JSON line:

    scripts/pytorch_train.py --data free-spoken-digit-dataset/recordings --threads 1
"""
import argparse
import json
import math
import os
import random
import time
import wave

import torch
from torch import nn

RATE, CLIP, N_FFT, HOP, N_MELS, N_MFCC, TOP_DB = 8000, 8000, 256, 128, 23, 13, 80.0


class OriginalNet(nn.Module):
    def __init__(self):
        super().__init__()
        layers = []
        for cin, cout in [(1, 16), (16, 32), (32, 64)]:
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        self.conv_stack = nn.Sequential(*layers)
        frames = CLIP // HOP + 1
        self.linear_stack = nn.Sequential(
            nn.Linear(64 * (N_MFCC // 8) * (frames // 8), 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10)
        )

    def forward(self, x):
        return self.linear_stack(self.conv_stack(x).flatten(1))


def mel_filters():
    """HTK mel filterbank [n_fft/2+1, n_mels], no normalisation (torchaudio's melscale_fbanks)."""
    hz_to_mel = lambda f: 2595.0 * math.log10(1.0 + f / 700.0)
    freqs = torch.linspace(0, RATE / 2, N_FFT // 2 + 1)
    m = torch.linspace(hz_to_mel(0.0), hz_to_mel(RATE / 2), N_MELS + 2)
    f_pts = 700.0 * (10 ** (m / 2595.0) - 1.0)
    slopes = f_pts.unsqueeze(0) - freqs.unsqueeze(1)
    f_diff = f_pts[1:] - f_pts[:-1]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return torch.clamp(torch.min(down, up), min=0.0)


def dct_matrix():
    """Orthonormal DCT-II [n_mels, n_mfcc] (torchaudio's create_dct, norm ortho)."""
    n = torch.arange(N_MELS, dtype=torch.float32)
    k = torch.arange(N_MFCC, dtype=torch.float32).unsqueeze(1)
    dct = torch.cos(math.pi / N_MELS * (n + 0.5) * k)
    dct[0] *= 1.0 / math.sqrt(2.0)
    return (dct * math.sqrt(2.0 / N_MELS)).t()


FILTERS, DCT, WINDOW = mel_filters(), dct_matrix(), torch.hann_window(N_FFT)


def mfcc(clips):
    """[B, CLIP] -> [B, 1, 13, frames]."""
    spec = torch.stft(clips, N_FFT, HOP, window=WINDOW, center=True, pad_mode="reflect", return_complex=True)
    power = spec.abs() ** 2
    mel = torch.matmul(power.transpose(1, 2), FILTERS)  # [B, frames, mels]
    db = 10.0 * torch.log10(torch.clamp(mel, min=1e-10))
    db = torch.max(db, db.amax(dim=(1, 2), keepdim=True) - TOP_DB)
    return torch.matmul(db, DCT).transpose(1, 2).unsqueeze(1)


def load(path):
    with wave.open(path) as w:
        raw = w.readframes(w.getnframes())
        assert w.getsampwidth() == 2 and w.getframerate() == RATE, path
    x = torch.frombuffer(bytearray(raw), dtype=torch.int16).float() / 32768.0
    x = x[:CLIP]
    return torch.nn.functional.pad(x, (0, CLIP - len(x)))


def augment(clips, gen):
    out = clips.clone()
    for i in range(len(out)):
        if torch.rand(1, generator=gen).item() < 0.5:
            k = int(torch.randint(-CLIP // 10, CLIP // 10 + 1, (1,), generator=gen))
            out[i] = torch.roll(out[i], k)
        if torch.rand(1, generator=gen).item() < 0.5:
            out[i] *= 10 ** ((torch.rand(1, generator=gen).item() * 15 - 10) / 20)
        if torch.rand(1, generator=gen).item() < 0.5:
            snr = torch.rand(1, generator=gen).item() * 15
            sigma = math.sqrt(out[i].pow(2).mean().item() / 10 ** (snr / 10))
            out[i] += sigma * torch.randn(CLIP, generator=gen)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="free-spoken-digit-dataset/recordings")
    p.add_argument("--holdout", default="free-spoken-digit-dataset/holdout.txt")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(42)
    gen = torch.Generator().manual_seed(42)
    start = time.perf_counter()
    held = set()
    if os.path.exists(a.holdout):
        held = {l.strip() for l in open(a.holdout) if l.strip() and not l.startswith("#")}
    files = sorted(f for f in os.listdir(a.data) if f.endswith(".wav") and f not in held)
    index = lambda f: int(f.rsplit("_", 1)[1].split(".")[0])
    test = [f for f in files if index(f) < 5]
    pool = [f for f in files if index(f) >= 5]
    random.Random(42).shuffle(pool)
    n_val = round(len(pool) * 0.1)
    val, train = pool[:n_val], pool[n_val:]
    sets = {}
    for name, part in (("train", train), ("val", val), ("test", test)):
        clips = torch.stack([load(os.path.join(a.data, f)) for f in part])
        sets[name] = (clips, torch.tensor([int(f[0]) for f in part]))
    train_clips, train_y = sets["train"]
    val_x, test_x = mfcc(sets["val"][0]), mfcc(sets["test"][0])
    clean_x = mfcc(train_clips)
    model = OriginalNet()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    best = (-1.0, None)
    for _ in range(a.epochs):
        xs = torch.cat([clean_x, mfcc(augment(train_clips, gen))])
        ys = torch.cat([train_y, train_y])
        order = torch.randperm(len(ys), generator=gen)
        model.train()
        for i in range(0, len(ys), 64):
            idx = order[i : i + 64]
            opt.zero_grad()
            loss = loss_fn(model(xs[idx]), ys[idx])
            loss.backward()
            opt.step()
            loss.item()
        model.eval()
        with torch.no_grad():
            acc = (model(val_x).argmax(1) == sets["val"][1]).float().mean().item()
        if acc > best[0]:
            best = (acc, {k: v.clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[1])
    model.eval()
    with torch.no_grad():
        test_acc = (model(test_x).argmax(1) == sets["test"][1]).float().mean().item()
    seconds = time.perf_counter() - start
    print(json.dumps({"pytorch_train_s": seconds, "test_accuracy": test_acc, "val_accuracy": best[0],
                      "train": len(train), "threads": a.threads, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
