"""The "mini Locatello" on one GPU (issue 21 target, NOT MEASURED YET: no GPU in the session
that wrote it): 36 dSprites models (six methods x two values x three seeds) x 30,000 steps,
trained and scored with MIG, DCI, SAP, the FactorVAE and BetaVAE scores and UDR, within
10 minutes on one GPU; then the study report (findings beside Locatello et al.'s).

    python bench/bench_study_gpu.py --out studies/mini_locatello            # on the GPU machine
    python bench/bench_study_gpu.py --out /tmp/mini --steps 200 --dry-run   # check the grid only

Runs share the GPU through Ray's fractional GPUs (``--gpus-per-run``, default 1/12: twelve
runs at once, each with one host thread). The grouped path (K models of one architecture in
one process, ``crlkit.train.grouped.train_many``) would replace the single-run trials here
once it exists; until then this measures single runs packed by Ray. DCI uses the exact
boosted trees; ``--n-train`` / ``--n-test`` default to disentanglement_lib's 10,000 / 5,000.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

# Two values per method from Locatello et al.'s six (shared/REFERENCES.md): a weak and a strong one.
MODELS = {
    "beta_vae": {"beta": [1, 16]},
    "annealed_vae": {"c_max": [5, 50]},
    "factor_vae": {"gamma": [10, 100]},
    "dip_vae_i": {"lambda_od": [1, 20]},
    "dip_vae_ii": {"lambda_od": [1, 20]},
    "beta_tcvae": {"beta": [1, 10]},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=30000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--gpus-per-run", type=float, default=1 / 12)
    p.add_argument("--n-train", type=int, default=10000)
    p.add_argument("--n-test", type=int, default=5000)
    p.add_argument("--dry-run", action="store_true", help="validate the grid and print its size only")
    args = p.parse_args()
    import crlkit.study
    from crlkit.study.report import write_report

    grid = {"dataset": "dsprites", "data_set": {}, "steps": args.steps, "set": {"batch_size": 64},
            "models": MODELS, "seeds": args.seeds,
            "metrics": ["mig", "dci", "sap", "factor_vae", "beta_vae", "modularity_explicitness", "unsupervised",
                        "udr"],
            "evaluation": {"n_train": args.n_train, "n_test": args.n_test}}
    runs = crlkit.study.load_grid(grid).runs()
    print(f"{len(runs)} runs x {args.steps} steps")
    if args.dry_run:
        return
    t0 = time.perf_counter()
    res = crlkit.study.run(grid, args.out, device="cuda", gpus_per_run=args.gpus_per_run,
                           num_cpus=os.cpu_count())
    wall = time.perf_counter() - t0
    t1 = time.perf_counter()
    page = write_report(args.out)
    result = {**res, "wall_s": wall, "report_s": time.perf_counter() - t1, "report": str(page),
              "steps": args.steps, "gpus_per_run": args.gpus_per_run}
    print(json.dumps(result, indent=2))
    (Path(args.out) / "bench_result.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
