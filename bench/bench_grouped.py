"""Grouped training on the CPU: K beta_vae models on dSprites as one group, as K sequential
single runs, and as a plain PyTorch ``torch.func.vmap`` of the same K (batch 64 each).

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_grouped.py --ks 4 8 --steps 15   # one JSON line

Every figure is images per second over all K models, from the loops' own timers (setup,
model building and the first step excluded where the library reports it so): the grouped
and sequential figures are ``train_many``'s ``images_per_second_total`` /
``train``'s ``images_per_second``; the plain vmap loop times its steps after two warm-up
steps. One torch thread.
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


def plain_vmap(dataset, k: int, steps: int, device: str = "cpu", *, batch: int = 64, beta: float = 4.0,
               bf16: bool = False, warmup: int = 2, seed: int = 0, compile: bool = False) -> float:
    """images/s of a plain PyTorch group: K stacked standard-architecture beta-VAEs under
    ``torch.func.vmap`` (noise drawn inside vmap), one fused Adam, data rendered on ``device``
    in one call per step. ``bf16``: the networks run on bf16 copies of the weights (losses in
    float32), as crlkit's ``precision="bf16"`` does; ``torch.autocast`` does not reach
    convolutions under vmap."""
    from torch.func import functional_call, stack_module_state, vmap

    from bench.bench_train import plain_model

    torch.manual_seed(seed)
    encs, decs = zip(*[plain_model(dataset.observation_shape[0]) for _ in range(k)])
    enc_p, _ = stack_module_state([e.to(device) for e in encs])
    dec_p, _ = stack_module_state([d.to(device) for d in decs])
    enc0, dec0 = encs[0].to("meta"), decs[0].to("meta")
    params = {**{f"e.{n}": p for n, p in enc_p.items()}, **{f"d.{n}": p for n, p in dec_p.items()}}
    opt = torch.optim.Adam(params.values(), lr=1e-4, fused=True)
    rng = np.random.default_rng(seed)

    low = torch.bfloat16 if bf16 else torch.float32  # the networks' dtype; losses in float32

    def loss(p, x):
        e = {n[2:]: v.to(low) for n, v in p.items() if n.startswith("e.")}
        d = {n[2:]: v.to(low) for n, v in p.items() if n.startswith("d.")}
        mu, logvar = functional_call(enc0, e, (x.to(low),)).float().chunk(2, 1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        logits = functional_call(dec0, d, (z.to(low),)).float()
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]
        kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(1).mean()
        return rec + beta * kl

    grouped_loss = vmap(loss, randomness="different")
    if compile:
        grouped_loss = torch.compile(grouped_loss)

    def step():
        _, x = dataset.sample(k * batch, rng, device=device)
        x = torch.as_tensor(x, device=device).reshape(k, batch, *dataset.observation_shape)
        total = grouped_loss(params, x).sum()
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()

    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    for _ in range(warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return k * batch * steps / (time.perf_counter() - t0)


def grouped(k: int, steps: int, device: str = "cpu", *, precision: str = "fp32", dataset="dsprites") -> dict:
    """crlkit's grouped path (train_many, mode="grouped") for seeds 0..K-1."""
    from crlkit.train import train_many

    with tempfile.TemporaryDirectory() as d:
        s = train_many("beta_vae", dataset, seeds=range(k), steps=steps, out_dir=d, mode="grouped", device=device,
                       precision=precision, progress=False,
                       overrides={"batch_size": 64, "checkpoint_every": 10**9, "log_every": 10**9})
    return s[0]["group"]


def sequential(k: int, steps: int, device: str = "cpu", *, dataset="dsprites") -> float:
    """crlkit's single runs one after another: total images / total training seconds."""
    from crlkit.train import train

    seconds = 0.0
    with tempfile.TemporaryDirectory() as d:
        for seed in range(k):
            s = train("beta_vae", dataset, steps=steps, seed=seed, out_dir=os.path.join(d, str(seed)), device=device,
                      progress=False, overrides={"batch_size": 64, "checkpoint_every": 10**9, "log_every": 10**9})
            seconds += 64 * steps / s["images_per_second"]
    return k * 64 * steps / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ks", type=int, nargs="+", default=[4, 8], help="group sizes (default 4 8)")
    ap.add_argument("--steps", type=int, default=15, help="steps per measurement (default 15)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from crlkit.data import make_dataset

    ds = make_dataset("dsprites")
    rows = []
    for k in args.ks:
        g = grouped(k, args.steps)
        row = {"k": k, "steps": args.steps, "grouped_img_s": round(g["images_per_second_total"], 1),
               "sequential_img_s": round(sequential(k, args.steps), 1),
               "plain_vmap_img_s": round(plain_vmap(ds, k, args.steps), 1)}
        row["grouped_over_sequential"] = round(row["grouped_img_s"] / row["sequential_img_s"], 3)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    print(json.dumps({"bench": "grouped_cpu", "threads": torch.get_num_threads(), "torch": torch.__version__,
                      "cpus": os.cpu_count(), "load_average": os.getloadavg(), "rows": rows}))


if __name__ == "__main__":
    main()
