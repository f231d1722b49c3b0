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

import math
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn


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


def train_steps(model: nn.Module, batch_loss: Callable[[int], torch.Tensor], *, steps: int, lr: float,
                weight_decay: float = 0.0, params=None, checkpoints: Iterable[int] = (),
                on_checkpoint: Callable[[int], None] | None = None,
                reset_optimizer_at: int | None = None) -> dict:
    """Adam on ``batch_loss(step)`` for ``steps`` updates (L2 ``weight_decay`` is the coupled,
    classical penalty).

    After update ``s`` for each ``s`` in ``checkpoints``, ``on_checkpoint(s)`` is called with the
    model in eval mode (a validation evaluation: the caller keeps a copy as a candidate).
    ``reset_optimizer_at``: a fresh Adam (its moment estimates dropped) before that update, as
    IRM's reference code does when its penalty weight jumps. A non-finite loss stops the run
    before its update is applied (the checkpoints so far stay valid).

    Returns ``{"losses": [...], "diverged_at": step or None}``."""
    param_list = list(params if params is not None else model.parameters())

    def adam():
        return torch.optim.Adam(param_list, lr=lr, weight_decay=weight_decay)

    opt = adam()
    marks = set(int(c) for c in checkpoints)
    losses, diverged = [], None
    model.train()
    for step in range(int(steps)):
        if reset_optimizer_at is not None and step == reset_optimizer_at and step > 0:
            opt = adam()
        loss = batch_loss(step)
        value = float(loss.detach())
        if not math.isfinite(value):
            diverged = step
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(value)
        if on_checkpoint is not None and step + 1 in marks:
            model.eval()
            on_checkpoint(step + 1)
            model.train()
    model.eval()
    return {"losses": losses, "diverged_at": diverged}


@torch.no_grad()
def predict_logits(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Logits ``(n,)`` in eval mode, in chunks."""
    if isinstance(model, nn.Module):
        model.eval()
    return torch.cat([model(x[s:s + batch_size]) for s in range(0, len(x), batch_size)])


@torch.no_grad()
def extract_features(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
    return torch.cat([fn(x[s:s + batch_size]) for s in range(0, len(x), batch_size)]).cpu().numpy()
