"""Mechanisms ``f_j`` of additive-noise SCMs: ``z_j = f_j(z_pa(j)) + shift + scale · ε_j``.

A mechanism is a callable on the parents' values ``(n, k) -> (n,)`` (``k`` may be 0).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from crlkit.errors import CrlkitError
from crlkit.registry import unknown_choice

MECHANISMS = ("linear", "nonlinear")


class Mechanism:
    """Base class: ``__call__(parents (n, k)) -> (n,)``."""

    def __call__(self, parents: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True, eq=False)
class ZeroMechanism(Mechanism):
    """``f = 0``: the node ignores its parents (a root node, or a perfect intervention)."""

    def __call__(self, parents):
        return np.zeros(len(parents))


@dataclasses.dataclass(frozen=True, eq=False)
class LinearMechanism(Mechanism):
    """``f(pa) = pa · w``."""

    weights: np.ndarray  # (k,) one weight per parent, in the order of the parent indices

    def __call__(self, parents):
        return parents @ self.weights if len(self.weights) else np.zeros(len(parents))


@dataclasses.dataclass(frozen=True, eq=False)
class MLPMechanism(Mechanism):
    """``f(pa) = tanh(pa W1 + b1) · w2``: a random one-hidden-layer MLP (additive noise model)."""

    W1: np.ndarray  # (k, hidden) input weights
    b1: np.ndarray  # (hidden,) biases
    w2: np.ndarray  # (hidden,) output weights

    def __call__(self, parents):
        if self.W1.shape[0] == 0:
            return np.zeros(len(parents))
        return np.tanh(parents @ self.W1 + self.b1) @ self.w2


@dataclasses.dataclass(frozen=True, eq=False)
class ScaledMechanism(Mechanism):
    """``f(pa) = inner(pa · in_scale) / out_scale`` (the mechanism of a standardised node)."""

    inner: Mechanism       # the original mechanism
    in_scale: np.ndarray   # (k,) scale of each parent (undoes the parents' standardisation)
    out_scale: float       # scale of this node

    def __call__(self, parents):
        return self.inner(parents * self.in_scale) / self.out_scale


def random_weights(k: int, weight_range: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """``k`` weights with ``|w| ~ U(lo, hi)`` and a random sign (bounded away from zero)."""
    lo, hi = weight_range
    return rng.uniform(lo, hi, size=k) * rng.choice([-1.0, 1.0], size=k)


def random_mlp(k: int, rng: np.random.Generator, *, hidden: int = 16,
               strength_range: tuple[float, float] = (0.5, 2.0), n_probe: int = 2000) -> MLPMechanism:
    """A random MLP mechanism of ``k`` parents whose output on standard-normal parents has a
    standard deviation ``~ U(strength_range)`` (so every edge matters, like the bounded linear
    weights). Inputs are scaled by ``2/√k`` to reach tanh's non-linear regime."""
    W1 = rng.standard_normal((k, hidden)) * 2.0 / np.sqrt(max(k, 1))
    b1 = rng.uniform(-1.0, 1.0, size=hidden)
    w2 = rng.standard_normal(hidden)
    if k == 0:
        return MLPMechanism(W1, b1, w2)
    probe = rng.standard_normal((n_probe, k))
    sd = float(np.std(np.tanh(probe @ W1 + b1) @ w2))
    w2 = w2 * rng.uniform(*strength_range) / max(sd, 1e-12)
    return MLPMechanism(W1, b1, w2)


def check_mechanism(kind: str) -> str:
    if kind not in MECHANISMS:
        raise CrlkitError(unknown_choice("mechanism", kind, MECHANISMS))
    return kind
