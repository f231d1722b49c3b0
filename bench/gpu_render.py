"""Standalone GPU rendering benchmark: dSprites and 3D Shapes with ``device="cuda"``.

    python bench/gpu_render.py            # needs a CUDA GPU; finishes in well under 60 s
    python bench/gpu_render.py --device cpu --batch 10000 --reps 3   # dry run on a CPU

Prints one JSON object (the last line of output), e.g.
``{"images_per_second": ..., "dsprites": {...}, "shapes3d": {...}, "device": ...}``, where
``images_per_second`` is dSprites rendered end to end through
``observations_from_factors(factors, device="cuda")`` (NumPy factors in, a CUDA tensor out,
including validation and the host-to-device copy of the factor indices). ``render_only``
is the tensor-op renderer on factor indices already on the GPU. Target: >= 1,000,000 images/s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(fn, inputs, device) -> tuple[float, float]:
    fn(inputs[0])  # warm-up: caches, kernels
    _sync(device)
    t0 = time.perf_counter()
    images = 0
    for inp in inputs:
        out = fn(inp)
        images += out.shape[0]
    _sync(device)
    secs = time.perf_counter() - t0
    return images / secs, secs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch", type=int, default=100_000)
    p.add_argument("--reps", type=int, default=20)
    args = p.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"error": "CUDA is not available", "images_per_second": None}))
        sys.exit(1)
    t_start = time.perf_counter()

    # import the dataset modules directly: no need for the rest of crlkit's dependencies
    from crlkit.data.dsprites import DSprites, render_binary_torch
    from crlkit.data.pendulum import Pendulum
    from crlkit.data.shapes3d import MATERIALS, Shapes3D, render_torch

    rng = np.random.default_rng(0)
    result: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else str(device),
                    "torch": torch.__version__, "batch": args.batch, "reps": args.reps}

    ds = DSprites()
    factors = [ds.sample_factors(args.batch, rng) for _ in range(args.reps)]
    e2e, secs = _rate(lambda f: ds.observations_from_factors(f, device=device), factors, device)
    gpu_factors = [torch.as_tensor(f, device=device) for f in factors]
    render, _ = _rate(lambda f: render_binary_torch(f, device), gpu_factors, device)
    check = ds.observations_from_factors(factors[0][:256], device=device).cpu().numpy()
    same = bool(np.array_equal(check, ds.observations_from_factors(factors[0][:256])))
    result["dsprites"] = {"images_per_second": round(e2e), "seconds": round(secs, 3),
                          "render_only_images_per_second": round(render), "equals_cpu": same}

    s3 = Shapes3D()
    t0 = time.perf_counter()
    MATERIALS.ensure(np.arange(480))  # one-off CPU ray casting of the 480 geometries
    t_maps = time.perf_counter() - t0
    n3 = max(1, args.batch // 4)
    factors3 = [s3.sample_factors(n3, rng) for _ in range(max(1, args.reps // 2))]
    e2e3, secs3 = _rate(lambda f: s3.observations_from_factors(f, device=device), factors3, device)
    gpu3 = [torch.as_tensor(f, device=device) for f in factors3]
    render3, _ = _rate(lambda f: render_torch(f, device), gpu3, device)
    check3 = s3.observations_from_factors(factors3[0][:64], device=device).cpu().numpy()
    close3 = float(np.abs(check3 - s3.observations_from_factors(factors3[0][:64])).max())
    result["shapes3d"] = {"images_per_second": round(e2e3), "seconds": round(secs3, 3),
                          "render_only_images_per_second": round(render3),
                          "geometry_maps_cpu_seconds": round(t_maps, 2), "max_abs_diff_vs_cpu": close3}
    pend = Pendulum()
    fp = [pend.sample_factors(n3, rng) for _ in range(2)]
    e2ep, secsp = _rate(lambda f: pend.observations_from_factors(f, device=device), fp, device)
    diffp = float(np.abs(pend.observations_from_factors(fp[0][:64], device=device).cpu().numpy()
                         - pend.observations_from_factors(fp[0][:64])).max())
    result["pendulum"] = {"images_per_second": round(e2ep), "seconds": round(secsp, 3),
                          "max_abs_diff_vs_cpu": diffp}
    result["images_per_second"] = result["dsprites"]["images_per_second"]
    result["total_seconds"] = round(time.perf_counter() - t_start, 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
