"""Grouped training on one GPU (issue 22): K standard-architecture beta_vae models on dSprites
rendered on the GPU, batch 64 each, against the plain PyTorch vmap of the same K; and the loss
curves of grouped and single runs of the same seeds after 5,000 steps (fp32 and bf16).

Run from the repository root on a CUDA machine (about 5-7 minutes on an H100/H200; every
part has its own time guard so the whole stays under 10 minutes):

    python3 bench/bench_grouped_gpu.py                # one JSON summary on stdout
    python3 bench/bench_grouped_gpu.py --ks 32 64 128 --steps 200 --curve-steps 5000

Parts (in this order: throughput at the first K, the curves, the larger K, the rest):
1. throughput, for each K: crlkit's grouped step (``_Group.next_batch`` + ``_Group.step``,
   exactly what ``train_many`` runs per step; data drawn per member and rendered on the GPU
   in one call, each member's noise from its own generator) in fp32 and bf16, and the
   plain vmap loop (``bench/bench_grouped.py: plain_vmap``) in fp32 and bf16; 20 warm-up
   steps, then ``--steps`` timed steps; per-model peak memory of the crlkit group;
2. end to end: ``train_many(..., mode="grouped")`` for the first K, files included;
3. the group size ``train_many`` picks when none is given (80% of free memory);
4. loss curves: ``--curve-seeds`` single runs (``crlkit.train.train``) and one grouped run of
   the same seeds in fp32 and in bf16, ``--curve-steps`` steps each; the final loss (mean of the
   last 500 steps) of each member against its single run, and the seed-to-seed spread
   (standard deviation of the single runs' final losses);
5. if time is left, the plain vmap under ``torch.compile`` (first K, fp32);
6. the Locatello-size study (1,800 models x 300,000 steps x 64 images = 34.56 G images) in
   GPU-days at the best measured crlkit rate.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

STUDY_IMAGES = 1800 * 300_000 * 64  # six methods x six values x 50 seeds, 300k steps, batch 64


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def crlkit_group(ds, k: int, steps: int, precision: str, *, warmup: int = 20, device: str = "cuda") -> dict:
    """images/s of crlkit's grouped step for K members (seeds 0..K-1), and peak MB per model."""
    from crlkit.train.grouped import _Group
    from crlkit.train.trainer import resolve_settings

    dev = torch.device(device)
    cuda = dev.type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    base = torch.cuda.memory_allocated(dev) if cuda else 0
    settings = [resolve_settings("beta_vae", {"batch_size": 64})] * k
    group = _Group(settings, list(range(k)), ds, dev, precision=precision)
    reason = group.why_not()
    if reason is not None:
        return {"error": reason}
    sync = (lambda: torch.cuda.synchronize(dev)) if cuda else (lambda: None)
    for step in range(warmup):
        group.step(group.next_batch(), step)
    sync()
    t0 = time.perf_counter()
    for step in range(warmup, warmup + steps):
        group.step(group.next_batch(), step)
    sync()
    seconds = time.perf_counter() - t0
    peak = round((torch.cuda.max_memory_allocated(dev) - base) / k / 2**20, 1) if cuda else None
    fast = group._fast_render
    del group
    return {"img_s": round(k * 64 * steps / seconds), "peak_mb_per_model": peak, "one_call_render": fast}


def curves(ds_name: str, seeds: list[int], steps: int, out: str, device: str = "cuda") -> dict:
    from crlkit.train import train, train_many

    opts = {"batch_size": 64, "log_every": 100, "checkpoint_every": 10**9}
    tail = min(500, steps)
    final = lambda path: float(np.mean(np.atleast_1d(np.loadtxt(os.path.join(path, "log.csv"), delimiter=",",
                                                                skiprows=1, usecols=1))[-tail:]))
    single = {}
    t0 = time.perf_counter()
    for s in seeds:
        train("beta_vae", ds_name, steps=steps, seed=s, out_dir=f"{out}/single/seed_{s}", overrides=opts,
              device=device, progress=False)
        single[s] = final(f"{out}/single/seed_{s}")
    res = {"seeds": seeds, "steps": steps, "single_final_loss": single,
           "seed_spread_std": float(np.std(list(single.values()), ddof=1)), "single_seconds": time.perf_counter() - t0}
    for precision in ("fp32", "bf16"):
        t0 = time.perf_counter()
        train_many("beta_vae", ds_name, seeds=seeds, steps=steps, out_dir=f"{out}/{precision}", overrides=opts,
                   device=device, mode="grouped", precision=precision, progress=False)
        g = {s: final(f"{out}/{precision}/seed_{s}") for s in seeds}
        diff = {s: g[s] - single[s] for s in seeds}
        res[precision] = {"final_loss": g, "minus_single": diff, "seconds": time.perf_counter() - t0,
                          "within_spread": bool(all(abs(d) <= res["seed_spread_std"] for d in diff.values()))}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ks", type=int, nargs="+", default=[32, 64, 128], help="group sizes (default 32 64 128)")
    ap.add_argument("--steps", type=int, default=200, help="timed steps per throughput figure (default 200)")
    ap.add_argument("--curve-steps", type=int, default=5000, help="steps of the loss-curve runs (default 5000)")
    ap.add_argument("--curve-seeds", type=int, default=4, help="seeds of the loss-curve runs (default 4)")
    ap.add_argument("--budget", type=float, default=540, help="seconds after which optional parts are skipped")
    ap.add_argument("--device", default="cuda",
                    help="cuda (default); cpu runs the same parts, for checking the script with tiny sizes")
    args = ap.parse_args()
    dev = args.device
    if dev.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("bench_grouped_gpu.py needs a CUDA device (or --device cpu with tiny sizes)")
    cuda = dev.startswith("cuda")
    t_start = time.perf_counter()
    left = lambda: args.budget - (time.perf_counter() - t_start)
    from bench.bench_grouped import plain_vmap
    from crlkit.data import make_dataset

    ds = make_dataset("dsprites")
    out = {"bench": "grouped_gpu", "device": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__,
           "throughput": [], "target_img_s": 400_000}
    torch.backends.cudnn.benchmark = True

    def throughput(k: int) -> None:
        row = {"k": k}
        for precision in ("fp32", "bf16"):
            try:
                row[f"crlkit_{precision}"] = crlkit_group(ds, k, args.steps, precision, device=dev,
                                                            warmup=20 if cuda else 1)
            except Exception as e:  # e.g. out of memory at large K: record and go on
                row[f"crlkit_{precision}"] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
            try:
                row[f"plain_vmap_{precision}"] = round(plain_vmap(ds, k, args.steps, dev, bf16=precision == "bf16",
                                                                 warmup=20 if cuda else 1))
            except Exception as e:
                row[f"plain_vmap_{precision}"] = f"{type(e).__name__}: {str(e)[:200]}"
            if cuda:
                torch.cuda.empty_cache()
        out["throughput"].append(row)
        log(json.dumps(row))

    from crlkit.train import train_many
    from crlkit.train.grouped import _peak_memory_per_model
    from crlkit.train.trainer import resolve_settings

    throughput(args.ks[0])  # the target's figure first, then the curves, then larger groups
    with tempfile.TemporaryDirectory() as d:
        if left() > 200:
            try:
                out["curves"] = curves("dsprites", list(range(args.curve_seeds)), args.curve_steps, d + "/curves", dev)
            except Exception as e:
                out["curves"] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
            log(json.dumps(out["curves"]))
        for k in args.ks[1:]:
            if left() < 120:
                log(f"skipping K={k}: {left():.0f} s left")
                break
            throughput(k)
        if left() > 90:
            k = args.ks[0]
            s = train_many("beta_vae", "dsprites", seeds=range(k), steps=args.steps, out_dir=d + "/e2e", device=dev,
                           mode="grouped", progress=False, overrides={"batch_size": 64, "checkpoint_every": 10**9})
            out["end_to_end"] = {"k": k, "steps": args.steps, **s[0]["group"]}
            log(json.dumps(out["end_to_end"]))
        if cuda:
            per_model = _peak_memory_per_model([resolve_settings("beta_vae", {"batch_size": 64})] * 2, [0, 1], ds,
                                               torch.device(dev), "fp32")
            free, total = torch.cuda.mem_get_info()
            out["auto_group_size"] = {"peak_mb_per_model_probe": round(per_model / 2**20, 1),
                                      "free_mb": free // 2**20, "k_that_fits": int(0.8 * free // per_model)}
    if cuda and left() > 240:  # does torch.compile pay for the plain vmap? (compile time excluded)
        try:
            k = args.ks[0]
            out["plain_vmap_compiled_fp32"] = {"k": k, "img_s": round(plain_vmap(ds, k, args.steps, dev, warmup=20,
                                                                                 compile=True))}
        except Exception as e:
            out["plain_vmap_compiled_fp32"] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
        log(json.dumps(out["plain_vmap_compiled_fp32"]))
    for p in ("fp32", "bf16"):  # bf16 counts only where its loss curves kept within the seed spread
        rates = [r[f"crlkit_{p}"]["img_s"] for r in out["throughput"] if "img_s" in r.get(f"crlkit_{p}", {})]
        if rates:
            best = max(rates)
            out[f"best_crlkit_img_s_{p}"] = best
            out[f"locatello_study_gpu_days_{p}"] = round(STUDY_IMAGES / best / 86400, 2)
            out[f"meets_target_{p}"] = best >= out["target_img_s"]
    out["seconds"] = round(time.perf_counter() - t_start, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
