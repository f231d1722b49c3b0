"""Benchmark grid of the identifiable CRL methods, run by hand: the figures of bench/RESULTS_identify.md.

Runs each setting through :func:`crlkit.identify.run_identify` (the shared trainer, held-out
scoring, random-rotation baselines) in ``--jobs`` parallel worker processes with one torch
thread each, and writes ``OUT/grid.csv`` and ``OUT/grid.md``.

    .venv/bin/python bench/bench_identify.py --grid default --jobs 1 --out runs/bench_identify
    .venv/bin/python bench/bench_identify.py --grid quick --out runs/bench_identify_quick
    .venv/bin/python bench/bench_identify.py --grid seeds --jobs 2 --out runs/bench_identify_seeds   # ~1 h on 2 cores

Grids: ``cpu`` (the subset recorded in bench/RESULTS_identify.md), ``default`` (several seeds, latent and segment counts per method: the table recorded
in bench/RESULTS_identify.md), ``quick`` (one small run per method), ``seeds`` (the multi-seed checks at the CLI defaults,
including the xtanh iVAE data), ``tune-ivae`` and
``tune-contrastive`` (the hyperparameter sweeps behind the chosen defaults).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _grid(name: str) -> list[dict]:
    g: list[dict] = []
    if name == "quick":
        return [
            dict(label="ivae linear", method="ivae", latents=5, segments=40, mixing_layers=1, steps=3000),
            dict(label="vae linear", method="vae", latents=5, segments=40, mixing_layers=1, steps=3000),
            dict(label="contrastive", method="contrastive", latents=5, mixing_layers=2, steps=2000),
            dict(label="content_style", method="content_style", latents=6, mixing_layers=2, steps=1500),
            dict(label="interventional", method="interventional", latents=5, steps=2000),
        ]
    if name == "cpu":  # what a shared 2-core CPU affords in ~40 minutes (recorded in RESULTS_identify.md)
        g += [dict(label="ivae linear n5 M40", method="ivae", latents=5, segments=40, mixing_layers=1, steps=3000),
              dict(label="ivae 2-layer n4 M30", method="ivae", latents=4, segments=30, mixing_layers=2, steps=8000),
              dict(label="ivae 3-layer n5 M40", method="ivae", latents=5, segments=40, mixing_layers=3, steps=8000),
              dict(label="vae linear n5 M40", method="vae", latents=5, segments=40, mixing_layers=1, steps=3000),
              dict(label="vae 2-layer n4 M30", method="vae", latents=4, segments=30, mixing_layers=2, steps=4000),
              dict(label="vae 3-layer n5 M40", method="vae", latents=5, segments=40, mixing_layers=3, steps=4000),
              dict(label="ivae linear n3 M10", method="ivae", latents=3, segments=10, mixing_layers=1, steps=2000,
                   seed=1),
              dict(label="contrastive laplace n10 L3", method="contrastive", latents=10, mixing_layers=3,
                   steps=3000),
              dict(label="contrastive gaussian n6 L3", method="contrastive", latents=6, mixing_layers=3,
                   steps=1500, conditional="gaussian"),
              dict(label="content_style 5+5 L3", method="content_style", latents=10, mixing_layers=3, steps=2000)]
        for seed, n in ((0, 5), (1, 5), (2, 4)):
            g.append(dict(label=f"interventional {n} nodes L2", method="interventional", latents=n, seed=seed,
                          steps=1200))
        return g
    if name == "default":
        for seed in (0, 1):
            for m in ("ivae", "vae", "beta_vae"):
                g.append(dict(label=f"{m} linear n5 M40", method=m, latents=5, segments=40, mixing_layers=1,
                              steps=4000, seed=seed))
                g.append(dict(label=f"{m} 2-layer n4 M30", method=m, latents=4, segments=30, mixing_layers=2,
                              steps=10000, seed=seed))
                g.append(dict(label=f"{m} 3-layer n5 M40", method=m, latents=5, segments=40, mixing_layers=3,
                              steps=10000, seed=seed))
        g.append(dict(label="ivae linear n3 M10", method="ivae", latents=3, segments=10, mixing_layers=1,
                      steps=3000, seed=2))
        g.append(dict(label="ivae 2-layer n5 M20", method="ivae", latents=5, segments=20, mixing_layers=2,
                      steps=10000, seed=2))
        for seed in (0, 1):
            g.append(dict(label="contrastive laplace n10 L3", method="contrastive", latents=10, mixing_layers=3,
                          steps=6000, seed=seed))
        g.append(dict(label="contrastive laplace n6 L3", method="contrastive", latents=6, mixing_layers=3,
                      steps=6000, seed=2))
        g.append(dict(label="contrastive gaussian n10 L3", method="contrastive", latents=10, mixing_layers=3,
                      steps=6000, seed=0, conditional="gaussian"))
        for seed in (0, 1):
            g.append(dict(label="content_style 5+5 L3", method="content_style", latents=10, mixing_layers=3,
                          steps=3000, seed=seed))
        g.append(dict(label="content_style 4+4 L3", method="content_style", latents=8, mixing_layers=3,
                      steps=3000, seed=2))
        for seed in (0, 1, 2):
            g.append(dict(label="interventional 5 nodes L2", method="interventional", latents=5, steps=4000,
                          seed=seed))
        g.append(dict(label="interventional 4 nodes L2", method="interventional", latents=4, steps=4000, seed=3))
        return g
    if name == "seeds":  # the multi-seed checks at the CLI defaults (RESULTS_identify.md, 2026-11-27 night)
        xt = {"mixing_activation": "xtanh"}
        for seed in (0, 1, 2, 3):
            g.append(dict(label="ivae 2-layer n4 M30", method="ivae", latents=4, segments=30, mixing_layers=2,
                          seed=seed))
        for seed in (0, 1):
            g.append(dict(label="ivae 3-layer n5 M40", method="ivae", seed=seed))
            g.append(dict(label="ivae xtanh 3-layer n5 M40", method="ivae", seed=seed, data_options=xt))
            g.append(dict(label="ivae xtanh 2-layer n4 M30", method="ivae", latents=4, segments=30,
                          mixing_layers=2, seed=seed, data_options=xt))
            g.append(dict(label="vae xtanh 3-layer n5 M40", method="vae", seed=seed, steps=4000, data_options=xt))
        g.append(dict(label="ivae xtanh 3-layer n5 M20", method="ivae", segments=20, seed=3, data_options=xt))
        g.append(dict(label="ivae xtanh 3-layer n6 M50", method="ivae", latents=6, segments=50, seed=2,
                      data_options=xt))
        for seed, n in ((1, 10), (2, 6)):
            g.append(dict(label=f"contrastive laplace n{n} L3", method="contrastive", latents=n, seed=seed))
        for seed, n in ((0, 10), (1, 10), (2, 10), (3, 8)):
            g.append(dict(label=f"content_style n{n} L3", method="content_style", latents=n, seed=seed))
        for seed in range(7):
            g.append(dict(label="interventional 5 nodes L2", method="interventional", seed=seed))
        g.append(dict(label="interventional 6 nodes L2", method="interventional", latents=6, seed=3))
        return g
    if name == "tune-ivae":
        for layers, n, m in ((2, 4, 30), (3, 5, 40)):
            for lr in (1e-2, 3e-3):
                for steps in (5000, 15000):
                    for hidden in (64, 128):
                        g.append(dict(label=f"ivae L{layers} lr{lr} s{steps} h{hidden}", method="ivae", latents=n,
                                      segments=m, mixing_layers=layers, steps=steps, lr=lr,
                                      model_options={"hidden": hidden}))
            for bs in (256,):
                g.append(dict(label=f"ivae L{layers} bs{bs}", method="ivae", latents=n, segments=m,
                              mixing_layers=layers, steps=10000, lr=3e-3, batch_size=bs))
            g.append(dict(label=f"ivae L{layers} no-whiten", method="ivae", latents=n, segments=m,
                          mixing_layers=layers, steps=10000, model_options={"whiten": False}))
            g.append(dict(label=f"ivae L{layers} seed1", method="ivae", latents=n, segments=m,
                          mixing_layers=layers, steps=10000, seed=1))
        return g
    if name == "tune-contrastive":
        for bs in (512, 1024):
            for lr in (1e-3, 3e-4):
                for tau in (1.0, 0.3):
                    g.append(dict(label=f"cl bs{bs} lr{lr} tau{tau}", method="contrastive", latents=10,
                                  mixing_layers=3, steps=6000, batch_size=bs, lr=lr, model_options={"tau": tau}))
        g.append(dict(label="cl wide", method="contrastive", latents=10, mixing_layers=3, steps=6000,
                      batch_size=1024, model_options={"hidden": 512}))
        g.append(dict(label="cs 5+5", method="content_style", latents=10, mixing_layers=3, steps=3000))
        g.append(dict(label="cs 5+5 L1", method="content_style", latents=10, mixing_layers=3, steps=3000,
                      model_options={"p": 1.0}))
        return g
    raise SystemExit(f"unknown grid {name!r}; valid: cpu, default, quick, seeds, tune-ivae, tune-contrastive")


def _run_one(args: tuple[dict, str, str]) -> dict:
    spec, out, device = args
    import torch

    torch.set_num_threads(1)
    from crlkit.identify import run_identify

    spec = dict(spec)
    label = spec.pop("label")
    method = spec.pop("method")
    safe = "".join(c if c.isalnum() else "_" for c in label) + f"_s{spec.get('seed', 0)}"
    t0 = time.perf_counter()
    try:
        res = run_identify(method, out_dir=Path(out) / "runs" / safe, device=device, **spec)
    except Exception as e:  # a failed setting is a row of the table, not the end of the grid
        return {"label": label, "method": method, "error": repr(e)}
    row = {"label": label, "method": method, "seed": res["seed"], "latents": res["latents"],
           "segments": res["segments"], "layers": res["mixing_layers"], "steps": res["steps"],
           "mcc": res["mcc"], "baseline_mcc": res["baseline_mcc"], "r2_linear": res["r2_linear"],
           "r2_nonlinear": res["r2_nonlinear"], "r2_content": res.get("r2_content"),
           "r2_style": res.get("r2_style"), "shd": res.get("shd"), "shd_empty": res.get("shd_empty_graph"),
           "train_s": res["train_seconds"], "total_s": time.perf_counter() - t0}
    print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", default="quick")
    p.add_argument("--jobs", type=int, default=1, help="parallel worker processes (one torch thread each)")
    p.add_argument("--out", default="runs/bench_identify")
    p.add_argument("--device", default="cpu")
    p.add_argument("--only", default=None, help="run only rows whose label contains this text")
    p.add_argument("--steps", type=int, default=None, help="override every row's steps (smoke tests)")
    p.add_argument("--start", type=int, default=0, help="skip the first START rows (continue a grid by hand)")
    a = p.parse_args(argv)
    grid = _grid(a.grid)
    if a.only:
        grid = [g for g in grid if a.only in g["label"]]
    grid = grid[a.start:]
    if a.steps:
        grid = [{**g, "steps": a.steps} for g in grid]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    jobs = [(g, str(out), a.device) for g in grid]
    if a.jobs > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(a.jobs) as pool:
            rows = pool.map(_run_one, jobs, chunksize=1)
    else:
        rows = [_run_one(j) for j in jobs]
    import pandas as pd

    from crlkit.identify.compare import markdown_table
    from crlkit.report.html import atomic_write_text

    df = pd.DataFrame(rows)
    buf = io.StringIO()
    df.to_csv(buf, index=False, float_format="%.4f")
    atomic_write_text(out / "grid.csv", buf.getvalue())
    cols = tuple(df.columns)
    atomic_write_text(out / "grid.md", markdown_table(rows, cols) + "\n")
    print(markdown_table(rows, cols))
    print(f"{len(rows)} runs in {time.perf_counter() - t0:.0f} s; wrote {out / 'grid.csv'} and {out / 'grid.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
