"""Causal Chamber adapter: rendering speed of the chamber_* datasets on the CPU, and what crlkit's
methods recover on the light-tunnel sensor world beside the random-rotation chance level.

    python bench/bench_chamber.py --out runs/bench_chamber --threads 1

Speed: samples per second of ``observations_from_factors`` in batches of 1,024 (latents drawn
outside the timed region), best of 20 repeats (the minimum time, as timeit advises on a shared machine); images at 64 x 64. Methods: each trained through
the shared trainer on ``chamber_sensors`` (the 5 inputs R, G, B, pol_1, pol_2 -> 9 standardised
sensor readings), scored by MCC on 2,000 held-out samples.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from crlkit.data import make_dataset

#: method -> (dataset options, model/sampler/trainer overrides)
RUNS = {
    "contrastive": ({}, {"num_latents": 5, "p": 1.0, "sampler.conditional": "laplace", "sampler.sigma": 0.2,
                         "batch_size": 256, "lr": 1e-3}),
    "ivae": ({"segments": 40}, {"num_latents": 5, "aux_dim": 40, "batch_size": 256, "lr": 1e-2}),
    "vae": ({}, {"num_latents": 5, "reconstruction": "l2", "batch_size": 256, "lr": 1e-3}),
}


def render_speed(name: str, *, batch: int = 1024, repeats: int = 20, **options) -> float:
    ds = make_dataset(name, **options)
    z = ds.sample_factors(batch, np.random.default_rng(0))
    ds.observations_from_factors(z)  # warm-up
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        ds.observations_from_factors(z)
        best = min(best, time.perf_counter() - t0)
    return batch / best


def method_on_sensors(method: str, seed: int, steps: int, out: Path) -> dict:
    from crlkit.identify.benchmark import evaluate_representation
    from crlkit.train import load_model, train

    data_options, overrides = RUNS[method]
    run_dir = out / f"{method}_s{seed}"
    summary = train(method, "chamber_sensors", data_options={**data_options, "seed": seed}, steps=steps, seed=seed,
                    out_dir=run_dir, overrides={**overrides, "checkpoint_every": steps, "log_every": 50},
                    progress=False, allow_mismatch=True)
    model = load_model(run_dir)
    ds = make_dataset("chamber_sensors", **data_options, seed=seed)
    z, x = ds.sample(2000, np.random.default_rng(10_000 + seed))
    with torch.no_grad():
        z_hat = model.encode(torch.as_tensor(x)).double().numpy()
    scores = evaluate_representation(np.asarray(z, float), z_hat, seed=seed, nonlinear_max_train=300)
    return {"method": method, "seed": seed, "steps": steps, "mcc": scores["mcc"], "baseline_mcc": scores["baseline_mcc"],
            "r2_linear": scores["r2_linear"], "guarantee": summary["contract"]["guarantee"],
            "mismatch": [m["requirement"] for m in summary["contract"]["mismatches"]],
            "train_seconds": summary["seconds"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/bench_chamber", help="output directory")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--steps", type=int, default=1500, help="training steps per method run (default 1500)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds (default 0 1)")
    p.add_argument("--skip-methods", action="store_true", help="measure rendering speed only")
    p.add_argument("--methods", nargs="+", default=list(RUNS), help=f"methods (default: {' '.join(RUNS)})")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    speed = {"chamber_sensors": render_speed("chamber_sensors")}
    for kind in ("f1", "f2", "f3"):
        speed[f"chamber_{kind}"] = render_speed(f"chamber_{kind}", image_size=64)
    for k, v in speed.items():
        print(f"{k}: {v:,.0f} samples/s")
    rows = []
    if not args.skip_methods:
        for method in args.methods:
            for seed in args.seeds:
                rows.append(method_on_sensors(method, seed, args.steps, out))
                print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rows[-1].items()}))
                (out / "chamber.json").write_text(json.dumps({"samples_per_second": speed, "methods": rows}, indent=2))
    (out / "chamber.json").write_text(json.dumps({"samples_per_second": speed, "methods": rows}, indent=2) + "\n")
    print(f"wrote {out / 'chamber.json'}")


if __name__ == "__main__":
    main()
