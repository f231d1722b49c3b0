"""Callbacks: what varies around the training loop (the loop itself never does).

The trainer calls, in order::

    on_fit_start(trainer)                 once, after the model, optimizers, sampler and any
                                          checkpoint state are in place, before the first step
    on_step_start(trainer, step)          before each update (``step`` = updates done so far)
    on_step_end(trainer, step, terms)     after each update; ``terms`` are detached tensors
    on_log(trainer, rows)                 every ``log_every`` steps and after the last, with the
                                          rows moved to the host in one synchronisation
                                          (``[{"step": int, term: float, ...}, ...]``, values
                                          possibly non-finite: :class:`NaNGuard` runs first)
    on_checkpoint(trainer, step)          after a checkpoint was written durably
    on_fit_end(trainer, summary)          once, after the loop (also when it raised: then
                                          ``summary`` is None); restore what you changed here

A callback that carries state across steps (a schedule's position, an evaluation's best
score) returns it from :meth:`Callback.state_dict`; the trainer stores it in the checkpoint
under the callback's :meth:`Callback.state_key` and hands it back through
:meth:`Callback.load_state_dict` on resume (before ``on_fit_start``), so a resumed run
continues exactly. States must load with ``torch.load(..., weights_only=True)``: tensors,
numbers, strings, lists, tuples and dicts.

The trainer object passed to every hook (:class:`crlkit.train.Trainer`) exposes ``model``,
``optimizers`` (``{name: Optimizer}``), ``sampler``, ``dataset``, ``device``, ``out_dir``
(a Path or None), ``train_config``, ``name``, ``step`` (updates done), ``start_step`` (the
step this call of ``fit`` began at: > 0 on resume), ``total_steps`` and ``recent`` (the
last ``log_every`` logged rows).

A model adds its own callbacks (a learning-rate schedule, whitening fitted on a fixed sample
before step 1) by returning them from ``Method.callbacks(train_config)``; it never edits its
optimizers inside ``loss``.

The callbacks here, in the order the trainer runs them: :class:`NaNGuard`, :class:`CSVLog`,
:class:`TensorBoard` (optional), the method's and the caller's own, :class:`Progress`,
:class:`Checkpoint`. Checkpoint files are written by :func:`save_checkpoint` and read by
:func:`read_checkpoint`.
"""

from __future__ import annotations

import csv
import io
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crlkit.errors import CrlkitError
from crlkit.files import append_durably, atomic_save, atomic_write_text
from crlkit.timing import format_seconds


class TrainingDiverged(CrlkitError):
    """A loss term became NaN or infinite; the message names the step and the term."""


class Callback:
    """Base class: every hook is a no-op; override the ones you need."""

    #: name under which this callback's state is checkpointed (defaults to the class name)
    key: str = ""

    def state_key(self) -> str:
        return self.key or type(self).__name__

    def on_fit_start(self, trainer) -> None:
        pass

    def on_step_start(self, trainer, step: int) -> None:
        pass

    def on_step_end(self, trainer, step: int, terms: dict[str, Any]) -> None:
        pass

    def on_log(self, trainer, rows: list[dict[str, float]]) -> None:
        pass

    def on_checkpoint(self, trainer, step: int) -> None:
        pass

    def on_fit_end(self, trainer, summary: dict | None) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


# --------------------------------------------------------------------------------------------
# NaN guard
# --------------------------------------------------------------------------------------------
class NaNGuard(Callback):
    """Stop with :class:`TrainingDiverged` at the first non-finite logged term.

    Terms reach the host once per log interval, so the check costs no extra synchronisation.
    The message names the first bad step and a component term (over the total ``loss``).
    Placed before :class:`CSVLog` and :class:`Checkpoint`, so neither records a bad window:
    the last checkpoint holds the weights from before it.
    """

    def __init__(self, name: str = "model"):
        self.name = name

    def on_log(self, trainer, rows):
        for row in rows:
            bad = [k for k, v in row.items() if k != "step" and not np.isfinite(v)]
            if bad:
                term = next((k for k in bad if k != "loss"), bad[0])
                raise TrainingDiverged(
                    f"{self.name}: loss term {term!r} is {row[term]} at step {row['step']}; stopped "
                    f"(the last checkpoint, if any, holds the weights from before it). Try a lower lr or "
                    f"different hyperparameters.")


# --------------------------------------------------------------------------------------------
# CSV log
# --------------------------------------------------------------------------------------------
class CSVLog(Callback):
    """``log.csv``: a header, then one row per step (``step`` = updates done, then every term).

    Each flush is appended, flushed and ``fsync``-ed, so a crash loses at most the rows not
    yet flushed and can tear only the last line. On resume the log is cut back to the
    checkpoint's step (rows a crashed run wrote after its last checkpoint, and a torn last
    line, are dropped; the kept lines are rewritten atomically, byte for byte), so a resumed
    run's log equals an uninterrupted run's. It also seeds ``trainer.recent`` with the kept
    rows, so the summary of a run resumed at its end still averages the last interval.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.columns: list[str] | None = None

    def on_fit_start(self, trainer):
        self.columns = None
        if trainer.start_step == 0 or not self.path.exists():
            self.path.unlink(missing_ok=True)
            return
        header, lines = read_log_lines(self.path)
        kept = [line for line in lines if _log_step(line) <= trainer.start_step]
        atomic_write_text(self.path, "".join(line + "\n" for line in [header, *kept]) if header else "")
        if header:
            self.columns = next(csv.reader([header]))
            tail = kept[-trainer.recent.maxlen:] if kept else []
            for row in csv.DictReader(io.StringIO("\n".join([header, *tail]))):
                trainer.recent.append({k: (int(float(v)) if k == "step" else float(v)) for k, v in row.items()})

    def on_log(self, trainer, rows):
        buf = io.StringIO()
        if self.columns is None:
            self.columns = list(rows[0])
            csv.writer(buf, lineterminator="\n").writerow(self.columns)
        csv.DictWriter(buf, fieldnames=self.columns, lineterminator="\n").writerows(rows)
        append_durably(self.path, buf.getvalue())


def read_log_lines(path: str | Path) -> tuple[str | None, list[str]]:
    """``(header, data lines)`` of a ``log.csv``, without a torn (unterminated or unparsable) last line."""
    text = Path(path).read_text()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    elif lines:
        lines.pop()  # no final newline: the last line was torn by a crash
    if not lines:
        return None, []
    header, data = lines[0], lines[1:]
    width = len(next(csv.reader([header])))
    while data and (len(next(csv.reader([data[-1]]), [])) != width or _log_step(data[-1]) is None):
        data.pop()
    return header, data


def _log_step(line: str) -> int | None:
    try:
        return int(float(line.split(",", 1)[0]))
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------
# TensorBoard
# --------------------------------------------------------------------------------------------
class TensorBoard(Callback):
    """Every logged term as a TensorBoard scalar under ``log_dir`` (needs the tensorboard package)."""

    def __init__(self, log_dir: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise CrlkitError("tensorboard=true needs the tensorboard package: "
                              "pip install 'crlkit[tensorboard]'") from None
        self._writer_cls = SummaryWriter
        self.log_dir = Path(log_dir)
        self.writer = None

    def on_fit_start(self, trainer):
        self.writer = self._writer_cls(log_dir=str(self.log_dir))

    def on_log(self, trainer, rows):
        for r in rows:
            for k, v in r.items():
                if k != "step":
                    self.writer.add_scalar(k, v, r["step"])

    def on_fit_end(self, trainer, summary):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


# --------------------------------------------------------------------------------------------
# progress
# --------------------------------------------------------------------------------------------
class Progress(Callback):
    """Progress with the time left: a tqdm bar on a terminal, else a line every ``interval`` seconds.

    ``mode``: ``"bar"``, ``"lines"``, or ``None`` (a bar when ``stream`` is a terminal, lines
    otherwise). Lines read ``DESC: step 500/2000 (25%), 41.2 steps/s, 36 s left, loss 1.234``
    and one is always printed at the end.
    """

    def __init__(self, desc: str = "training", *, mode: str | None = None, interval: float = 30.0, stream=None):
        self.desc = desc
        self.stream = stream if stream is not None else sys.stderr
        if mode is None:
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "lines"
        if mode not in ("bar", "lines"):
            raise CrlkitError(f"progress mode must be 'bar' or 'lines'; got {mode!r}")
        self.mode = mode
        self.interval = float(interval)
        self.bar = None

    def on_fit_start(self, trainer):
        self.t0 = self.last = time.perf_counter()
        self.start = trainer.step
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self.bar = tqdm(total=trainer.total_steps, initial=trainer.step, desc=self.desc, unit="step",
                            dynamic_ncols=True, file=self.stream)

    def on_log(self, trainer, rows):
        if self.bar is not None:
            self.bar.update(len(rows))
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in rows[-1].items() if k != "step"}, refresh=False)
            return
        now = time.perf_counter()
        if now - self.last >= self.interval or trainer.step >= trainer.total_steps:
            self.last = now
            print(self.line(trainer, rows[-1], now), file=self.stream, flush=True)

    def line(self, trainer, row: dict, now: float) -> str:
        done, total = trainer.step, trainer.total_steps
        rate = (done - self.start) / max(now - self.t0, 1e-9)
        left = (total - done) / rate if rate > 0 else float("inf")
        loss = f", loss {row['loss']:.4g}" if "loss" in row else ""
        return (f"{self.desc}: step {done}/{total} ({100 * done / max(total, 1):.0f}%), {rate:.1f} steps/s, "
                f"{format_seconds(left)} left{loss}")

    def on_fit_end(self, trainer, summary):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# --------------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------------
CHECKPOINT_FORMAT = "crlkit-checkpoint"
CHECKPOINT_VERSION = 1


class Checkpoint(Callback):
    """``checkpoint.pt``: the trainer's whole state (``Trainer.state_dict``), written atomically
    and durably at the first log flush at or after each multiple of ``every`` steps, and after
    the last step. Runs after :class:`NaNGuard`, so only finite windows are checkpointed."""

    def __init__(self, path: str | Path, every: int):
        self.path = Path(path)
        self.every = int(every)
        if self.every < 1:
            raise CrlkitError(f"checkpoint_every must be >= 1; got {every}")

    def on_fit_start(self, trainer):
        self.saved = trainer.step
        if trainer.step >= trainer.total_steps and not self.path.exists():
            self.save(trainer)  # nothing to train: still leave a loadable run

    def on_log(self, trainer, rows):
        if trainer.step // self.every > self.saved // self.every or trainer.step >= trainer.total_steps:
            self.save(trainer)

    def save(self, trainer) -> None:
        save_checkpoint(self.path, trainer.state_dict())
        self.saved = trainer.step
        trainer.call("on_checkpoint", trainer.step)


def weights_only_plain(obj):
    """``obj`` with NumPy arrays and scalars made plain lists and numbers (``weights_only``-loadable)."""
    if isinstance(obj, dict):
        return {k: weights_only_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(weights_only_plain(v) for v in obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write ``state`` (with crlkit's format marker) to ``path`` atomically and durably."""
    state = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **weights_only_plain(state)}
    return atomic_save(path, lambda tmp: torch.save(state, tmp))


def read_checkpoint(path: str | Path, *, map_location="cpu") -> dict:
    """Load a crlkit checkpoint with ``torch.load(..., weights_only=True)`` (nothing it holds runs).

    A missing, truncated or foreign file raises :class:`CrlkitError` with one line naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise CrlkitError(f"no checkpoint at {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError, ... on bad files
        raise CrlkitError(f"{path} is not a crlkit checkpoint or is truncated ({type(e).__name__} while "
                          f"loading it with weights_only=True); it was not loaded") from None
    legacy = isinstance(state, dict) and {"step", "model", "optimizers"} <= set(state)
    if not isinstance(state, dict) or (state.get("format") != CHECKPOINT_FORMAT and not legacy):
        raise CrlkitError(f"{path} is not a crlkit checkpoint (it loads, but holds no crlkit training state)")
    return state


__all__ = ["Callback", "NaNGuard", "CSVLog", "TensorBoard", "Progress", "Checkpoint", "TrainingDiverged",
           "save_checkpoint", "read_checkpoint", "read_log_lines", "format_seconds", "CHECKPOINT_FORMAT"]
