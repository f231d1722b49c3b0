r"""iFlow (Li, Hooi & Lee, ICLR 2020): iVAE's generative model fitted by its exact likelihood.

A normalising flow ``h = g^{-1}`` on the whitened observations (affine couplings between learned
invertible linear maps) and the conditionally factorised prior of :mod:`crlkit.models.ivae`;
the loss is the exact negative log-likelihood, in the data's units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from crlkit.errors import CrlkitError
from crlkit.models._common import (Whitening, batch_entry, check_choice, check_positive, method_callbacks, one_hot,
                                   prior_split, vector_dim)
from crlkit.models.architectures import mlp
from crlkit.models.base import Method, register_model
from crlkit.train.schedules import SCHEDULES

__all__ = ["IFlowConfig", "IFlow"]


@dataclass(frozen=True)
class IFlowConfig:
    num_latents: int = 5          # n; must equal the observation size D (the flow is a bijection)
    aux_dim: int = 40             # size of the auxiliary variable u (one-hot segments: their number)
    blocks: int = 8               # affine coupling blocks, each after a learned invertible linear map
    hidden: int = 64              # hidden units of each coupling MLP
    depth: int = 2                # hidden layers of each coupling MLP
    slope: float = 0.1            # leaky-ReLU slope of the coupling MLPs
    scale_bound: float = 2.0      # coupling log-scales squashed to (-b, b) by b tanh(s / b)
    prior_mean: bool = False      # learn the prior mean as a function of u (else mean 0)
    whiten: bool = True           # whiten x (statistics fitted on data) before the flow
    lr_schedule: str = "cosine"   # "cosine" (decay to 0 over the run) or "constant"
    lr_decay_steps: int = 0       # length of the cosine in steps (0: the run's --steps); fixed, an extended
                                  #   (--resume with more --steps) run keeps its schedule


class _InvertibleLinear(nn.Module):
    """``h -> h W^T + b`` with a square weight, orthogonal at initialisation; log|det W| by slogdet."""

    def __init__(self, n: int):
        super().__init__()
        self.weight = nn.Parameter(nn.init.orthogonal_(torch.empty(n, n)))
        self.bias = nn.Parameter(torch.zeros(n))

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return h @ self.weight.T + self.bias, torch.linalg.slogdet(self.weight)[1]

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return torch.linalg.solve(self.weight, (y - self.bias).T).T


class _AffineCoupling(nn.Module):
    """RealNVP coupling: the first ``k`` coordinates pass through and set a scale and shift of
    the rest, ``b -> b exp(s(a)) + t(a)``; log-det ``sum s(a)``. Zero-initialised output layer,
    so every block starts as the identity."""

    def __init__(self, n: int, hidden: int, depth: int, slope: float, bound: float):
        super().__init__()
        self.k, self.bound = n // 2, float(bound)
        self.net = mlp(self.k, 2 * (n - self.k), hidden, depth, slope=slope)
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def _scale_shift(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self.net(a).chunk(2, dim=-1)
        return self.bound * torch.tanh(s / self.bound), t

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = h[:, :self.k], h[:, self.k:]
        s, t = self._scale_shift(a)
        return torch.cat([a, b * s.exp() + t], dim=-1), s.sum(-1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        a, b = y[:, :self.k], y[:, self.k:]
        s, t = self._scale_shift(a)
        return torch.cat([a, (b - t) * (-s).exp()], dim=-1)


@register_model("iflow")
class IFlow(Method):
    r"""iVAE's generative model fitted by its exact likelihood with a normalising flow (iFlow:
    Li, Hooi & Lee, "Identifying through Flows for Recovering Latent Representations", ICLR 2020).

    The model of :class:`IVAE`, with a deterministic invertible mixing: ``x = g(z)``,
    ``p(z | u) = prod_i N(z_i; mu_i(u), exp(lambda_i(u)))``. The unmixing ``h = g^{-1}`` is a
    flow on the whitened observations (``blocks`` x [invertible linear map, affine coupling],
    then a final linear map), and the loss is the exact negative log-likelihood::

        -log p(x | u) = -log p(h(x) | u) - log |det J_h(x)| - log |det W|

    (W the whitening matrix; a constant during training, included so that the reported
    ``log_likelihood`` is the density of x itself and comparable with the data's true one). The
    identifiability theorem of iVAE holds for this model (z up to a permutation and
    per-coordinate affine maps, given >= 2n + 1 segments with affinely independent variances),
    and the exact likelihood has no gap to close: the ELBO of a mean-field iVAE at the true
    decoder falls short of the likelihood by the decoder's "independent mechanism analysis"
    contrast (see :class:`IVAE`), which made the ELBO prefer entangled solutions on sharply
    kinked leaky-ReLU mixings (bench/RESULTS_identify.md). The price: ``D`` must equal ``n``.

    The paper's flow is a rational-quadratic spline flow; this one uses RealNVP affine couplings
    (Dinh et al. 2017) between learned invertible linear maps, which suffice here.
    ``encode(x) = h(x)``; ``decode(z)`` is the inverse (the generative map ``g``).

    Batches: ``{"x": (B, D), "u": (B,) segment index or (B, aux_dim) one-hot}``.
    """

    Config = IFlowConfig
    batch_kind = "segment"

    def __init__(self, config: IFlowConfig, observation_shape: tuple[int, ...]):
        super().__init__(config, observation_shape)
        d = vector_dim(observation_shape, "iflow")
        n = config.num_latents
        if n < 2 or config.aux_dim < 1:
            raise CrlkitError(f"iflow needs num_latents >= 2 and aux_dim >= 1; got {n}, {config.aux_dim}")
        if d != n:
            raise CrlkitError(f"iflow is a bijection: num_latents must equal the observation size {d}; got {n}")
        if config.blocks < 1 or config.hidden < 1 or config.depth < 0:
            raise CrlkitError(f"iflow needs blocks >= 1, hidden >= 1, depth >= 0; got {config.blocks}, "
                              f"{config.hidden}, {config.depth}")
        check_positive("scale_bound", config.scale_bound)
        check_choice("lr_schedule", config.lr_schedule, SCHEDULES)
        self.whitening = Whitening(d, enabled=config.whiten)
        self.linears = nn.ModuleList(_InvertibleLinear(n) for _ in range(config.blocks + 1))
        self.couplings = nn.ModuleList(
            _AffineCoupling(n, config.hidden, config.depth, config.slope, config.scale_bound)
            for _ in range(config.blocks))
        # one-hot u: a table of per-segment natural parameters; starts at N(0, 1) for every segment
        self.prior = nn.Linear(config.aux_dim, 2 * n if config.prior_mean else n)
        nn.init.zeros_(self.prior.weight)
        nn.init.zeros_(self.prior.bias)

    def callbacks(self, train_config: Any) -> list:
        """Whitening fitted before step 1; the cosine learning-rate schedule."""
        return method_callbacks(self.config.whiten, self.config.lr_schedule, steps=self.config.lr_decay_steps)

    # -- the flow ---------------------------------------------------------------------------
    def _flow(self, xw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(h(xw), log |det J_h(xw)|)`` on whitened observations."""
        h, logdet = xw, xw.new_zeros(len(xw))
        for linear, coupling in zip(self.linears, self.couplings):
            h, ld = linear(h)
            h, ls = coupling(h)
            logdet = logdet + ld + ls
        h, ld = self.linears[-1](h)
        return h, logdet + ld

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self._flow(self.whitening(x))[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The generative map ``g = h^{-1}``, back in the observations' units."""
        h = self.linears[-1].inverse(z)
        for linear, coupling in zip(reversed(self.linears[:-1]), reversed(self.couplings)):
            h = linear.inverse(coupling.inverse(h))
        if not self.whitening.enabled:
            return h
        return torch.linalg.solve(self.whitening.matrix, h.T).T + self.whitening.mean

    def prior_params(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, logvar)`` of p(z|u), each (B, n)."""
        h = self.prior(one_hot(u, self.config.aux_dim).to(self.prior.weight.dtype))
        return prior_split(h, self.config.prior_mean)

    def log_likelihood(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``log p(x | u)`` per sample (B,), in the units of x."""
        z, logdet = self._flow(self.whitening(x))
        mean, logvar = self.prior_params(u)
        log_prior = -0.5 * ((z - mean).pow(2) / logvar.exp() + logvar + math.log(2 * math.pi)).sum(-1)
        return log_prior + logdet + self.whitening.log_abs_det()

    # -- objective --------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor], step: int):
        x = batch["x"]
        u = batch_entry(batch, ("u", "segment", "segments"), "iflow")
        ll = self.log_likelihood(x, u).mean()
        return -ll, {"log_likelihood": ll.detach()}
