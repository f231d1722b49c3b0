"""Callbacks: what varies around the training loop (the loop itself never does).

The trainer calls, in order::

    on_fit_start(trainer)                 once, after the model, optimizers, sampler and any
                                          checkpoint state are in place, before the first step
    on_step_start(trainer, step)          before each update (``step`` = updates done so far)
    on_step_end(trainer, step, terms)     after each update; ``terms`` are detached tensors
    on_log(trainer, rows)                 every ``log_every`` steps, with the rows moved to the
                                          host (``[{"step": int, term: float, ...}, ...]``)
    on_checkpoint(trainer, step)          after a checkpoint was written durably
    on_fit_end(trainer, summary)          once, after the loop (also when it raised: then
                                          ``summary`` is None); restore what you changed here

A callback that carries state across steps (a schedule's position, an evaluation's best
score) returns it from :meth:`Callback.state_dict`; the trainer stores it in the checkpoint
under the callback's :attr:`Callback.key` and hands it back through :meth:`load_state_dict`
on resume, so a resumed run continues exactly.

The trainer object passed to every hook exposes ``model``, ``optimizers`` (``{name:
Optimizer}``), ``sampler``, ``dataset``, ``device``, ``out_dir`` (a Path or None),
``train_config``, ``step`` (updates done) and ``total_steps``.

A model adds its own callbacks (a learning-rate schedule, whitening fitted on a fixed sample
before step 1) by returning them from ``Method.callbacks(train_config)``; it never edits its
optimizers inside ``loss``.
"""

from __future__ import annotations

from typing import Any


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
