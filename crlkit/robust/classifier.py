"""A small, fast CNN classifier and the training loop every robust method shares.

    x (3, 32, 32) -> [conv3x3 w, ReLU, maxpool2] -> [conv3x3 2w, ReLU, maxpool2]
                  -> [conv3x3 2w, ReLU] -> global max pool -> features (2w) -> linear -> 1 logit

Global max pooling makes the classifier translation invariant (the animal moves) and lets a
small object's detector respond as strongly as a large one's (with average pooling the small
animal's features were diluted by the background, and balanced training stayed at chance). With
``width = 16`` it costs ~2 MFLOP per 32x32 image, so a few thousand steps take tens of
seconds on one CPU thread.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from crlkit.train.callbacks import Callback


class SmallCNN(nn.Module):
    """Binary classifier: ``forward(x) -> logits (B,)``; ``features(x) -> (B, 2 * width)``."""

    def __init__(self, in_channels: int = 3, width: int = 16, out_dim: int = 1):
        super().__init__()
        w = int(width)
        self.trunk = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU(),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        )
        self.feature_dim = 2 * w
        self.head = nn.Linear(self.feature_dim, out_dim)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)  # (B, 2w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.trunk(x))
        return out[:, 0] if out.shape[1] == 1 else out  # (B,) logits for one output


class LinearOnFeatures(nn.Module):
    """``x -> head(normalise(features(x)))``: a frozen feature map with a (re)trained last layer."""

    def __init__(self, features: Callable[[torch.Tensor], torch.Tensor], mean: np.ndarray, std: np.ndarray,
                 coef: np.ndarray, intercept: float):
        super().__init__()
        self._features = features
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        self.register_buffer("coef", torch.as_tensor(coef, dtype=torch.float32).reshape(-1))
        self.register_buffer("intercept", torch.as_tensor(float(intercept)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (self._features(x) - self.mean) / self.std
        return z @ self.coef + self.intercept


# --- batch index streams (seeded torch.Generator; no global RNG) ---------------------------
def epoch_batches(n: int, batch_size: int, gen: torch.Generator) -> Iterable[torch.Tensor]:
    """Indices of shuffled epochs, ``batch_size`` at a time (at most ``n``), forever."""
    batch_size = max(1, min(int(batch_size), int(n)))
    while True:
        perm = torch.randperm(n, generator=gen)
        for s in range(0, n - batch_size + 1, batch_size):
            yield perm[s:s + batch_size]


def weighted_batches(weights: torch.Tensor, batch_size: int, gen: torch.Generator) -> Iterable[torch.Tensor]:
    """Indices drawn with replacement with probability proportional to ``weights``, forever."""
    w = torch.as_tensor(weights, dtype=torch.float64)
    while True:
        yield torch.multinomial(w, batch_size, replacement=True, generator=gen)


def group_balanced_weights(groups: torch.Tensor) -> torch.Tensor:
    """Per-example weights ``1 / count(group)``: every group is drawn equally often."""
    groups = torch.as_tensor(groups)
    counts = torch.bincount(groups).to(torch.float64)
    return 1.0 / counts[groups]


def eval_steps(steps: int, evals: int) -> list[int]:
    """``evals`` checkpoint steps spread evenly over ``steps`` updates, the last one included."""
    steps, evals = int(steps), max(1, int(evals))
    return sorted({max(1, round(steps * k / evals)) for k in range(1, evals + 1)})


class _ClosureStep(nn.Module):
    """The trainer's view of a classifier: one Adam update on ``batch_loss(step)`` per step."""

    def __init__(self, model: nn.Module, batch_loss: Callable[[int], torch.Tensor]):
        super().__init__()
        self.net, self.batch_loss = model, batch_loss

    def training_step(self, batch, step: int, optimizers: dict) -> dict:
        loss = self.batch_loss(step)
        opt = optimizers["adam"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.detach()}


class _StepCount:
    """The trainer's sampler: the loss closures draw their own batches from seeded generators."""

    def __init__(self):
        self.n = 0

    def __iter__(self):
        return self

    def __next__(self):
        self.n += 1
        return None

    def state_dict(self) -> dict:
        return {"n": self.n}

    def load_state_dict(self, state: dict) -> None:
        self.n = int(state["n"])


class ValidationCheckpoints(Callback):
    """After each update in ``steps``, put the model in eval mode and call ``fn(step)`` (the
    caller scores a copy on the validation split and keeps it as a candidate). Notes the first
    non-finite loss, whose step the trainer's NaN guard then stops at."""

    key = "validation_checkpoints"

    def __init__(self, steps: Iterable[int], fn: Callable[[int], None] | None):
        self.steps, self.fn = set(int(s) for s in steps), fn
        self.diverged_at: int | None = None

    def on_step_end(self, trainer, step, terms):
        if self.diverged_at is None and not bool(torch.isfinite(terms["loss"])):
            self.diverged_at = step
        if self.fn is not None and self.diverged_at is None and step + 1 in self.steps:
            trainer.model.eval()
            self.fn(step + 1)
            trainer.model.train()


class ResetAdam(Callback):
    """Drop Adam's moment estimates before update ``at`` (IRM's penalty weight jumps there)."""

    key = "reset_adam"

    def __init__(self, at: int):
        self.at = int(at)

    def on_step_start(self, trainer, step):
        if step == self.at and step > 0:
            trainer.optimizers["adam"].state.clear()


def train_steps(model: nn.Module, batch_loss: Callable[[int], torch.Tensor], *, steps: int, lr: float,
                weight_decay: float = 0.0, params=None, checkpoints: Iterable[int] = (),
                on_checkpoint: Callable[[int], None] | None = None,
                reset_optimizer_at: int | None = None) -> dict:
    """Adam on ``batch_loss(step)`` for ``steps`` updates through the common
    :class:`~crlkit.train.Trainer` (L2 ``weight_decay`` is the coupled, classical penalty).

    After update ``s`` for each ``s`` in ``checkpoints``, ``on_checkpoint(s)`` is called with the
    model in eval mode (:class:`ValidationCheckpoints`). ``reset_optimizer_at``: Adam's moment
    estimates are dropped before that update (:class:`ResetAdam`), as IRM's reference code does
    when its penalty weight jumps. A non-finite loss stops the run (the trainer's NaN guard,
    checked every step); the checkpoints before it stay valid.

    Returns ``{"diverged_at": update index or None, "summary": the trainer's summary or None}``."""
    from crlkit.train import Trainer, TrainingDiverged

    param_list = list(params if params is not None else model.parameters())
    opt = torch.optim.Adam(param_list, lr=lr, weight_decay=weight_decay)
    marks = ValidationCheckpoints(checkpoints, on_checkpoint)
    callbacks: list[Callback] = [marks]
    if reset_optimizer_at is not None:
        callbacks.append(ResetAdam(reset_optimizer_at))
    device = next(model.parameters()).device
    trainer = Trainer(_ClosureStep(model, batch_loss), {"adam": opt}, _StepCount(), steps=int(steps),
                      callbacks=callbacks, log_every=1, device=device, name=type(model).__name__)
    model.train()
    summary = None
    try:
        summary = trainer.fit()
    except TrainingDiverged:
        pass
    model.eval()
    return {"diverged_at": marks.diverged_at, "summary": summary}


@torch.no_grad()
def predict_logits(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Logits ``(n,)`` in eval mode, in chunks."""
    if isinstance(model, nn.Module):
        model.eval()
    return torch.cat([model(x[s:s + batch_size]) for s in range(0, len(x), batch_size)])


@torch.no_grad()
def extract_features(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
    return torch.cat([fn(x[s:s + batch_size]) for s in range(0, len(x), batch_size)]).cpu().numpy()
