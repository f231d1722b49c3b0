"""Overhead of `crlkit study` against the same trainings run by hand (issue 21 target: <= 1.1x).

The study: 8 beta_vae runs (beta in {1, 2, 4, 8} x seeds {0, 1}) x 300 steps on dSprites at
batch 64, each scored with MIG on 1,000 / 500 samples, on a local Ray started and stopped by
crlkit. By hand: the same runs (the same ``execute_run``: train + score) in a process pool of
``--workers`` processes with one torch thread each, the best parallelism for a 2-core machine
(small models run fastest on one thread per core; bench/RESULTS.md). Both walls include
starting the workers (processes, imports; for the study also Ray).

    OMP_NUM_THREADS=1 python bench/bench_study.py --out /tmp/bench_study            # 8 x 300 steps
    OMP_NUM_THREADS=1 python bench/bench_study.py --steps 50 --out /tmp/bench_quick
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import shutil
import time
from pathlib import Path


def _grid(steps: int, dataset: str, batch: int) -> dict:
    return {"dataset": dataset, "data_set": {}, "steps": steps, "set": {"batch_size": batch},
            "models": {"beta_vae": {"beta": [1, 2, 4, 8]}}, "seeds": [0, 1], "metrics": ["mig"],
            "evaluation": {"n_train": 1000, "n_test": 500}}


def _by_hand_one(args):
    import torch

    torch.set_num_threads(1)
    from crlkit.study.execute import execute_run

    config, run_dir = args
    t = time.perf_counter()
    execute_run(config, run_dir, threads=1)
    return time.perf_counter() - t


def by_hand(grid: dict, out: Path, workers: int) -> float:
    from crlkit.study.grid import load_grid

    runs = load_grid(grid).runs()
    t0 = time.perf_counter()
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        list(pool.map(_by_hand_one, [(r.config, out / r.run_id) for r in runs]))
    return time.perf_counter() - t0


def with_study(grid: dict, out: Path, workers: int) -> float:
    import crlkit.study

    t0 = time.perf_counter()
    res = crlkit.study.run(grid, out, num_cpus=workers, max_concurrent=workers, log=lambda s: None)
    assert res["trained"] == res["planned"], res
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--dataset", default="dsprites")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=os.cpu_count())
    p.add_argument("--out", required=True)
    args = p.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    grid = _grid(args.steps, args.dataset, args.batch_size)
    hand = by_hand(grid, out / "by_hand", args.workers)
    print(f"by hand ({args.workers} processes x 1 thread): {hand:.1f} s", flush=True)
    study = with_study(grid, out / "study", args.workers)
    print(f"crlkit study (local Ray, {args.workers} CPUs): {study:.1f} s", flush=True)
    result = {"runs": 8, "steps": args.steps, "dataset": args.dataset, "batch_size": args.batch_size,
              "workers": args.workers, "by_hand_s": hand, "study_s": study, "ratio": study / hand,
              "load_average": os.getloadavg()}
    print(json.dumps(result, indent=2))
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
