"""Does iVAE on 3-layer leaky-ReLU mixing improve with a larger training budget?

One run per call, sized to a wall-clock budget: two short calibration runs measure steps/s on
this device (with whatever else shares it), then the real run gets ``steps = rate * seconds``
(rounded down to a multiple of 1,000, capped by ``--max-steps``) so that the learning-rate
schedule (cosine over the whole run) fits the budget. Prints one JSON line: the MCC, its
random-rotation baseline, the held-out ELBO, the steps and the seconds.

    python bench/ivae_budget.py --seed 0 --seconds 300 --hidden 512 --device cuda
    python bench/ivae_budget.py --seed 0 --seconds 20 --device cpu     # a dry run

Everything else is the library's iVAE setting (n = 5, 40 segments, 3 layers, slope 0.1), as
``crlkit identify --method ivae`` trains it, with one restart.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=300.0, help="wall-clock budget of the real run")
    ap.add_argument("--max-steps", type=int, default=400_000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--hidden", type=int, default=None)
    ap.add_argument("--depth", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--decoder-var", type=float, default=None)
    ap.add_argument("--posterior", default=None)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--calibration-steps", type=int, default=500)
    ap.add_argument("--out", default=None, help="folder for the run (default: a temporary one)")
    args = ap.parse_args()

    from crlkit.identify.benchmark import _heldout_elbo, make_setting, run_identify
    from crlkit.data import make_dataset
    from crlkit.train import load_model

    opts = {k: v for k, v in {"hidden": args.hidden, "depth": args.depth, "decoder_var": args.decoder_var,
                               "posterior": args.posterior}.items() if v is not None}
    common = dict(seed=args.seed, mixing_layers=args.layers, batch_size=args.batch_size, lr=args.lr,
                  model_options=opts, device=args.device, progress=False, restarts=1)
    out = args.out or tempfile.mkdtemp(prefix="ivae_budget_")
    # two calibration runs, c and 4c steps: the difference of their training times is the time of
    # 3c steps, without the imports, data, whitening, model building and checkpoints of each run
    # (a single 300-step run put those in the rate and sized the "300 s" runs at 50-130 s)
    t_cal = [run_identify("ivae", out_dir=os.path.join(out, f"calibration{k}"), steps=k * args.calibration_steps,
                          eval_samples=200, nonlinear_max_train=100, **common)["train_seconds"] for k in (1, 4)]
    rate = 3 * args.calibration_steps / max(t_cal[1] - t_cal[0], 1e-3)
    steps = int(min(args.max_steps, max(1000, rate * args.seconds // 1000 * 1000)))
    t1 = time.perf_counter()
    res = run_identify("ivae", out_dir=os.path.join(out, "run"), steps=steps, **common)
    seconds = time.perf_counter() - t1
    setting = make_setting("ivae", mixing_layers=args.layers, steps=steps, seed=args.seed,
                           batch_size=args.batch_size, lr=args.lr, model_options=opts)
    ds = make_dataset("synthetic", **setting.data)
    elbo = _heldout_elbo(load_model(res["model_dir"], device=args.device), ds, args.seed)
    print(json.dumps({"seed": args.seed, "device": args.device, "options": opts, "batch_size": setting.batch_size,
                      "lr": setting.lr, "layers": args.layers, "steps": steps,
                      "train_seconds": round(res["train_seconds"], 1), "seconds": round(seconds, 1),
                      "mcc": round(res["mcc"], 4), "baseline_mcc": round(res["baseline_mcc"], 4),
                      "r2_nonlinear": round(res["r2_nonlinear"], 4), "heldout_elbo": round(elbo, 4)}),
          flush=True)


if __name__ == "__main__":
    main()
