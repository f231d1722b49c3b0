"""Training speed of crlkit's trainer vs a plain PyTorch loop (beta_vae on dSprites).

Both train the same architecture (conv 32-32-64-64 k4 s2 -> FC 256 -> 10 latents; decoder
mirrored) with Adam lr 1e-4 at batch 64 on procedurally rendered dSprites, in one process,
alternating rounds so that machine load affects both alike. The plain loop is what a user
would write (NCHW tensors, default Adam, per-step ``loss.item()``); its speed here matched
the PyPI package disent 0.8.0.

    .venv/bin/python bench/bench_train.py                # ~2-3 minutes on 2 CPU cores
    .venv/bin/python bench/bench_train.py --steps 100 --rounds 3 --device cuda

Prints one JSON line: images/s of each (median over rounds) and the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def plain_model(c: int = 1, latents: int = 10) -> tuple[nn.Module, nn.Module]:
    enc = nn.Sequential(
        nn.Conv2d(c, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 32, 4, 2, 1), nn.ReLU(),
        nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(), nn.Conv2d(64, 64, 4, 2, 1), nn.ReLU(),
        nn.Flatten(), nn.Linear(1024, 256), nn.ReLU(), nn.Linear(256, 2 * latents))
    dec = nn.Sequential(
        nn.Linear(latents, 256), nn.ReLU(), nn.Linear(256, 1024), nn.ReLU(), nn.Unflatten(1, (64, 4, 4)),
        nn.ConvTranspose2d(64, 64, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
        nn.ConvTranspose2d(32, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, c, 4, 2, 1))
    return enc, dec


def plain_loop(dataset, steps: int, device: str, beta: float = 4.0, batch: int = 64, seed: int = 0) -> None:
    """A straightforward PyTorch beta-VAE loop (timed from outside, like crlkit's call)."""
    torch.manual_seed(seed)
    enc, dec = plain_model(dataset.observation_shape[0])
    enc, dec = enc.to(device), dec.to(device)
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=1e-4)
    rng = np.random.default_rng(seed)
    for step in range(steps):
        _, x = dataset.sample(batch, rng)
        x = torch.from_numpy(np.asarray(x)).to(device)
        h = enc(x)
        mu, logvar = h.chunk(2, 1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        rec = F.binary_cross_entropy_with_logits(dec(z), x, reduction="sum") / batch
        kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(1).mean()
        loss = rec + beta * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def crlkit_run(steps: int, device: str, overrides: dict | None = None) -> None:
    """crlkit's trainer, including its config/log/checkpoint/summary writes."""
    from crlkit.train import train

    with tempfile.TemporaryDirectory() as d:
        train("beta_vae", "dsprites", steps=steps, seed=0, out_dir=d, device=device, progress=False,
              overrides={"beta": 4.0, **(overrides or {})})


def timed(fn, images: int) -> tuple[float, float]:
    """(wall images/s, CPU-time images/s) of one whole call, set-up included.

    With one torch thread, process CPU time is robust to other jobs on the machine; wall
    time is what a user sees on an idle one."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return images / (time.perf_counter() - w0), images / (time.process_time() - c0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--variants", action="store_true", help="also time crlkit with each speed option off")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from crlkit.data import make_dataset

    ds = make_dataset("dsprites")
    ds.sample(2, np.random.default_rng(0))  # build the sprite cache before any timing
    runs = {"plain": lambda: plain_loop(ds, args.steps, args.device),
            "crlkit": lambda: crlkit_run(args.steps, args.device)}
    if args.variants:
        runs["crlkit_no_channels_last"] = lambda: crlkit_run(args.steps, args.device, {"channels_last": False})
        runs["crlkit_no_fused_adam"] = lambda: crlkit_run(args.steps, args.device, {"fused_adam": False})
        runs["crlkit_no_tune_malloc"] = lambda: crlkit_run(args.steps, args.device, {"tune_malloc": False})
        runs["crlkit_no_speedups"] = lambda: crlkit_run(
            args.steps, args.device, {"channels_last": False, "fused_adam": False, "tune_malloc": False})
    wall: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(args.rounds):
        for name, fn in runs.items():
            w, c = timed(fn, 64 * args.steps)
            wall[name].append(w)
            cpu[name].append(c)
            print(f"round {r + 1} {name}: {w:.1f} images/s wall, {c:.1f} images/CPU-s", flush=True)
    mw = {k: statistics.median(v) for k, v in wall.items()}
    mc = {k: statistics.median(v) for k, v in cpu.items()}
    out = {"device": args.device, "threads": args.threads, "steps": args.steps, "rounds": args.rounds,
           "images_per_second_wall": {k: round(v, 1) for k, v in mw.items()},
           "images_per_cpu_second": {k: round(v, 1) for k, v in mc.items()},
           "speedup_wall": {k: round(v / mw["plain"], 3) for k, v in mw.items() if k != "plain"},
           "speedup_cpu": {k: round(v / mc["plain"], 3) for k, v in mc.items() if k != "plain"},
           "torch": torch.__version__}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
