"""GPU training speed: crlkit's trainer vs a plain PyTorch loop, beta_vae on dSprites.

Standalone; run on a machine with CUDA (finishes in well under 90 s):

    python bench/gpu_train.py            # prints one JSON line

Both loops render dSprites on the GPU (``observations_from_factors(..., device="cuda")``),
use the standard conv architecture, Adam lr 1e-4 and batch 64. Each side first runs a short
calibration to size a timed run of about ``--seconds`` seconds; timings exclude the
calibration (cuDNN autotuning, allocator warm-up).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def plain_loop(dataset, steps: int, device: str, batch: int = 64, beta: float = 4.0, seed: int = 0) -> float:
    """images/s of a straightforward loop (device-side data, per-step ``loss.item()``)."""
    from bench.bench_train import plain_model

    torch.manual_seed(seed)
    enc, dec = plain_model(dataset.observation_shape[0])
    enc, dec = enc.to(device), dec.to(device)
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=1e-4)
    rng = np.random.default_rng(seed)

    def step():
        _, x = dataset.sample(batch, rng, device=device)
        mu, logvar = enc(x).chunk(2, 1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        rec = F.binary_cross_entropy_with_logits(dec(z), x, reduction="sum") / batch
        kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(1).mean()
        loss = rec + beta * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()

    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    for _ in range(20):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return batch * steps / (time.perf_counter() - t0)


def crlkit_loop(steps: int, device: str) -> float:
    """images/s reported by crlkit.train (its timer covers the loop, checkpoint included)."""
    from crlkit.train import train

    with tempfile.TemporaryDirectory() as d:
        s = train("beta_vae", "dsprites", steps=steps, seed=0, out_dir=d, device=device, progress=False,
                  overrides={"beta": 4.0, "checkpoint_every": 10**9})
    return s["images_per_second"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=12.0, help="target length of each timed run")
    ap.add_argument("--device", default="cuda", help="cuda (default), or cpu for a dry run")
    ap.add_argument("--calibration-steps", type=int, default=100)
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(json.dumps({"error": "CUDA is not available"}))
        sys.exit(1)
    from crlkit.data import make_dataset

    t_start = time.perf_counter()
    ds = make_dataset("dsprites")
    # calibrate (also warms up cuDNN and the device-side sprite table)
    crlkit_cal = crlkit_loop(args.calibration_steps, args.device)
    plain_cal = plain_loop(ds, args.calibration_steps, args.device)
    # the same number of steps for both, sized on the faster calibration (crlkit's calibration
    # rate includes the cuDNN autotuning and the checkpoint of a 100-step run)
    n_crlkit = n_plain = max(2 * args.calibration_steps, int(max(crlkit_cal, plain_cal) * args.seconds / 64))
    ours = crlkit_loop(n_crlkit, args.device)
    plain = plain_loop(ds, n_plain, args.device)
    out = {
        "device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else args.device,
        "torch": torch.__version__, "batch_size": 64,
        "crlkit_images_per_second": round(ours, 1), "plain_images_per_second": round(plain, 1),
        "speedup": round(ours / plain, 3), "crlkit_steps": n_crlkit, "plain_steps": n_plain,
        "total_seconds": round(time.perf_counter() - t_start, 1),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
