"""Cross-check crlkit's MIG, SAP and DCI against disent 0.8.0 on fixed representations, and
time the default suite at disentanglement_lib's sample sizes.

    .venv/bin/python bench/bench_metrics.py                  # agreement, 1,000 / 1,000 samples
    .venv/bin/python bench/bench_metrics.py --n-train 10000 --n-test 5000 --reps mixed   # suite at 10,000 / 5,000
    DISENT_PYTHON=/tmp/disent-venv/bin/python .venv/bin/python bench/bench_metrics.py

disent runs in its own venv (it needs torch/torchvision builds of its own); see
bench/RESULTS_metrics.md for how it was installed. Without it only crlkit's values print.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
SIZES = (3, 6, 40, 32, 32)  # dSprites: shape, scale, orientation, posX, posY
DISENT_PYTHON = os.environ.get("DISENT_PYTHON", "/tmp/disent-venv/bin/python")
HERE = Path(__file__).resolve().parent


def dsprites_like(name: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed 10-latent representations of uniformly sampled dSprites factors.

    - ``mixed``: every latent a noisy linear mixture of all factors (entangled, noisy)
    - ``disentangled``: latents 0-4 each a noisy monotone function of one factor, 5-9 noise
    - ``partial``: shape/scale/position captured, orientation lost, two latents share posX/posY
    """
    rng = np.random.default_rng(seed)
    f = np.stack([rng.integers(0, s, size=n) for s in SIZES], axis=1)
    u = (f + 0.5) / np.array(SIZES)                                  # factor values in (0, 1)
    mix = np.random.default_rng(100).standard_normal((5, 10))
    if name == "mixed":
        z = u @ (0.3 * mix + np.eye(5, 10)) + 0.05 * rng.standard_normal((n, 10))
    elif name == "disentangled":
        z = np.column_stack([np.tanh(3 * (u - 0.5)) + 0.03 * rng.standard_normal((n, 5)),
                             rng.standard_normal((n, 5))])
    elif name == "partial":
        z = np.column_stack([u[:, 0], u[:, 1], 0.7 * u[:, 3] + 0.3 * u[:, 4], 0.3 * u[:, 3] + 0.7 * u[:, 4],
                             u[:, 3] - u[:, 4]]) + 0.02 * rng.standard_normal((n, 5))
        z = np.column_stack([z, 0.1 * rng.standard_normal((n, 5))])
    else:
        raise ValueError(name)
    return z, f


REPRESENTATIONS = ("mixed", "disentangled", "partial")


def crlkit_scores(c, f, ct, ft, metrics=("mig", "sap", "dci"), dci_bins=None) -> dict:
    from crlkit.metrics import dci_scores, mig_score, sap_score

    out = {}
    if "mig" in metrics:
        t, u = time.perf_counter(), time.process_time()
        out["mig"] = {"value": mig_score(c, f), "seconds": time.perf_counter() - t,
                      "cpu_seconds": time.process_time() - u}
    if "sap" in metrics:
        t, u = time.perf_counter(), time.process_time()
        out["sap"] = {"value": sap_score(c, f, ct, ft), "seconds": time.perf_counter() - t,
                      "cpu_seconds": time.process_time() - u}
    if "dci" in metrics:
        t, u = time.perf_counter(), time.process_time()
        r = dci_scores(c, f, ct, ft, max_bins=dci_bins)
        secs, cpu = time.perf_counter() - t, time.process_time() - u
        out["dci_disentanglement"] = {"value": r["disentanglement"], "seconds": secs, "cpu_seconds": cpu}
        out["dci_completeness"] = {"value": r["completeness"], "seconds": secs, "cpu_seconds": cpu}
        out["dci_informativeness_test"] = {"value": r["informativeness"], "seconds": secs, "cpu_seconds": cpu}
    return out


def disent_scores(arrays: dict, metrics) -> dict | None:
    if not Path(DISENT_PYTHON).exists():
        print(f"(disent not found at {DISENT_PYTHON}; set DISENT_PYTHON)")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.json"
        np.savez(src, **arrays)
        subprocess.run([DISENT_PYTHON, str(HERE / "disent_reference.py"), str(src), str(dst), *metrics],
                       check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        return json.loads(dst.read_text())


def arrays_for(names, n_train, n_test):
    out = {}
    for i, name in enumerate(names):
        c, f = dsprites_like(name, n_train + n_test, seed=i)
        out[f"{name}__codes"], out[f"{name}__factors"] = c[:n_train], f[:n_train]
        out[f"{name}__codes_test"], out[f"{name}__factors_test"] = c[n_train:], f[n_train:]
    return out


def main() -> int:
    import torch

    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--reps", nargs="+", default=list(REPRESENTATIONS))
    ap.add_argument("--metrics", nargs="+", default=["mig", "sap", "dci"])
    ap.add_argument("--dci-bins", type=int, default=None, help="quantile bins for crlkit's DCI (default exact)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--only", choices=["crlkit", "disent"], default=None, help="run one side only")
    args = ap.parse_args()
    arrays = arrays_for(args.reps, args.n_train, args.n_test)
    ours = {}
    for name in (args.reps if args.only != "disent" else []):
        a = [arrays[f"{name}__{k}"] for k in ("codes", "factors", "codes_test", "factors_test")]
        ours[name] = crlkit_scores(*a, metrics=args.metrics, dci_bins=args.dci_bins)
    ref = disent_scores(arrays, args.metrics) if args.only != "crlkit" else None
    if args.only == "disent":
        ours = {name: {k: {"value": nan_, "seconds": nan_, "cpu_seconds": nan_} for k in ref[name]}
                for name in args.reps for nan_ in [float("nan")]} if ref else {}
    worst = 0.0
    print(f"\n{args.n_train} train / {args.n_test} test samples, 10 latents, dSprites factors {SIZES}")
    print(f"{'representation':<14} {'metric':<26} {'crlkit':>8} {'disent':>8} {'|diff|':>7} "
          f"{'crlkit s':>9} {'disent s':>9} {'crlkit cpu':>10} {'disent cpu':>10}")
    nan = float("nan")
    for name in args.reps:
        for k, v in ours[name].items():
            r = ref[name].get(k) if ref else None
            diff = abs(v["value"] - r["value"]) if r else nan
            if r:
                worst = max(worst, diff)
            print(f"{name:<14} {k:<26} {v['value']:8.4f} {r['value'] if r else nan:8.4f} {diff:7.4f} "
                  f"{v['seconds']:9.2f} {r['seconds'] if r else nan:9.2f} {v['cpu_seconds']:10.2f} "
                  f"{r.get('cpu_seconds', nan) if r else nan:10.2f}")
    if ref and args.only is None:
        print(f"largest |crlkit - disent| = {worst:.4f} ({'within' if worst <= 0.03 else 'OUTSIDE'} 0.03)")
    if args.json:
        Path(args.json).write_text(json.dumps({"crlkit": ours, "disent": ref}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
