"""Rendering speed of the procedural image datasets (images per second).

    .venv/bin/python bench/bench_render.py                 # CPU, NumPy path
    .venv/bin/python bench/bench_render.py --device cuda   # torch path on a GPU

Measures dSprites on (a) the full 737,280-image factor grid in batches of 10,000 (memory
O(batch): each batch is rendered, touched and dropped) and (b) random batches of 10,000;
then the other image datasets on random batches. Prints one JSON object per line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout


def _sync(device):
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def bench_full_grid(ds, device, batch: int) -> dict:
    sizes = ds.factor_sizes
    total = int(np.prod(sizes))
    ds.observations_from_factors(np.zeros((batch, len(sizes)), np.int64), device=device)  # warm caches
    _sync(device)
    checksum = 0.0
    t0 = time.perf_counter()
    for start in range(0, total, batch):
        idx = np.arange(start, min(start + batch, total))
        f = np.stack(np.unravel_index(idx, sizes), axis=1)
        x = ds.observations_from_factors(f, device=device)
        checksum += float(x[:, :, 32, 32].sum())  # touch the output so nothing is skipped
    _sync(device)
    secs = time.perf_counter() - t0
    return {"what": f"{ds.name} full grid", "images": total, "batch": batch, "seconds": round(secs, 3),
            "images_per_second": round(total / secs), "centre_pixel_sum": checksum}


def bench_random(ds, device, batch: int, reps: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    factors = [ds.sample_factors(batch, rng) for _ in range(reps)]
    ds.observations_from_factors(factors[0], np.random.default_rng(0), device=device)  # warm caches
    _sync(device)
    t0 = time.perf_counter()
    for f in factors:
        x = ds.observations_from_factors(f, rng, device=device)
        del x
    _sync(device)
    secs = time.perf_counter() - t0
    return {"what": f"{ds.name} random batches", "images": batch * reps, "batch": batch,
            "seconds": round(secs, 3), "images_per_second": round(batch * reps / secs)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="torch device (default: NumPy on the CPU)")
    p.add_argument("--batch", type=int, default=10_000)
    p.add_argument("--reps", type=int, default=20, help="random dSprites batches")
    p.add_argument("--skip-others", action="store_true", help="only dSprites")
    args = p.parse_args()
    torch.set_num_threads(1)

    from crlkit.data import make_dataset

    ds = make_dataset("dsprites")
    print(json.dumps(bench_full_grid(ds, args.device, args.batch)), flush=True)
    print(json.dumps(bench_random(ds, args.device, args.batch, args.reps)), flush=True)
    if args.skip_others:
        return
    for name, batch, reps in (("color_dsprites", 2_000, 5), ("noisy_dsprites", 2_000, 5),
                              ("shapes3d", 2_000, 5), ("pendulum", 2_000, 2)):
        other = make_dataset(name)
        if name == "shapes3d":  # ray-cast all 480 geometries first (one-off, reported apart)
            from crlkit.data.shapes3d import MATERIALS

            t0 = time.perf_counter()
            MATERIALS.ensure(np.arange(480))
            print(json.dumps({"what": "shapes3d geometry maps (one-off, all 480)",
                              "seconds": round(time.perf_counter() - t0, 2)}), flush=True)
        print(json.dumps(bench_random(other, args.device, batch, reps)), flush=True)


if __name__ == "__main__":
    main()
