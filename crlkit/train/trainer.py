"""One trainer for every crlkit model: seeds, devices, checkpoints, resume, logs.

>>> from crlkit.train import train
>>> summary = train("beta_vae", "dsprites", steps=1000, seed=0, out_dir="runs/bvae",
...                 overrides={"beta": 4, "batch_size": 64})
>>> model = crlkit.load("runs/bvae")

A run directory holds

- ``config.json``  everything needed to rebuild the model and the data stream;
- ``checkpoint.pt`` model, optimizers, sampler RNG, noise RNG, torch RNG and step, replaced
  atomically (tmp + ``os.replace``) every ``checkpoint_every`` steps and at the end;
- ``log.csv``      one row per step: ``step`` (updates done) and every loss term;
- ``summary.json`` ``{"model", "dataset", "steps", "seed", "final_loss", "terms",
  "images_per_second", ...}``; ``final_loss`` and ``terms`` average the last ``log_every`` steps.

Training is by steps (the procedural stream is infinite). A run is a function of its seed:
one :class:`numpy.random.SeedSequence` gives the weight-initialisation seed, the sampler seed
and the model-noise seed; torch's global RNG is forked (restored afterwards) so models that
use it are reproducible too. ``resume=True`` continues from the checkpoint to ``steps`` in
total and, on CPU, ends with bit-identical weights to an uninterrupted run.

Loss terms stay on the device and are checked for NaN/inf every ``log_every`` steps (one
synchronisation per interval, not per step); a non-finite term stops the run with
:class:`TrainingDiverged` naming the first bad step and term. Checkpoints are written only
after the terms up to that step were found finite, so the last checkpoint is a good one.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crlkit import __version__
from crlkit.contracts import enforce
from crlkit.config import build_config, coerce_options, config_fields, route_overrides, signature_fields
from crlkit.data import GroundTruthData, dataset_from_options, make_dataset
from crlkit.data.samplers import SAMPLERS, _load_all as _load_samplers, make_sampler
from crlkit.errors import CrlkitError
from crlkit.models.base import Method, get_model_class
from crlkit.files import atomic_save, atomic_write_text, jsonable


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 64            # samples per step (disentanglement_lib: 64)
    lr: float = 1e-4                # Adam learning rate (disentanglement_lib: 1e-4)
    beta1: float = 0.9              # Adam beta1
    beta2: float = 0.999            # Adam beta2
    eps: float = 1e-8               # Adam epsilon
    checkpoint_every: int = 1000    # steps between checkpoints (and at the end)
    log_every: int = 50             # steps between log flushes / NaN checks / progress updates
    channels_last: bool = True      # NHWC memory format for image models (measured faster on CPU)
    fused_adam: bool = True         # single-kernel Adam where the device has one
    tensorboard: bool = False       # also log terms to DIR/tensorboard (needs the tensorboard package)
    cudnn_benchmark: bool = True    # on CUDA, let cuDNN pick the fastest kernels (results not bitwise reproducible)
    tune_malloc: bool = True        # on CPU (glibc), keep freed memory in the heap during training (see _cpu_allocator)


class TrainingDiverged(CrlkitError):
    """A loss term became NaN or infinite; the message names the step and the term."""


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------
def _sampler_table(kind: str) -> dict[str, Any]:
    _load_samplers()
    cls = SAMPLERS.get(kind)
    return signature_fields(cls.__init__, skip=("dataset", "batch_size", "seed", "device"))


def resolve_settings(model: str, overrides: dict[str, Any] | None = None):
    """Split ``overrides`` into (model config, TrainConfig, sampler options) for ``model``.

    Bare keys go to whichever of the three has them; ``model.key``, ``train.key`` and
    ``sampler.key`` pick one explicitly.
    """
    cls = get_model_class(model)
    tables = {"model": config_fields(cls.Config), "train": config_fields(TrainConfig),
              "sampler": _sampler_table(cls.batch_kind)}
    routed = route_overrides(dict(overrides or {}), tables)
    model_cfg = build_config(cls.Config, routed["model"], what=f"model {model!r}")
    train_cfg = build_config(TrainConfig, routed["train"], what="training")
    sampler_opts = coerce_options(routed["sampler"], tables["sampler"])
    for key in ("batch_size", "checkpoint_every", "log_every"):
        if getattr(train_cfg, key) < 1:
            raise CrlkitError(f"{key} must be >= 1; got {getattr(train_cfg, key)}")
    if not train_cfg.lr > 0:
        raise CrlkitError(f"lr must be > 0; got {train_cfg.lr}")
    return cls, model_cfg, train_cfg, sampler_opts


def _resolve_dataset(dataset, data_options: dict[str, Any] | None) -> tuple[GroundTruthData, str, dict]:
    if isinstance(dataset, GroundTruthData):
        if data_options:
            raise CrlkitError("data_options apply to a dataset given by name, not to a dataset object")
        return dataset, dataset.name or type(dataset).__name__, {}
    ds, opts = dataset_from_options(str(dataset), data_options)
    return ds, str(dataset), opts


def _seeds(seed: int) -> dict[str, int]:
    init, sampler, noise = np.random.SeedSequence(int(seed)).generate_state(3, dtype=np.uint64)
    return {"init": int(init % 2**63), "sampler": int(sampler % 2**63), "noise": int(noise % 2**63)}



def _build_model(cls, model_cfg, observation_shape, init_seed: int) -> Method:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        return cls(model_cfg, tuple(observation_shape))


def _to_memory_format(batch: dict[str, torch.Tensor], channels_last: bool) -> dict[str, torch.Tensor]:
    if not channels_last:
        return batch
    return {k: (v.contiguous(memory_format=torch.channels_last)
                if v.dim() == 4 and v.is_floating_point() else v) for k, v in batch.items()}


def _device_rng_devices(device: torch.device) -> list:
    return [device.index or 0] if device.type == "cuda" else []


# --------------------------------------------------------------------------------------------
# the trainer
# --------------------------------------------------------------------------------------------
def train(model: str, dataset: str | GroundTruthData, *, steps: int, seed: int, out_dir: str | os.PathLike,
          overrides: dict[str, Any] | None = None, data_options: dict[str, Any] | None = None,
          device: str = "cpu", resume: bool = False, progress: bool | None = None,
          allow_mismatch: bool = False) -> dict:
    """Train registered model ``model`` on ``dataset`` for ``steps`` updates.

    Parameters
    ----------
    model : str
        A registered model name (``crlkit.models.list_models()``).
    dataset : str or GroundTruthData
        A registered dataset name (built with ``data_options``) or a dataset object.
    steps : int
        Total number of updates (with ``resume``, including those already done).
    seed : int
        Seeds weights, the data stream and the model noise.
    out_dir : path
        Run directory (created); see the module docstring for its files.
    overrides : dict
        ``{key: value}`` for the model's Config, :class:`TrainConfig` and the sampler's
        options (e.g. ``{"beta": 8, "batch_size": 32, "k": -1}``); strings are parsed.
    device : str
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    resume : bool
        Continue from ``out_dir/checkpoint.pt`` (its config must match).
    progress : bool or None
        Show a tqdm bar; ``None``: only when stderr is a terminal.
    allow_mismatch : bool
        Train even when the dataset breaks an assumption of the method's contract
        (:func:`crlkit.contracts.enforce`); the mismatch is kept in config.json and summary.json.

    Returns
    -------
    dict
        The summary written to ``summary.json``.
    """
    steps = int(steps)
    if steps < 0:
        raise CrlkitError(f"steps must be >= 0; got {steps}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise CrlkitError(f"unknown device {device!r}; valid choices: cpu, cuda, cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CrlkitError("device 'cuda' requested but torch.cuda.is_available() is False")
    if dev.type not in ("cpu", "cuda"):
        raise CrlkitError(f"unknown device {device!r}; valid choices: cpu, cuda")
    cls, model_cfg, train_cfg, sampler_opts = resolve_settings(model, overrides)
    ds, ds_name, ds_opts = _resolve_dataset(dataset, data_options)
    contract = enforce(model, ds, model_config=model_cfg, sampler_options=sampler_opts, allow_mismatch=allow_mismatch)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seeds = _seeds(seed)

    config = {
        "model": model, "dataset": ds_name, "data_options": jsonable(ds_opts), "steps": steps, "seed": int(seed),
        "observation_shape": list(ds.observation_shape), "batch_kind": cls.batch_kind,
        "model_config": jsonable(model_cfg), "train_config": jsonable(train_cfg),
        "sampler_options": jsonable(sampler_opts), "overrides": jsonable(dict(overrides or {})),
        "device": str(dev), "crlkit_version": __version__, "torch_version": torch.__version__,
        "contract": contract,
    }
    ckpt_path = out / "checkpoint.pt"
    state = None
    if resume:
        if not ckpt_path.exists():
            raise CrlkitError(f"--resume: no checkpoint at {ckpt_path}")
        old = json.loads((out / "config.json").read_text())
        for key in ("model", "dataset", "data_options", "seed", "model_config", "train_config", "sampler_options"):
            if old.get(key) != config[key]:
                raise CrlkitError(f"--resume: {key} differs from the run in {out} "
                                  f"(was {old.get(key)!r}, now {config[key]!r})")
        state = torch.load(ckpt_path, map_location=dev, weights_only=False)

    net = _build_model(cls, model_cfg, ds.observation_shape, seeds["init"])
    if _is_image(ds) and train_cfg.channels_last:
        net = net.to(dev, memory_format=torch.channels_last)
    else:
        net = net.to(dev)
    net.train()
    net.noise = torch.Generator(device=dev)
    net.noise.manual_seed(seeds["noise"])
    optimizers = net.configure_optimizers(train_cfg)
    mult = int(getattr(cls, "sampler_batch_multiplier", 1))
    sampler = make_sampler(cls.batch_kind, ds, batch_size=train_cfg.batch_size * mult, seed=seeds["sampler"],
                           device=dev, **sampler_opts)
    start = 0
    if state is not None:
        net.load_state_dict(state["model"])
        for name, opt in optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        sampler.load_state_dict(state["sampler"])
        net.noise.set_state(state["noise"].cpu())
        start = int(state["step"])
        if start > steps:
            raise CrlkitError(f"--resume: the checkpoint in {out} is at step {start}, past --steps {steps}")
    atomic_write_text(out / "config.json", json.dumps(config, indent=2) + "\n")

    log_path = out / "log.csv"
    prior_rows = _read_log(log_path, upto=start) if resume else []
    if resume and prior_rows:  # drop rows logged after the checkpoint (a crashed run's tail)
        _write_log(log_path, prior_rows, list(prior_rows[0]))
    if not resume:  # a fresh run replaces an old run's files in the same directory
        for stale in (ckpt_path, log_path, out / "summary.json"):
            stale.unlink(missing_ok=True)
    ckpt_every = train_cfg.checkpoint_every
    log_every = train_cfg.log_every
    show = sys.stderr.isatty() if progress is None else bool(progress)
    tb = _tensorboard(out) if train_cfg.tensorboard else None

    cudnn_before = torch.backends.cudnn.benchmark
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = train_cfg.cudnn_benchmark
    with torch.random.fork_rng(devices=_device_rng_devices(dev)), _restore_cudnn(cudnn_before), \
            _cpu_allocator(train_cfg.tune_malloc and dev.type == "cpu"):
        torch.manual_seed(seeds["noise"] + 1)
        if state is not None:
            torch.set_rng_state(state["torch_rng"].cpu())
            if dev.type == "cuda" and state.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(state["cuda_rng"].cpu(), dev)
        rows, pending = list(prior_rows), []
        columns: list[str] | None = list(prior_rows[0]) if prior_rows else None
        bar = None
        if show:
            from tqdm.auto import tqdm

            bar = tqdm(total=steps, initial=start, desc=f"{model} on {ds_name}", unit="step",
                       dynamic_ncols=True, file=sys.stderr)
        images = 0
        t0 = time.perf_counter()
        try:
            for step in range(start, steps):
                batch = _to_memory_format(next(sampler), train_cfg.channels_last and _is_image(ds))
                images += int(batch["x"].shape[0]) + (int(batch["x2"].shape[0]) if "x2" in batch else 0)
                terms = net.training_step(batch, step, optimizers)
                pending.append(terms)
                done = step + 1
                if done % log_every == 0 or done == steps or done % ckpt_every == 0:
                    new_rows = _flush(pending, done, model)
                    pending = []
                    if columns is None:
                        columns = list(new_rows[0])
                    rows.extend(new_rows)
                    _append_log(log_path, new_rows, columns, fresh=(len(rows) == len(new_rows)))
                    if bar is not None:
                        bar.update(len(new_rows))
                        bar.set_postfix({k: f"{v:.4g}" for k, v in new_rows[-1].items() if k != "step"},
                                        refresh=False)
                    if tb is not None:
                        for r in new_rows:
                            for k, v in r.items():
                                if k != "step":
                                    tb.add_scalar(k, v, r["step"])
                    if done % ckpt_every == 0 or done == steps:
                        _save_checkpoint(ckpt_path, net, optimizers, sampler, done, dev)
        finally:
            if bar is not None:
                bar.close()
            if tb is not None:
                tb.close()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds = time.perf_counter() - t0
        if steps == start:  # nothing to do (steps reached already): still leave a checkpoint
            if not ckpt_path.exists():
                _save_checkpoint(ckpt_path, net, optimizers, sampler, start, dev)

    # rewrite the log in one piece (drops rows past a resumed checkpoint; atomic)
    _write_log(log_path, rows, columns)
    tail = rows[-min(log_every, len(rows)):] if rows else []
    terms_mean = {k: float(np.mean([r[k] for r in tail])) for k in (columns or []) if k != "step"} if tail else {}
    summary = {
        "model": model, "dataset": ds_name, "steps": steps, "seed": int(seed),
        "final_loss": terms_mean.get("loss", float("nan")),
        "terms": {k: v for k, v in terms_mean.items() if k != "loss"},
        "images_per_second": (images / seconds) if seconds > 0 and images else 0.0,
        "seconds": seconds, "resumed_from": start, "device": str(dev),
        "batch_size": train_cfg.batch_size, "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "torch_threads": torch.get_num_threads(), "contract": contract,
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameter numbers (glibc malloc.h)
_GLIBC_DEFAULT_THRESHOLD = 128 * 1024


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


@contextlib.contextmanager
def _cpu_allocator(enabled: bool):
    """Keep large freed blocks in the heap while training on CPU.

    With glibc's defaults every step's multi-megabyte activations and gradients are mmap'ed
    and unmapped (or trimmed off the heap top) again, so each step re-faults them in: about
    15,000 page faults per beta-VAE step at batch 64 here, ~30% of the step time. Raising
    ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` for the duration of training removes
    nearly all of them; both are set back to glibc's static defaults (128 KiB) and the heap
    trimmed afterwards. A no-op off glibc; ``--set tune_malloc=false`` turns it off.
    """
    libc = _glibc() if enabled else None
    if libc is None:
        yield
        return
    libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)
    libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
    try:
        yield
    finally:
        libc.mallopt(_M_MMAP_THRESHOLD, _GLIBC_DEFAULT_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, _GLIBC_DEFAULT_THRESHOLD)
        libc.malloc_trim(0)


class _restore_cudnn:
    def __init__(self, value: bool):
        self.value = value

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        torch.backends.cudnn.benchmark = self.value
        return False


def _is_image(ds: GroundTruthData) -> bool:
    return len(ds.observation_shape) == 3


def _flush(pending: list[dict[str, torch.Tensor]], done: int, model: str) -> list[dict[str, float]]:
    """Move a window of per-step terms to the host (one sync) and check them for NaN/inf."""
    keys = list(pending[0])
    stacked = torch.stack([torch.stack([t[k].float().reshape(()) for k in keys]) for t in pending]).cpu()
    values = stacked.numpy()  # (n_steps, n_terms)
    first = done - len(pending) + 1
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.argwhere(bad)[0][0])  # first bad step; name a component term over the total
        cols = [j for j in np.flatnonzero(bad[i]) if keys[j] != "loss"] or list(np.flatnonzero(bad[i]))
        j = int(cols[0])
        raise TrainingDiverged(
            f"{model}: loss term {keys[j]!r} is {values[i, j]} at step {first + i}; stopped "
            f"(the last checkpoint, if any, holds the weights from before it). Try a lower lr or "
            f"different hyperparameters.")
    return [{"step": first + i, **{k: float(values[i, j]) for j, k in enumerate(keys)}}
            for i in range(len(pending))]


def _save_checkpoint(path: Path, net: Method, optimizers, sampler, step: int, dev: torch.device) -> None:
    state = {
        "step": step, "model": net.state_dict(),
        "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
        "sampler": sampler.state_dict(), "noise": net.noise.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None,
        "model_name": net.name,
    }
    atomic_save(path, lambda tmp: torch.save(state, tmp))


def _read_log(path: Path, *, upto: int) -> list[dict[str, float]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    for r in rows:
        r["step"] = int(r["step"])
    return [r for r in rows if r["step"] <= upto]


def _append_log(path: Path, rows, columns, *, fresh: bool) -> None:
    mode = "w" if fresh or not path.exists() else "a"
    with open(path, mode, newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        if mode == "w":
            w.writeheader()
        w.writerows(rows)


def _write_log(path: Path, rows, columns) -> None:
    if columns is None:
        return
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise CrlkitError("tensorboard=true needs the tensorboard package: pip install 'crlkit[tensorboard]'") from None
    return SummaryWriter(log_dir=str(out / "tensorboard"))


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------
def read_run_config(path: str | os.PathLike) -> dict:
    """The ``config.json`` of a run directory."""
    p = Path(path) / "config.json"
    if not p.exists():
        raise CrlkitError(f"{path} is not a crlkit run directory (no config.json)")
    return json.loads(p.read_text())


def load_model(path: str | os.PathLike, device: str = "cpu", *, channels_last: bool | None = None) -> Method:
    """Rebuild a trained model from ``DIR/config.json`` + ``DIR/checkpoint.pt``, in eval mode.

    The returned module has ``encode(x)`` (and ``encode_dist`` / ``decode`` for VAEs) and a
    ``run_config`` attribute holding the parsed ``config.json``. Image models are put in
    channels-last memory format (``channels_last=None``: as the run trained), which about
    halves CPU encoding time; inputs may stay in the usual NCHW layout.
    """
    cfg = read_run_config(path)
    ckpt = Path(path) / "checkpoint.pt"
    if not ckpt.exists():
        raise CrlkitError(f"no checkpoint.pt in {path}")
    cls = get_model_class(cfg["model"])
    model_cfg = build_config(cls.Config, cfg["model_config"], what=f"model {cfg['model']!r}")
    net = _build_model(cls, model_cfg, tuple(cfg["observation_shape"]), 0)
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    net.load_state_dict(state["model"])
    net.run_config = cfg
    if channels_last is None:
        channels_last = bool(cfg.get("train_config", {}).get("channels_last", False))
    if channels_last and len(cfg["observation_shape"]) == 3:
        net = net.to(memory_format=torch.channels_last)
    return net.to(torch.device(device)).eval()


def load_dataset(path: str | os.PathLike) -> GroundTruthData:
    """The dataset a run was trained on (by registered name and options)."""
    cfg = read_run_config(path)
    return make_dataset(cfg["dataset"], **cfg.get("data_options", {}))


__all__ = ["TrainConfig", "TrainingDiverged", "train", "load_model", "load_dataset", "read_run_config",
           "resolve_settings"]
