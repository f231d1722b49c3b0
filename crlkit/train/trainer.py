"""One trainer for everything that trains in crlkit: a short loop plus callbacks.

>>> from crlkit.train import train
>>> summary = train("beta_vae", "dsprites", steps=1000, seed=0, out_dir="runs/bvae",
...                 overrides={"beta": 4, "batch_size": 64})
>>> model = crlkit.load("runs/bvae")

:class:`Trainer` is the loop: for each step, take a batch from the sampler, call
``model.training_step(batch, step, optimizers)`` (the model computes its loss and steps the
optimizers it declared), and every ``log_every`` steps move the terms to the host in one
synchronisation and hand them to the callbacks. Everything else is a callback
(:mod:`crlkit.train.callbacks`), run in this order: the NaN guard, the CSV log, TensorBoard
(optional), the model's own (``Method.callbacks(train_config)``: schedules, data
preparation) and the caller's, progress, checkpoints. :func:`train` wraps it for a
registered model on a registered dataset; anything with ``training_step``, a dict of
optimizers and a sampler with ``state_dict`` / ``load_state_dict`` trains through
:class:`Trainer` directly and gets the same logs, checkpoints, resume and NaN stops.

A run directory holds

- ``config.json``  (:func:`train` only) everything needed to rebuild the model and the data
  stream;
- ``checkpoint.pt`` model, optimizers, sampler RNG, model-noise RNG, torch RNG, callback
  states and step, written atomically and durably; loadable with ``weights_only=True``;
- ``log.csv``      one row per step: ``step`` (updates done) and every loss term; appended
  and fsynced at every flush;
- ``summary.json`` ``{"model", "dataset", "steps", "seed", "final_loss", "terms",
  "images_per_second", ...}``; ``final_loss`` and ``terms`` average the last ``log_every`` steps.

Nothing a user made is lost: writing into a directory that holds a run (``config.json`` or
``checkpoint.pt``) needs ``resume=True`` or ``overwrite=True``.

Training is by steps (the procedural stream is infinite). A run is a function of its seed:
one :class:`numpy.random.SeedSequence` gives the weight-initialisation seed, the sampler seed
and the model-noise seed. Process-wide settings the trainer changes (torch's global RNG,
forked; cuDNN benchmark mode; glibc malloc thresholds; torch threads when ``threads`` is
given) are restored when ``fit`` returns or raises. ``resume=True`` continues from the
checkpoint to ``steps`` in total and, on CPU, ends with bit-identical weights to an
uninterrupted run.

A non-finite loss term stops the run with :class:`TrainingDiverged` naming the first bad
step and term, before that window is logged or checkpointed, so the last checkpoint is a
good one.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

from crlkit import __version__
from crlkit.contracts import enforce
from crlkit.config import build_config, coerce_options, config_fields, route_overrides, signature_fields
from crlkit.data import GroundTruthData, dataset_from_options, make_dataset
from crlkit.data.samplers import SAMPLERS, _load_all as _load_samplers, make_sampler
from crlkit.errors import CrlkitError
from crlkit.files import atomic_write_json, jsonable
from crlkit.models.base import Method, get_model_class
from crlkit.train.callbacks import (Callback, Checkpoint, CSVLog, NaNGuard, Progress, TensorBoard,
                                    TrainingDiverged, read_checkpoint)  # noqa: F401  (TrainingDiverged re-exported)


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
    tune_malloc: bool = True        # on CPU (glibc), keep freed memory in the heap during training (see cpu_allocator)


RUN_MARKERS = ("config.json", "checkpoint.pt")  # files that make a directory hold a run
RUN_FILES = ("checkpoint.pt", "log.csv", "summary.json")  # what overwrite=True removes (with tensorboard/)


# --------------------------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------------------------
class Trainer:
    """Train ``model`` for ``steps`` updates on batches from ``sampler``.

    Parameters
    ----------
    model : torch.nn.Module
        Has ``training_step(batch, step, optimizers) -> {term: detached tensor}`` (one
        update; include ``"loss"``); optionally ``callbacks(train_config) -> [Callback]``
        and a ``noise`` :class:`torch.Generator` (checkpointed).
    optimizers : dict
        ``{name: torch.optim.Optimizer}``; their state is checkpointed.
    sampler : iterator
        ``next(sampler)`` gives a batch; ``state_dict()`` / ``load_state_dict()`` (needed
        when checkpointing) save and restore its position.
    steps : int
        Total number of updates (with ``resume``, including those already done).
    out_dir : path or None
        Where ``log.csv`` and ``checkpoint.pt`` go; None: nothing is written (no resume).
    callbacks : iterable of Callback
        Extra callbacks, run after the model's own and before progress and checkpointing.
    log_every, checkpoint_every : int
        Steps between log flushes (one host synchronisation, the NaN check, progress) and
        between checkpoints (written at the first flush at or after each multiple).
    name : str
        Names the model in messages and the progress bar.
    device : str or torch.device
        Where the model trains (checkpoints are mapped there on resume).
    train_config : object
        Passed to ``model.callbacks`` and exposed to callbacks as ``trainer.train_config``.
    dataset : object
        Exposed to callbacks (e.g. data preparation) as ``trainer.dataset``.
    prepare_batch : callable
        Applied to every batch before ``training_step`` (e.g. a memory-format change).
    torch_seed : int or None
        Seeds torch's global RNG (forked for the run, restored afterwards) on a fresh run.
    threads : int or None
        torch CPU threads for the run (restored afterwards).
    cudnn_benchmark : bool or None
        cuDNN benchmark mode on CUDA for the run (restored afterwards); None: leave it.
    tune_malloc : bool
        On CPU with glibc, keep freed memory in the heap during the run (see :func:`cpu_allocator`).
    progress : bool or None
        Show progress: True a bar, False nothing, None a bar on a terminal and otherwise a
        line every 30 s with steps/s and the time left.
    """

    def __init__(self, model: torch.nn.Module, optimizers: dict[str, torch.optim.Optimizer], sampler, *,
                 steps: int, out_dir: str | os.PathLike | None = None, callbacks: Iterable[Callback] = (),
                 log_every: int = 50, checkpoint_every: int = 1000, name: str | None = None,
                 device: str | torch.device = "cpu", train_config: Any = None, dataset: Any = None,
                 prepare_batch: Callable[[Any], Any] | None = None, torch_seed: int | None = None,
                 threads: int | None = None, cudnn_benchmark: bool | None = None, tune_malloc: bool = False,
                 progress: bool | None = False):
        for key, value in (("steps", steps), ("log_every", log_every), ("checkpoint_every", checkpoint_every)):
            if int(value) < (0 if key == "steps" else 1):
                raise CrlkitError(f"{key} must be >= {0 if key == 'steps' else 1}; got {value}")
        if threads is not None and int(threads) < 1:
            raise CrlkitError(f"threads must be >= 1; got {threads}")
        self.model, self.optimizers, self.sampler = model, dict(optimizers), sampler
        self.total_steps, self.log_every = int(steps), int(log_every)
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.name = name or getattr(model, "name", "") or type(model).__name__
        self.device = torch.device(device)
        self.train_config, self.dataset = train_config, dataset
        self.prepare_batch = prepare_batch or (lambda batch: batch)
        self.torch_seed, self.threads = torch_seed, threads
        self.cudnn_benchmark, self.tune_malloc = cudnn_benchmark, bool(tune_malloc)
        self.step = self.start_step = 0
        self.recent: collections.deque = collections.deque(maxlen=self.log_every)
        self.seconds = 0.0
        method_callbacks = model.callbacks(train_config) if callable(getattr(model, "callbacks", None)) else []
        cbs: list[Callback] = [NaNGuard(self.name)]
        if self.out_dir is not None:
            cbs.append(CSVLog(self.out_dir / "log.csv"))
        cbs += list(method_callbacks) + list(callbacks)
        if progress is not False:
            cbs.append(Progress(self.name, mode="bar" if progress else None))
        if self.out_dir is not None:
            cbs.append(Checkpoint(self.out_dir / "checkpoint.pt", checkpoint_every))
        self.callbacks = cbs

    def fit(self, *, resume: bool = False, overwrite: bool = False) -> dict:
        """Train to ``steps`` (from the checkpoint in ``out_dir`` with ``resume``); returns the summary.

        Without ``resume`` or ``overwrite``, an ``out_dir`` that already holds a checkpoint is
        refused (:class:`CrlkitError` naming it) and left untouched.
        """
        state = self._start_run(resume, overwrite)
        with process_settings(self.device, threads=self.threads, cudnn_benchmark=self.cudnn_benchmark,
                              tune_malloc=self.tune_malloc):
            if state is not None:
                try:
                    self.load_state_dict(state)
                except (RuntimeError, KeyError, ValueError, TypeError) as e:
                    raise CrlkitError(f"{self.out_dir / 'checkpoint.pt'} does not fit this model, its optimizers "
                                      f"or its sampler ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
            elif self.torch_seed is not None:
                torch.manual_seed(self.torch_seed)
            self.start_step = self.step
            try:
                self.call("on_fit_start")
                t0 = time.perf_counter()
                for step in range(self.step, self.total_steps):
                    self.call("on_step_start", step)
                    terms = self.model.training_step(self.prepare_batch(next(self.sampler)), step, self.optimizers)
                    self.step = step + 1
                    self._pending.append(terms)
                    self.call("on_step_end", step, terms)
                    if self.step % self.log_every == 0 or self.step == self.total_steps:
                        self.call("on_log", self._flush())
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                self.seconds = time.perf_counter() - t0
            except BaseException:
                for cb in self.callbacks:  # let every callback clean up; the first error propagates
                    with contextlib.suppress(Exception):
                        cb.on_fit_end(self, None)
                raise
            summary = self.summary()
            self.call("on_fit_end", summary)
        return summary

    # -- pieces of the loop ------------------------------------------------------------------
    def call(self, hook: str, *args) -> None:
        """Run ``hook`` on every callback, in order."""
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    def _flush(self) -> list[dict[str, float]]:
        """Move the pending steps' terms to the host (one synchronisation) as log rows."""
        pending, self._pending = self._pending, []
        keys = list(pending[0])
        values = torch.stack([torch.stack([t[k].float().reshape(()) for k in keys]) for t in pending]).cpu().numpy()
        first = self.step - len(pending) + 1
        rows = [{"step": first + i, **{k: float(values[i, j]) for j, k in enumerate(keys)}}
                for i in range(len(pending))]
        self.recent.extend(rows)
        return rows

    def summary(self) -> dict:
        """``{"steps", "resumed_from", "seconds", "steps_per_second", "final_loss", "terms"}``."""
        tail = list(self.recent)
        means = {k: float(np.mean([r[k] for r in tail])) for k in (tail[0] if tail else {}) if k != "step"}
        done = self.total_steps - self.start_step
        return {"steps": self.total_steps, "resumed_from": self.start_step, "seconds": self.seconds,
                "steps_per_second": done / self.seconds if self.seconds > 0 else 0.0,
                "final_loss": means.get("loss", float("nan")),
                "terms": {k: v for k, v in means.items() if k != "loss"}}

    # -- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything a resumed run needs (see :func:`crlkit.train.callbacks.save_checkpoint`)."""
        noise = getattr(self.model, "noise", None)
        return {
            "step": self.step, "model_name": self.name, "model": self.model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "sampler": self.sampler.state_dict(),
            "noise": noise.get_state() if isinstance(noise, torch.Generator) else None,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "callbacks": self._callback_states(),
        }

    def _callback_states(self) -> dict[str, dict]:
        states: dict[str, dict] = {}
        for cb in self.callbacks:
            state = cb.state_dict()
            if state:
                if cb.state_key() in states:
                    raise CrlkitError(f"two callbacks with state share the key {cb.state_key()!r}; set Callback.key")
                states[cb.state_key()] = state
        return states

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        self.sampler.load_state_dict(state["sampler"])
        noise = getattr(self.model, "noise", None)
        if isinstance(noise, torch.Generator) and state.get("noise") is not None:
            noise.set_state(state["noise"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        if self.device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), self.device)
        for cb in self.callbacks:
            if cb.state_key() in state.get("callbacks", {}):
                cb.load_state_dict(state["callbacks"][cb.state_key()])
        self.step = int(state["step"])

    def _start_run(self, resume: bool, overwrite: bool) -> dict | None:
        self._pending: list[dict[str, torch.Tensor]] = []
        self.recent.clear()
        self.step = 0
        if self.out_dir is None:
            if resume:
                raise CrlkitError("resume needs an out_dir with a checkpoint")
            return None
        check_run_dir(self.out_dir, resume=resume, overwrite=overwrite, markers=("checkpoint.pt",))
        if not resume:
            if overwrite:
                clear_run(self.out_dir)
            self.out_dir.mkdir(parents=True, exist_ok=True)
            return None
        state = read_checkpoint(self.out_dir / "checkpoint.pt", map_location=self.device)
        if int(state["step"]) > self.total_steps:
            raise CrlkitError(f"--resume: the checkpoint in {self.out_dir} is at step {int(state['step'])}, "
                              f"past --steps {self.total_steps}")
        return state


# --------------------------------------------------------------------------------------------
# run directories
# --------------------------------------------------------------------------------------------
def check_run_dir(out: str | os.PathLike, *, resume: bool, overwrite: bool,
                  markers: tuple[str, ...] = RUN_MARKERS) -> None:
    """Refuse to write into ``out`` unless that is safe: a directory holding a run (any of
    ``markers``) needs ``resume`` (and then a checkpoint) or ``overwrite``."""
    out = Path(out)
    if resume and overwrite:
        raise CrlkitError("--resume and --overwrite exclude each other: continue the run or replace it")
    if resume:
        if not (out / "checkpoint.pt").is_file():
            raise CrlkitError(f"--resume: no checkpoint at {out / 'checkpoint.pt'} "
                              f"(start afresh with --overwrite)")
        return
    if out.exists() and not out.is_dir():
        raise CrlkitError(f"--out {out} is a file; a run needs a directory")
    found = [m for m in markers if (out / m).exists()]
    if found and not overwrite:
        raise CrlkitError(f"{out} already holds a run ({', '.join(found)}); use --resume to continue it or "
                          f"--overwrite to replace it")


def clear_run(out: str | os.PathLike) -> None:
    """Remove a run's files from ``out`` (checkpoint, log, summary, TensorBoard events)."""
    out = Path(out)
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    if (out / "tensorboard").is_dir():
        shutil.rmtree(out / "tensorboard")


# --------------------------------------------------------------------------------------------
# process-wide settings
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def process_settings(device: torch.device, *, threads: int | None = None, cudnn_benchmark: bool | None = None,
                     tune_malloc: bool = False):
    """For the duration of a run: fork torch's global RNG, and set torch's threads, cuDNN's
    benchmark mode (on CUDA) and glibc's malloc thresholds (on CPU); all restored on exit,
    also when the run raises."""
    threads_before, cudnn_before = torch.get_num_threads(), torch.backends.cudnn.benchmark
    rng_devices = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=rng_devices), cpu_allocator(tune_malloc and device.type == "cpu"):
            if threads is not None:
                torch.set_num_threads(int(threads))
            if cudnn_benchmark is not None and device.type == "cuda":
                torch.backends.cudnn.benchmark = bool(cudnn_benchmark)
            yield
    finally:
        torch.set_num_threads(threads_before)
        torch.backends.cudnn.benchmark = cudnn_before


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
def cpu_allocator(enabled: bool):
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


# --------------------------------------------------------------------------------------------
# configuration of a registered model
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
    # the method's own training defaults (e.g. iVAE's preset: lr, batch size) under the user's
    train_cfg = build_config(TrainConfig, {**cls.train_defaults(model_cfg), **routed["train"]}, what="training")
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


def _device(device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise CrlkitError(f"unknown device {device!r}; valid choices: cpu, cuda, cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise CrlkitError(f"unknown device {device!r}; valid choices: cpu, cuda")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CrlkitError("device 'cuda' requested but torch.cuda.is_available() is False")
    return dev


def _seeds(seed: int) -> dict[str, int]:
    init, sampler, noise = np.random.SeedSequence(int(seed)).generate_state(3, dtype=np.uint64)
    return {"init": int(init % 2**63), "sampler": int(sampler % 2**63), "noise": int(noise % 2**63)}


def _build_model(cls, model_cfg, observation_shape, init_seed: int) -> Method:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        return cls(model_cfg, tuple(observation_shape))


def _is_image(ds: GroundTruthData) -> bool:
    return len(ds.observation_shape) == 3


class _WriteConfig(Callback):
    """Writes the run's ``config.json`` at the start of training."""

    def __init__(self, path: Path, config: dict):
        self.path, self.config = path, config

    def on_fit_start(self, trainer):
        atomic_write_json(self.path, self.config)


class _ImageCounter:
    """Batch preparation for :func:`train`: channels-last image tensors, and a count of the
    observations seen (for ``images_per_second``)."""

    def __init__(self, channels_last: bool):
        self.channels_last, self.images = channels_last, 0

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.images += int(batch["x"].shape[0]) + (int(batch["x2"].shape[0]) if "x2" in batch else 0)
        if not self.channels_last:
            return batch
        return {k: (v.contiguous(memory_format=torch.channels_last)
                    if v.dim() == 4 and v.is_floating_point() else v) for k, v in batch.items()}


# --------------------------------------------------------------------------------------------
# train a registered model on a registered dataset
# --------------------------------------------------------------------------------------------
def train(model: str, dataset: str | GroundTruthData, *, steps: int, seed: int, out_dir: str | os.PathLike,
          overrides: dict[str, Any] | None = None, data_options: dict[str, Any] | None = None,
          device: str = "cpu", resume: bool = False, overwrite: bool = False, progress: bool | None = None,
          threads: int | None = None, allow_mismatch: bool = False) -> dict:
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
    overwrite : bool
        Replace a run already in ``out_dir``. Without it (or ``resume``) such a directory is
        refused with :class:`CrlkitError` and left untouched.
    progress : bool or None
        True a tqdm bar, False nothing, None a bar on a terminal and otherwise a periodic line.
    threads : int or None
        torch CPU threads while training (restored afterwards); None leaves torch's setting.
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
    if int(seed) < 0:
        raise CrlkitError(f"seed must be an integer >= 0; got {seed}")
    dev = _device(device)
    cls, model_cfg, train_cfg, sampler_opts = resolve_settings(model, overrides)
    ds, ds_name, ds_opts = _resolve_dataset(dataset, data_options)
    contract = enforce(model, ds, model_config=model_cfg, sampler_options=sampler_opts, allow_mismatch=allow_mismatch)
    out = Path(out_dir)
    check_run_dir(out, resume=resume, overwrite=overwrite)
    config = {
        "model": model, "dataset": ds_name, "data_options": jsonable(ds_opts), "steps": steps, "seed": int(seed),
        "observation_shape": list(ds.observation_shape), "batch_kind": cls.batch_kind,
        "model_config": jsonable(model_cfg), "train_config": jsonable(train_cfg),
        "sampler_options": jsonable(sampler_opts), "overrides": jsonable(dict(overrides or {})),
        "device": str(dev), "crlkit_version": __version__, "torch_version": torch.__version__,
        "contract": contract,
    }
    if resume:
        old = read_run_config(out)
        for key in ("model", "dataset", "data_options", "seed", "model_config", "train_config", "sampler_options"):
            if old.get(key) != json.loads(json.dumps(config[key])):
                raise CrlkitError(f"--resume: {key} differs from the run in {out} "
                                  f"(was {old.get(key)!r}, now {config[key]!r})")
    extra = [_WriteConfig(out / "config.json", config)]  # written once the checkpoint (if any) was accepted
    if train_cfg.tensorboard:
        extra.append(TensorBoard(out / "tensorboard"))
    seeds = _seeds(seed)
    net = _build_model(cls, model_cfg, ds.observation_shape, seeds["init"])
    image = _is_image(ds) and train_cfg.channels_last
    net = net.to(dev, memory_format=torch.channels_last) if image else net.to(dev)
    net.train()
    net.noise = torch.Generator(device=dev)
    net.noise.manual_seed(seeds["noise"])
    optimizers = net.configure_optimizers(train_cfg)
    mult = int(getattr(cls, "sampler_batch_multiplier", 1))
    sampler = make_sampler(cls.batch_kind, ds, batch_size=train_cfg.batch_size * mult, seed=seeds["sampler"],
                           device=dev, **sampler_opts)
    counter = _ImageCounter(image)
    trainer = Trainer(net, optimizers, sampler, steps=steps, out_dir=out, callbacks=extra,
                      log_every=train_cfg.log_every, checkpoint_every=train_cfg.checkpoint_every,
                      name=model, device=dev, train_config=train_cfg, dataset=ds, prepare_batch=counter,
                      torch_seed=seeds["noise"] + 1, threads=threads, cudnn_benchmark=train_cfg.cudnn_benchmark,
                      tune_malloc=train_cfg.tune_malloc, progress=progress)
    result = trainer.fit(resume=resume, overwrite=overwrite)
    seconds = result["seconds"]
    summary = {
        "model": model, "dataset": ds_name, "steps": steps, "seed": int(seed),
        "final_loss": result["final_loss"], "terms": result["terms"],
        "images_per_second": (counter.images / seconds) if seconds > 0 and counter.images else 0.0,
        "seconds": seconds, "resumed_from": result["resumed_from"], "device": str(dev),
        "batch_size": train_cfg.batch_size, "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "torch_threads": torch.get_num_threads() if threads is None else int(threads), "contract": contract,
    }
    atomic_write_json(out / "summary.json", summary)
    return summary


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------
def read_run_config(path: str | os.PathLike) -> dict:
    """The ``config.json`` of a run directory."""
    p = Path(path) / "config.json"
    if not p.is_file():
        raise CrlkitError(f"{path} is not a crlkit run directory (no config.json)")
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CrlkitError(f"{p} is not valid JSON ({e.__class__.__name__}); it is not a crlkit run config") from None


def load_model(path: str | os.PathLike, device: str = "cpu", *, channels_last: bool | None = None) -> Method:
    """Rebuild a trained model from ``DIR/config.json`` + ``DIR/checkpoint.pt``, in eval mode.

    The checkpoint is read with ``torch.load(..., weights_only=True)``: a file that is not a
    crlkit checkpoint, or a truncated one, raises :class:`CrlkitError` naming it. The
    returned module has ``encode(x)`` (and ``encode_dist`` / ``decode`` for VAEs) and a
    ``run_config`` attribute holding the parsed ``config.json``. Image models are put in
    channels-last memory format (``channels_last=None``: as the run trained), which about
    halves CPU encoding time; inputs may stay in the usual NCHW layout.
    """
    cfg = read_run_config(path)
    state = read_checkpoint(Path(path) / "checkpoint.pt", map_location="cpu")
    cls = get_model_class(cfg["model"])
    model_cfg = build_config(cls.Config, cfg["model_config"], what=f"model {cfg['model']!r}")
    net = _build_model(cls, model_cfg, tuple(cfg["observation_shape"]), 0)
    try:
        net.load_state_dict(state["model"])
    except RuntimeError:
        raise CrlkitError(f"{Path(path) / 'checkpoint.pt'} does not match the model in its config.json "
                          f"({cfg['model']})") from None
    net.run_config = cfg
    if channels_last is None:
        channels_last = bool(cfg.get("train_config", {}).get("channels_last", False))
    if channels_last and len(cfg["observation_shape"]) == 3:
        net = net.to(memory_format=torch.channels_last)
    return net.to(torch.device(_device(device))).eval()


def load_dataset(path: str | os.PathLike) -> GroundTruthData:
    """The dataset a run was trained on (by registered name and options)."""
    cfg = read_run_config(path)
    return make_dataset(cfg["dataset"], **cfg.get("data_options", {}))


__all__ = ["Trainer", "TrainConfig", "TrainingDiverged", "train", "load_model", "load_dataset", "read_run_config",
           "resolve_settings", "check_run_dir", "clear_run", "process_settings", "cpu_allocator"]
