"""A tiny procedural image dataset for fast model tests (16x16 or 32x32 binary squares)."""

from __future__ import annotations

import numpy as np
import torch

from crlkit.data.base import GroundTruthData


class ToySquares(GroundTruthData):
    """A filled square on a black ``size x size`` canvas; factors posX, posY, scale
    (4 x 4 x 3 values) and a binary "brightness" that dims the square to 0.5."""

    name = "toy_squares"
    factor_names = ("pos_x", "pos_y", "scale", "bright")
    factor_sizes = (4, 4, 3, 2)

    def __init__(self, size: int = 16):
        self.size = size
        self.observation_shape = (1, size, size)

    def observations_from_factors(self, factors, rng=None, *, device=None):
        f = self.validate_factors(factors)
        n, s = f.shape[0], self.size
        out = np.zeros((n, 1, s, s), np.float32)
        cell = s // 4
        for i, (px, py, sc, br) in enumerate(f):
            half = 1 + sc * max(cell // 4, 1)
            cx, cy = px * cell + cell // 2, py * cell + cell // 2
            out[i, 0, max(cy - half, 0):cy + half, max(cx - half, 0):cx + half] = 1.0 if br else 0.5
        return torch.as_tensor(out, device=device) if device is not None else out


class ToyVectors(GroundTruthData):
    """Three uniform discrete factors (16 values each, standardised) mixed linearly into
    8-D vectors of variance ~3 per dimension (for the MLP architecture)."""

    name = "toy_vectors"
    factor_names = ("a", "b", "c")
    factor_sizes = (16, 16, 16)
    observation_shape = (8,)

    def observations_from_factors(self, factors, rng=None, *, device=None):
        u = (self.validate_factors(factors).astype(np.float32) - 7.5) / 4.6  # ~unit variance
        mix = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
        out = u @ mix
        return torch.as_tensor(out, device=device) if device is not None else out


class ToyRing(GroundTruthData):
    """One angle factor (32 values on the full circle) and a radius factor (2 values) mapped
    to a ring and mixed linearly into 8-D: any continuous 2-D code of it is dependent across
    dimensions (a ring), so a FactorVAE discriminator can tell q(z) from its marginals."""

    name = "toy_ring"
    factor_names = ("angle", "radius")
    factor_sizes = (32, 2)
    observation_shape = (8,)

    def observations_from_factors(self, factors, rng=None, *, device=None):
        f = self.validate_factors(factors)
        theta = f[:, 0] * (2 * np.pi / 32)
        r = 2.0 + f[:, 1].astype(np.float64)
        ring = np.stack([r * np.cos(theta), r * np.sin(theta)], 1).astype(np.float32)
        mix = np.random.default_rng(1).normal(size=(2, 8)).astype(np.float32)
        out = ring @ mix
        return torch.as_tensor(out, device=device) if device is not None else out


class ToyNonlinear(GroundTruthData):
    """Two uniform factors (16 values each) through a fixed random 2-layer leaky-ReLU MLP
    (slope 0.2) into 8-D: a VAE's mean codes of it are correlated across dimensions."""

    name = "toy_nonlinear"
    factor_names = ("a", "b")
    factor_sizes = (16, 16)
    observation_shape = (8,)

    def observations_from_factors(self, factors, rng=None, *, device=None):
        u = (self.validate_factors(factors).astype(np.float32) - 7.5) / 4.6
        g = np.random.default_rng(2)
        a1 = g.normal(size=(2, 8)).astype(np.float32)
        a2 = g.normal(size=(8, 8)).astype(np.float32) / np.sqrt(8)
        h = u @ a1
        h = np.where(h > 0, h, 0.2 * h)
        out = (2.0 * (h @ a2)).astype(np.float32)
        return torch.as_tensor(out, device=device) if device is not None else out
