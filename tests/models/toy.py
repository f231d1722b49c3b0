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
    """Discrete factors mixed linearly into 6-D vectors (for the MLP architecture)."""

    name = "toy_vectors"
    factor_names = ("a", "b", "c")
    factor_sizes = (5, 5, 5)
    observation_shape = (6,)

    def observations_from_factors(self, factors, rng=None, *, device=None):
        f = self.validate_factors(factors).astype(np.float32) / 4.0
        mix = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
        out = f @ mix
        return torch.as_tensor(out, device=device) if device is not None else out
