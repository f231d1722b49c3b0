"""Misspecification table: every identifiable method with its assumption met and with each
break of its contract (crlkit.identify.misspecify), 3 seeds, CPU-sized.

    python bench/bench_misspecify.py --out runs/bench_misspecify --threads 1
    python bench/bench_misspecify.py --combine DIR... --out runs/misspecify_table --json bench/results/misspecify.json

CPU size (bench/RESULTS_identify.md, "Assumption contracts"): n = 5 latents for every method,
2-layer leaky-ReLU mixing, batch 128, the steps per method below, 1,000 held-out samples; the GPU-sized
version is the same command with --full (each method's paper setting and steps).
"""

from __future__ import annotations

import argparse
import time

import torch

from crlkit.identify.misspecify import BREAKS, run_misspecify

CPU_STEPS = {"interventional": 400, "iflow": 400, "content_style": 300, "contrastive": 300, "ivae": 300}
CPU_BATCH = 128
CPU_EVAL = 1000


def _clean(v):
    """JSON-safe value: NaN becomes null (strict JSON has no NaN)."""
    return None if isinstance(v, float) and v != v else v


def combine(dirs: list[str], out: str, json_path: str | None = None) -> None:
    import csv
    import datetime
    import json
    import platform
    import sys
    from pathlib import Path

    from crlkit.identify.misspecify import summarize, write_outputs

    rows: dict[tuple, dict] = {}
    for d in dirs:
        with open(Path(d) / "misspecify.csv", newline="") as f:
            for r in csv.DictReader(f):
                for k in ("mcc", "baseline_mcc", "mcc_minus_baseline", "train_seconds"):
                    r[k] = float(r[k])
                r["seed"] = int(r["seed"])
                res = Path(d) / "runs" / f"{r['method']}_{r['break']}_s{r['seed']}" / "results.json"
                full = json.loads(res.read_text()) if res.exists() else {}
                r["r2_content"] = float(full.get("r2_content", r.get("r2_content") or "nan"))
                r["r2_style"] = float(full.get("r2_style", r.get("r2_style") or "nan"))
                rows.setdefault((r["method"], r["break"], r["seed"]), r)
    order = list(CPU_STEPS)
    merged = sorted(rows.values(), key=lambda r: (order.index(r["method"]) if r["method"] in order else 99,
                                                  r["break"] != "met"))
    Path(out).mkdir(parents=True, exist_ok=True)
    write_outputs(merged, Path(out))
    print((Path(out) / "misspecify.md").read_text())
    if json_path:  # the machine-readable table the demo page renders (bench/results/misspecify.json)
        obj = {"command": "python " + " ".join(sys.argv),
               "inputs": [str(d) for d in dirs],
               "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
               "combined_on": f"{platform.machine()} CPU, python {platform.python_version()}, "
                              f"torch {torch.__version__}",
               "summary": [{k: _clean(v) for k, v in r.items()} for r in summarize(merged)],
               "runs": [{k: _clean(v) for k, v in r.items()} for r in merged]}
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(obj, indent=1) + "\n")
        print(f"wrote {json_path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/bench_misspecify", help="output directory")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default 0 1 2)")
    p.add_argument("--methods", nargs="+", default=list(CPU_STEPS), help="methods (default: all identifiable)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--steps", type=int, default=None, help="replace the CPU steps of every method run")
    p.add_argument("--batch-size", type=int, default=CPU_BATCH, help=f"batch size of the CPU runs (default {CPU_BATCH})")
    p.add_argument("--full", action="store_true", help="each method's paper setting and steps (GPU-sized)")
    p.add_argument("--combine", nargs="+", default=None, metavar="DIR",
                   help="instead of running: merge the misspecify.csv of these directories (runs split over "
                        "processes) into --out, keeping each (method, break, seed) once")
    p.add_argument("--json", default=None, metavar="PATH",
                   help="with --combine: also write the table (summary and every run, with this command) as JSON, "
                        "e.g. bench/results/misspecify.json, which crlkit demo renders")
    args = p.parse_args()
    if args.combine:
        combine(args.combine, args.out, args.json)
        return
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    if args.full:
        rows = run_misspecify(args.out, methods=args.methods, seeds=args.seeds, threads=args.threads, log=print,
                              eval_samples=5000, nonlinear_max_train=1000)
    else:
        rows = run_misspecify(args.out, methods=args.methods, seeds=args.seeds, threads=args.threads, log=print,
                              steps={m: args.steps or CPU_STEPS[m] for m in args.methods},
                              batch_size=args.batch_size, latents=5, mixing_layers=2,
                              eval_samples=CPU_EVAL, nonlinear_max_train=200)
    print(f"{len(rows)} runs in {time.perf_counter() - t0:.0f} s; wrote {args.out}/misspecify.{{csv,md,png}}")


if __name__ == "__main__":
    main()
