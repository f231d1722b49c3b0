"""One run of the interventional runner, alone: train run ``r`` of a seed (training seed
``seed + 1000 r``, as ``run_identify``'s restarts), then score it as the runner does (held-out
target balance on 10,000 fresh pairs; the graph from ``graph_pairs`` fresh pairs) and append one
JSON line to ``--out``. Runs of one seed can so be spread over many cores at once and the
runner's rule (stop at the first run with balance >= INTERVENTIONAL_BALANCE, else keep the most
balanced) applied afterwards.

    OMP_NUM_THREADS=1 python bench/interventional_run.py --latents 6 --seed 20 --restart 1 \\
        --recon-weight 1 --out runs.jsonl [--device cuda] [--steps N] [--known-targets] [--keep DIR]
"""
import argparse
import json
import tempfile
import time

import torch

from crlkit.data import make_dataset
from crlkit.identify import benchmark as B
from crlkit.metrics import mcc_score
from crlkit.train import load_model, train


def min_noise_share(ds, n: int = 20000) -> float:
    """Smallest share of a latent's variance that its own exogenous noise explains (the squared
    correlation of z_k and noise_k over ``n`` samples): small for nearly deterministic nodes."""
    import numpy as np

    s = ds.sample_latents(n, np.random.default_rng(0))
    z, e = np.asarray(s.z), np.asarray(s.noise)[:, ds.scm.observed]
    return float(min(np.corrcoef(z[:, k], e[:, k])[0, 1] ** 2 for k in range(z.shape[1])))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--latents", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--restart", type=int, default=0, help="run index r (training seed seed + 1000 r)")
    p.add_argument("--recon-weight", type=float, default=None, help="default: the runner's")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--known-targets", action="store_true", help="CauCA's setting: the targets are given")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", required=True, help="JSON-lines file to append the result to")
    p.add_argument("--keep", default=None, help="folder to keep the trained model in (default: discarded)")
    a = p.parse_args()
    torch.set_num_threads(1)
    options = {} if a.recon_weight is None else {"recon_weight": a.recon_weight}
    if a.known_targets:
        options["known_targets"] = True
    setting = B.make_setting("interventional", latents=a.latents, seed=a.seed, steps=a.steps, model_options=options)
    ds = make_dataset("synthetic", **setting.data)
    overrides = B.train_overrides(setting)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        d = a.keep or tmp
        train("interventional", "synthetic", data_options=setting.data, steps=setting.steps,
              seed=a.seed + 1000 * a.restart, out_dir=d, overrides=overrides, device=a.device, progress=False)
        model = load_model(d, device=a.device)
    balance = B._selection_score("interventional", model, ds, setting, a.seed)
    g = B._graph_results(model, ds, setting, B.evaluation_seed(a.seed))  # the runner's evaluation pairs
    row = json.dumps({"latents": a.latents, "seed": a.seed, "restart": a.restart, "device": a.device,
                      "recon_weight": setting.model.get("recon_weight"), "known_targets": a.known_targets,
                      "steps": setting.steps, "shd": int(g["shd"]), "target_balance": float(balance),
                      "mcc": mcc_score(g["z_true"], g["z_hat"]), "target_accuracy": g["target_accuracy"],
                      "min_noise_share": min_noise_share(ds), "seconds": time.perf_counter() - t0})
    with open(a.out, "a") as f:  # one short line per run: many runs may append to one file
        f.write(row + "\n")


if __name__ == "__main__":
    main()
