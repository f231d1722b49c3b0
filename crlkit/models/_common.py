"""Pieces shared by the identifiable methods (``ivae``, ``iflow``, ``contrastive``,
``content_style``, ``interventional``): whitening of vector observations, the Gaussian KL of a
posterior to a factorised prior, one-hot auxiliary variables, encoding in batches, and the
config checks that name the field.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from crlkit.errors import CrlkitError
from crlkit.registry import unknown_choice
from crlkit.train.callbacks import Callback
from crlkit.train.schedules import LRSchedule, cosine

__all__ = ["Whitening", "FitWhitening", "method_callbacks", "gaussian_kl", "one_hot", "encode_in_batches",
           "clamp_straight_through", "prior_split", "LOGVAR_RANGE", "WHITEN_SAMPLES", "WHITEN_SEED", "vector_dim",
           "batch_entry", "check_choice", "check_positive", "check_at_least"]


# --------------------------------------------------------------------------------------------
# whitening, fitted once on a fixed sample before step 1
# --------------------------------------------------------------------------------------------
#: samples drawn from the training dataset to fit the whitening (enough for a covariance of
#: the few dozen dimensions these methods see to a few % per entry)
WHITEN_SAMPLES = 10000
#: seed of that sample: fixed, so restarts of one setting share one whitening map W and their
#: bounds differ only by what the models learned
WHITEN_SEED = 0


class Whitening(nn.Module):
    """Affine whitening ``x -> W (x - m)`` with ``W = Cov(x)^{-1/2}`` (ZCA).

    The leaky-ReLU mixings give coordinates of very different scales; a method with a fixed
    decoder variance (iVAE) or a fixed similarity (InfoNCE) then weighs them very unequally.
    Any invertible affine preconditioning keeps identifiability, so the statistics need not be
    exact. :meth:`fit` sets them from a sample (the :class:`FitWhitening` callback does so before
    step 1); ``mean``, ``matrix`` and ``fitted`` are buffers, so a checkpoint restores them and a
    resumed run continues exactly. Before it is fitted (or with ``enabled=False``) the map is the
    identity.
    """

    def __init__(self, dim: int, *, enabled: bool = True, eps: float = 1e-6):
        super().__init__()
        self.enabled = enabled
        self.eps = eps
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("matrix", torch.eye(dim))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def fit(self, x: torch.Tensor | np.ndarray) -> None:
        """Set ``m`` and ``W`` from ``x`` (N, D), in float64."""
        x64 = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x.detach().cpu()).double()
        x64 = x64.reshape(x64.shape[0], -1)
        if x64.shape[0] < 2:
            raise CrlkitError("whitening needs at least 2 samples")
        mean = x64.mean(0)
        cov = torch.cov(x64.T, correction=0).reshape(x64.shape[1], x64.shape[1])
        evals, evecs = torch.linalg.eigh(cov)
        inv_sqrt = evecs @ torch.diag(evals.clamp_min(self.eps).rsqrt()) @ evecs.T  # (D, D)
        self.mean.copy_(mean.to(self.mean.dtype))
        self.matrix.copy_(inv_sqrt.to(self.matrix.dtype))
        self.fitted.fill_(True)

    def log_abs_det(self) -> torch.Tensor:
        """``log |det W|``: what the whitening adds to a log-density of ``W (x - m)`` to make it
        a log-density of ``x`` (0 when whitening is off)."""
        if not self.enabled:
            return self.matrix.new_zeros(())
        return torch.linalg.slogdet(self.matrix)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], -1)
        if not self.enabled:
            return x
        return (x - self.mean) @ self.matrix.T


class FitWhitening(Callback):
    """Before step 1, fit ``trainer.model.whitening`` on :data:`WHITEN_SAMPLES` observations
    drawn from ``trainer.dataset`` with the fixed seed :data:`WHITEN_SEED`.

    A resumed run finds the buffers fitted (loaded from its checkpoint) and leaves them; a fresh
    run of the same dataset always gets the same ``W``.
    """

    def __init__(self, samples: int = WHITEN_SAMPLES, seed: int = WHITEN_SEED):
        self.samples = int(samples)
        self.seed = int(seed)

    def on_fit_start(self, trainer) -> None:
        whitening = trainer.model.whitening
        if not whitening.enabled or bool(whitening.fitted):
            return
        _, x = trainer.dataset.sample(self.samples, np.random.default_rng(self.seed))
        whitening.fit(np.asarray(x.cpu() if torch.is_tensor(x) else x, dtype=np.float64))


def method_callbacks(whiten: bool, lr_schedule: str, factor=cosine, *, steps: int = 0) -> list[Callback]:
    """The callbacks of an identifiable method: :class:`FitWhitening` when it whitens, and an
    :class:`~crlkit.train.schedules.LRSchedule` with ``factor`` over ``steps`` (0: the run's
    steps) when ``lr_schedule`` is "cosine"."""
    check_at_least("lr_decay_steps", steps, 0, " (0: the run's steps)")
    out: list[Callback] = [FitWhitening()] if whiten else []
    if lr_schedule == "cosine":
        out.append(LRSchedule(factor, steps=steps or None))
    return out


# --------------------------------------------------------------------------------------------
# Gaussian pieces
# --------------------------------------------------------------------------------------------
#: log-variances of q(z|x) and p(z|u) are clamped to this range (std e^-10 .. e^5 in whitened units):
#: at lr 1e-2 an iVAE encoder log-variance jumped past ~177 in one step, exp() overflowed and the
#: reconstruction went to inf (3 leaky-ReLU layers, slope 0.2, seed 0). Normal runs stay far inside
#: the range, so the clamp leaves them bit-identical. The clamp passes gradients straight through: a
#: plain clamp has zero gradient outside the range, and a run with decoder variance 1e-3 had its
#: posterior log-variances pinned at -20 and its prior's at +10 for good (MCC 0.30).
LOGVAR_RANGE = (-20.0, 10.0)


def clamp_straight_through(t: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """``t.clamp(lo, hi)`` in the forward pass, the identity's gradient in the backward pass."""
    return t + (t.clamp(lo, hi) - t).detach()


def prior_split(h: torch.Tensor, with_mean: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, logvar)`` of a factorised Gaussian prior from its parameter net's output ``h``
    (``[mean, logvar]`` halves, or the log-variances alone with mean 0); log-variances clamped
    to :data:`LOGVAR_RANGE`."""
    mean, logvar = h.chunk(2, dim=-1) if with_mean else (torch.zeros_like(h), h)
    return mean, clamp_straight_through(logvar, *LOGVAR_RANGE)


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor, p_mean: torch.Tensor | None = None,
                p_logvar: torch.Tensor | None = None, *, var: torch.Tensor | None = None) -> torch.Tensor:
    r"""Per-sample ``KL(N(m, S) || N(pm, diag exp(p_logvar)))``, shape (B,).

    ``KL = 1/2 sum_i [(S_ii + (m_i - pm_i)^2) / ps_i + log ps_i - 1] - 1/2 log det S``

    ``logvar`` carries ``log det S = sum_i logvar_i`` (a diagonal S, or a full one
    ``S = L L^T`` whose Cholesky diagonal is ``exp(logvar / 2)``); ``var`` is ``diag S``
    (default ``exp(logvar)``, the diagonal case). The prior defaults to N(0, I).
    """
    var = logvar.exp() if var is None else var
    p_mean = torch.zeros_like(mean) if p_mean is None else p_mean
    p_logvar = torch.zeros_like(logvar) if p_logvar is None else p_logvar
    return 0.5 * (p_logvar - logvar + (var + (mean - p_mean).pow(2)) / p_logvar.exp() - 1).sum(-1)


def one_hot(u: torch.Tensor, k: int) -> torch.Tensor:
    """Segment indices (B,) or (B, 1) to one-hot (B, k); a (B, k) auxiliary variable as floats."""
    if u.dim() == 1 or (u.dim() == 2 and u.shape[1] == 1 and k != 1):
        idx = u.reshape(-1).long()
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= k):
            raise CrlkitError(f"segment index out of range for aux_dim={k}: "
                              f"got values in [{int(idx.min())}, {int(idx.max())}]")
        return nn.functional.one_hot(idx, k).float()
    if u.shape[-1] != k:
        raise CrlkitError(f"auxiliary variable u has {u.shape[-1]} columns; the model has aux_dim={k}")
    return u.float()


@torch.no_grad()
def encode_in_batches(model: nn.Module, x, *, batch: int = 4096) -> np.ndarray:
    """``model.encode`` over ``x`` (N, ...) in batches on the model's device, in eval mode
    (restored after); returns a float64 array (N, n)."""
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        out = [model.encode(torch.as_tensor(np.asarray(x[i:i + batch]), dtype=torch.float32, device=dev))
               .double().cpu().numpy() for i in range(0, len(x), batch)]
    finally:
        model.train(was_training)
    return np.concatenate(out)


# --------------------------------------------------------------------------------------------
# checks that name the field
# --------------------------------------------------------------------------------------------
def vector_dim(observation_shape: tuple[int, ...], method: str) -> int:
    """D of vector observations (D,); other shapes raise, naming the method."""
    if len(observation_shape) != 1:
        raise CrlkitError(
            f"{method} works on vector observations (D,) such as the 'synthetic' dataset; "
            f"got observation_shape {tuple(observation_shape)}")
    return int(observation_shape[0])


def batch_entry(batch: dict[str, torch.Tensor], names: tuple[str, ...], method: str) -> torch.Tensor:
    """The first of ``names`` present in ``batch`` (samplers name the second view variously)."""
    for n in names:
        if n in batch:
            return batch[n]
    raise CrlkitError(f"{method} needs a batch with one of the keys {names}; got keys {sorted(batch)}")


def check_choice(field: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise CrlkitError(unknown_choice(field, value, [str(c) for c in choices]))


def check_positive(field: str, value: float) -> None:
    if not value > 0:
        raise CrlkitError(f"{field} must be > 0; got {value}")


def check_at_least(field: str, value: float, lo: float, note: str = "") -> None:
    if not value >= lo:
        raise CrlkitError(f"{field} must be >= {lo}{note}; got {value}")
