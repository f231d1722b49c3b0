"""One run of a study, without Ray: train through the common trainer into the run's
directory (resuming from its checkpoint when there is one), then score it.

:func:`execute_run` is what every Ray trial calls; the benchmark calls it by hand too.
"""

from __future__ import annotations

import inspect
import os
import platform
import socket
import time
from pathlib import Path

import numpy as np

#: seed of the inputs every run of a study is encoded on for UDR (shared across runs: UDR
#: compares the representations of the same inputs).
UDR_INPUT_SEED = 20200
UDR_SAMPLES = 1000


def _train(model, dataset, *, steps, seed, out_dir, overrides, data_options, device, allow_mismatch=False):
    """``crlkit.train.train`` into ``out_dir``: resume from its checkpoint when it has one; a
    directory without one (a run killed before its first checkpoint) is started afresh."""
    from crlkit.train import train

    out = Path(out_dir)
    resume = (out / "checkpoint.pt").exists()
    kwargs = dict(steps=steps, seed=seed, out_dir=out, overrides=overrides, data_options=data_options,
                  device=device, resume=resume, progress=False, allow_mismatch=bool(allow_mismatch))
    if not resume and "overwrite" in inspect.signature(train).parameters:
        kwargs["overwrite"] = True  # only this run ever writes its directory
    summary = train(model, dataset, **kwargs)
    return summary, resume


def _udr_codes(model, dataset, *, n: int, device: str) -> dict:
    """Posterior means of ``n`` shared inputs and each latent's mean KL to the prior."""
    import torch

    rng = np.random.default_rng(UDR_INPUT_SEED)
    factors = np.asarray(dataset.sample_factors(n, rng))
    x = np.asarray(dataset.observations_from_factors(factors, rng))
    means, kls = [], []
    model.eval()
    with torch.no_grad():
        for i in range(0, n, 256):
            xb = torch.as_tensor(np.ascontiguousarray(x[i:i + 256]), dtype=torch.float32, device=device)
            if hasattr(model, "encode_dist"):
                mu, logvar = model.encode_dist(xb)
                kls.append((0.5 * (mu ** 2 + logvar.exp() - logvar - 1.0)).double().cpu().numpy())
            else:
                mu = model.encode(xb)
            means.append(mu.double().cpu().numpy())
    mean = np.concatenate(means)
    kl = np.concatenate(kls).mean(axis=0) if kls else np.ones(mean.shape[1])
    return {"mean": mean.astype(np.float32), "kl": kl.astype(np.float32)}


def execute_run(config: dict, run_dir: str | os.PathLike, *, device: str = "cpu", threads: int = 1,
                udr: bool = False, allow_mismatch: bool = False) -> dict:
    """Train and score one run of a study (``config``: a :class:`crlkit.study.grid.Run` config).

    Returns ``{"metrics", "train_seconds", "eval_seconds", "resumed_from", "steps", "host",
    "started", "contract"}`` and, with ``udr``, ``"codes"`` (means and per-latent KL of the shared inputs).
    """
    import torch

    torch.set_num_threads(int(threads))  # the trial's CPU share
    started = time.time()
    if config["kind"] == "identify":
        out = _execute_identify(config, Path(run_dir), device=device, allow_mismatch=allow_mismatch)
    else:
        out = _execute_train(config, Path(run_dir), device=device, udr=udr, allow_mismatch=allow_mismatch)
    out.update(started=started, host=f"{socket.gethostname()} ({platform.machine()})")
    return out


def _execute_train(config: dict, run_dir: Path, *, device: str, udr: bool, allow_mismatch: bool = False) -> dict:
    from crlkit.metrics.evaluate import evaluate
    from crlkit.train import load_dataset, load_model

    t0 = time.perf_counter()
    summary, _ = _train(config["model"], config["dataset"], steps=config["steps"], seed=config["seed"],
                        out_dir=run_dir, overrides={**config["set"], **config["params"]},
                        data_options=config["data_set"], device=device, allow_mismatch=allow_mismatch)
    t1 = time.perf_counter()
    model = load_model(run_dir, device=device)
    dataset = load_dataset(run_dir)
    ev = config.get("evaluation") or {}
    metrics = evaluate(model, dataset, config["metrics"], seed=int(ev.get("seed", 0)),
                       n_train=int(ev.get("n_train", 10000)), n_test=int(ev.get("n_test", 5000)), device=device)
    out = {"metrics": metrics, "steps": summary["steps"], "resumed_from": summary.get("resumed_from", 0),
           "final_loss": summary.get("final_loss"), "contract": summary.get("contract")}
    if udr:
        out["codes"] = _udr_codes(model, dataset, n=int(ev.get("udr_samples", UDR_SAMPLES)), device=device)
    out["metrics"]["final_loss"] = float(summary.get("final_loss", float("nan")))
    out.update(train_seconds=t1 - t0, eval_seconds=time.perf_counter() - t1)
    return out


def _execute_identify(config: dict, run_dir: Path, *, device: str, allow_mismatch: bool = False) -> dict:
    from crlkit.data import make_dataset
    from crlkit.identify.benchmark import evaluate_representation, evaluation_seed, make_setting, train_overrides
    from crlkit.models._common import encode_in_batches
    from crlkit.train import load_model

    p = config["params"]
    setting = make_setting(config["model"], seed=config["seed"], steps=config["steps"], **p)
    t0 = time.perf_counter()
    summary, _ = _train(config["model"], "synthetic", steps=setting.steps, seed=setting.seed, out_dir=run_dir,
                        overrides=train_overrides(setting), data_options=setting.data, device=device,
                        allow_mismatch=allow_mismatch)
    t1 = time.perf_counter()
    model = load_model(run_dir, device=device)
    ds = make_dataset("synthetic", **setting.data)
    n = int((config.get("evaluation") or {}).get("eval_samples", 5000))
    z_true, x = ds.sample(n, np.random.default_rng(evaluation_seed(setting.seed)))
    z_hat = encode_in_batches(model, np.asarray(x))
    content = list(range(setting.sampler["content"])) if config["model"] == "content_style" else None
    scores = evaluate_representation(np.asarray(z_true, dtype=np.float64), z_hat, seed=setting.seed, content=content)
    scores["final_loss"] = float(summary.get("final_loss", float("nan")))
    return {"metrics": scores, "steps": setting.steps, "resumed_from": summary.get("resumed_from", 0),
            "train_seconds": t1 - t0, "eval_seconds": time.perf_counter() - t1, "contract": summary.get("contract")}
