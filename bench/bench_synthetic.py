"""Throughput of the synthetic world model: mixing functions and the identifiability samplers.

    .venv/bin/python bench/bench_synthetic.py                 # ~1 minute on 2 CPU cores
    .venv/bin/python bench/bench_synthetic.py --device cuda   # adds the torch/GPU mixing path

Prints one JSON line per measurement (median of ``--repeats`` timings):
- ``mixing_build``: seconds to build an InvertibleMLP (threshold from 10,000 random draws);
- ``mixing``: samples/s of the forward map (NumPy float64; torch float32 on --device) and inverse;
- ``sampler``: samples/s (pairs count once) of each batch kind at batch sizes 64 and 4,096.
The question it answers: can data generation keep up with training (a small MLP step at
batch 64 takes ~1-3 ms on this CPU)?
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from crlkit.data import make_dataset
from crlkit.data.samplers import make_sampler
from crlkit.mixing import InvertibleMLP


def timed(fn, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    dev = torch.device(args.device)

    for dim in (5, 10, 40):
        s = timed(lambda: InvertibleMLP(dim, n_layers=3, seed=0), max(1, args.repeats // 2))
        print(json.dumps({"bench": "mixing_build", "dim": dim, "seconds": round(s, 3)}), flush=True)

    for dim in (5, 10, 40):
        g = InvertibleMLP(dim, n_layers=3, seed=0)
        n = 100_000
        z = np.random.default_rng(0).standard_normal((n, dim))
        x = g(z)
        row = {"bench": "mixing", "dim": dim, "n": n,
               "numpy_forward_per_s": round(n / timed(lambda: g(z), args.repeats)),
               "numpy_inverse_per_s": round(n / timed(lambda: g.inverse(x), args.repeats))}
        zt = torch.as_tensor(z, dtype=torch.float32, device=dev)

        def fwd():
            g.forward_torch(zt)
            if dev.type == "cuda":
                torch.cuda.synchronize()
        fwd()
        row[f"torch_{dev.type}_forward_per_s"] = round(n / timed(fwd, args.repeats))
        # float32 on the device vs the float64 NumPy reference
        row["torch_max_rel_err"] = float(np.abs(g.forward_torch(zt).double().cpu().numpy() - x).max() / np.abs(x).max())
        print(json.dumps(row), flush=True)

    settings = {
        "segment": ("ivae_segments", {}, {}),
        "positive_pair": ("contrastive_uniform", {}, {}),
        "views": ("synthetic", {"latents": 10}, {"content": 5}),
        "intervention_pair": ("synthetic", {"latents": 5, "graph": "er", "mechanism": "nonlinear"}, {}),
    }
    for kind, (name, dopts, sopts) in settings.items():
        ds = make_dataset(name, **dopts)
        for bs in (64, 4096):
            s = make_sampler(kind, ds, batch_size=bs, seed=0, device=dev, **sopts)
            next(s)
            k = max(2, 20_000 // bs)
            sec = timed(lambda: [next(s) for _ in range(k)], args.repeats)
            print(json.dumps({"bench": "sampler", "kind": kind, "dataset": name, "batch_size": bs,
                              "device": dev.type, "samples_per_s": round(k * bs / sec),
                              "ms_per_batch": round(1000 * sec / k, 3)}), flush=True)


if __name__ == "__main__":
    main()
