"""Exogenous noise distributions, all standardised to mean 0 and variance 1.

``gaussian`` N(0, 1); ``laplace`` Laplace(0, 1/√2); ``uniform`` U(-√3, √3). Each has a
sampler, log-density, CDF and quantile function (used for exact densities and by the
impossibility construction, which maps latents through their marginal CDFs).
"""

from __future__ import annotations

import numpy as np
from scipy import special

from crlkit.errors import CrlkitError
from crlkit.registry import unknown_choice

NOISES = ("gaussian", "laplace", "uniform")
_LAPLACE_B = 1.0 / np.sqrt(2.0)
_UNIFORM_H = np.sqrt(3.0)


def check_noise(kind: str) -> str:
    if kind not in NOISES:
        raise CrlkitError(unknown_choice("noise", kind, NOISES))
    return kind


def sample_noise(kind: str, size, rng: np.random.Generator) -> np.ndarray:
    check_noise(kind)
    if kind == "gaussian":
        return rng.standard_normal(size)
    if kind == "laplace":
        return rng.laplace(0.0, _LAPLACE_B, size)
    return rng.uniform(-_UNIFORM_H, _UNIFORM_H, size)


def noise_logpdf(kind: str, e: np.ndarray) -> np.ndarray:
    check_noise(kind)
    if kind == "gaussian":
        return -0.5 * e ** 2 - 0.5 * np.log(2 * np.pi)
    if kind == "laplace":
        return -np.abs(e) / _LAPLACE_B - np.log(2 * _LAPLACE_B)
    return np.where(np.abs(e) <= _UNIFORM_H, -np.log(2 * _UNIFORM_H), -np.inf)


def noise_cdf(kind: str, e: np.ndarray) -> np.ndarray:
    check_noise(kind)
    if kind == "gaussian":
        return special.ndtr(e)
    if kind == "laplace":
        t = np.asarray(e) / _LAPLACE_B
        half = 0.5 * np.exp(-np.abs(t))  # the tail mass beyond |t|, accurate far out
        return np.where(t < 0, half, 1.0 - half)
    return np.clip((e + _UNIFORM_H) / (2 * _UNIFORM_H), 0.0, 1.0)


def noise_ppf(kind: str, q: np.ndarray) -> np.ndarray:
    check_noise(kind)
    if kind == "gaussian":
        return special.ndtri(q)
    if kind == "laplace":
        q = np.asarray(q)
        with np.errstate(divide="ignore"):  # from the nearer tail
            return _LAPLACE_B * np.where(q < 0.5, np.log(2 * q), -np.log(2 * (1 - q)))
    return -_UNIFORM_H + 2 * _UNIFORM_H * np.asarray(q)


def noise_support(kind: str) -> tuple[float, float]:
    check_noise(kind)
    return (-_UNIFORM_H, _UNIFORM_H) if kind == "uniform" else (-np.inf, np.inf)
