"""Interventional probe: refine a trained unknown-target stage 1 with self-assigned targets.

Trains (or reuses) the runner's default one-run model for each seed, then fine-tunes it with the
known-target InfoNCE where each pair's target is its own largest batch-standardised code change
(detached: a hard-EM step), after folding the linear unmixing of ``unmix_from_changes`` into the
encoder. Reports SHD / MCC / target accuracy / change share before and after.

    OMP_NUM_THREADS=1 .venv/bin/python bench/interventional_refine_probe.py '{"seeds": [9, 3], "steps": 2000}'
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from crlkit.data import make_dataset
from crlkit.data.samplers import make_sampler
from crlkit.identify.benchmark import (_graph_results, evaluate_representation, evaluation_seed, make_setting,
                                      run_identify)
from crlkit.models.identifiable import known_change_info_nce
from crlkit.train import load_model

torch.set_num_threads(1)
cfg = dict(seeds=[9, 3], steps=2000, lr=1e-3, tau=None, base="/tmp/int_refine", latents=None, fold=True,
           batch=256, soft=False)
cfg.update(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {})


def scores(model, ds, setting, seed):
    eval_seed = evaluation_seed(seed)
    g = _graph_results(model, ds, setting, eval_seed)
    r = evaluate_representation(g["z_true"], g["z_hat"], seed=seed)
    return {"shd": g["shd"], "mcc": round(r["mcc"], 4), "target_acc": round(g["target_accuracy"], 3),
            "change_share": round(g["change_share"], 3), "empty": g["shd_empty_graph"]}


for seed in cfg["seeds"]:
    out = Path(cfg["base"]) / f"s{seed}_n{cfg['latents'] or 5}"
    if not (out / "results.json").exists():
        run_identify("interventional", out_dir=out, seed=seed, latents=cfg["latents"], restarts=1, progress=False)
    setting = make_setting("interventional", seed=seed, latents=cfg["latents"])
    ds = make_dataset("synthetic", **setting.data)
    model = load_model(out / "model")
    before = scores(model, ds, setting, seed)
    t0 = time.perf_counter()
    n = setting.latents
    if cfg["fold"]:
        fit_seed = int(np.random.SeedSequence([int(seed), 17]).generate_state(1)[0])
        b = make_sampler("intervention_pair", ds, batch_size=5000, seed=fit_seed, **setting.sampler).next_batch()
        t = model.causal_variables(b["x"].numpy(), b["x2"].numpy())["unmixing"]
        lin = nn.Linear(n, n, bias=False)
        lin.weight.data = torch.as_tensor(t.T, dtype=torch.float32)
        model.encoder = nn.Sequential(model.encoder, lin)
    tau = cfg["tau"] or model.config.tau
    sampler = make_sampler("intervention_pair", ds, batch_size=cfg["batch"], seed=seed + 555, **setting.sampler)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg["steps"])
    model.train()
    for step in range(cfg["steps"]):
        batch = sampler.next_batch()
        h1, h2 = model.encode(torch.cat([batch["x"], batch["x2"]])).chunk(2)
        with torch.no_grad():
            target = ((h1 - h2).abs() / h1.std(0).clamp_min(1e-6)).argmax(1)
        loss = known_change_info_nce(h1, h2, target, tau=tau)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    after = scores(model, ds, setting, seed)
    print(json.dumps({"seed": seed, "latents": n, "before": before, "after": after,
                      "refine_s": round(time.perf_counter() - t0, 1), **{k: cfg[k] for k in ("steps", "lr", "fold")}}),
          flush=True)
