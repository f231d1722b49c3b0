"""Learning-rate schedules as trainer callbacks, built on :class:`torch.optim.lr_scheduler.LambdaLR`.

A schedule is a factor ``f(step, total_steps)`` of each optimizer's initial learning rate:
update ``step`` (0-based) runs at ``initial_lr * f(step, total)``, ``total`` a fixed length or the
run's steps. The factor is a pure function of the step, so a resumed run needs no schedule state:
:meth:`LRSchedule.on_fit_start` rebuilds the scheduler at the step the checkpoint reached.

>>> from crlkit.train.schedules import LRSchedule, cosine
>>> cb = LRSchedule(cosine)           # what Method.callbacks(train_config) returns
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from crlkit.train.callbacks import Callback

__all__ = ["LRSchedule", "cosine", "cosine_with_restart", "SCHEDULES"]

#: ``lr_schedule`` values a method config accepts
SCHEDULES = ("cosine", "constant")


def cosine(step: int, total: int) -> float:
    """``0.5 (1 + cos(pi min(step, total) / total))``: 1 at step 0, 0 at ``total`` and after."""
    if total <= 0:
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))


def cosine_with_restart(restart: int, scale: float) -> Callable[[int, int], float]:
    """Two cosines: 1 -> 0 over ``[0, restart)``, then ``scale`` -> 0 over ``[restart, total)``
    (one cosine over the whole run when ``restart`` is 0 or not before ``total``)."""

    def factor(step: int, total: int) -> float:
        if restart <= 0 or total <= restart:
            return cosine(step, total)
        return cosine(step, restart) if step < restart else scale * cosine(step - restart, total - restart)

    return factor


class LRSchedule(Callback):
    """Set every optimizer's learning rate to ``initial_lr * factor(step, total)`` before update
    ``step``; ``total`` is ``steps``, or the run's ``trainer.total_steps`` when ``steps`` is None.

    ``initial_lr`` is kept in each parameter group (``torch.optim.lr_scheduler``'s convention),
    which the optimizer's checkpoint carries, so a resumed run starts from the same base rate.
    """

    key = "lr_schedule"

    def __init__(self, factor: Callable[[int, int], float], *, steps: int | None = None):
        self.factor = factor
        self.steps = steps
        self.schedulers: list[torch.optim.lr_scheduler.LambdaLR] = []

    def on_fit_start(self, trainer) -> None:
        total, done = int(self.steps or trainer.total_steps), int(trainer.step)
        self.schedulers = []
        for opt in trainer.optimizers.values():
            for group in opt.param_groups:
                group.setdefault("initial_lr", group["lr"])
            # last_epoch = done - 1: the constructor's first step() sets the rate of update `done`
            self.schedulers.append(torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s, total=total: self.factor(s, total), last_epoch=done - 1))

    def on_step_end(self, trainer, step: int, terms) -> None:
        for sched in self.schedulers:
            sched.step()
