"""A tiny ground-truth dataset for the dataset-driven metrics: 3 discrete factors on a small
grid, observations = a fixed linear embedding of the factors (deterministic rendering)."""

import numpy as np
import pytest

from crlkit.data.base import GroundTruthData


class ToyGrid(GroundTruthData):
    name = "toy_grid"
    factor_names = ("a", "b", "c")
    factor_sizes = (4, 5, 3)
    observation_shape = (6,)

    def __init__(self):
        self.mix = np.random.default_rng(123).standard_normal((3, 6))

    def observations_from_factors(self, factors, rng=None, *, device=None):
        f = self.validate_factors(factors).astype(np.float32)
        return (f @ self.mix).astype(np.float32)


@pytest.fixture
def toy():
    return ToyGrid()


@pytest.fixture
def toy_identity(toy):
    """Representation recovering the factors exactly from observations (a, b, c)."""
    pinv = np.linalg.pinv(toy.mix)
    return lambda x: np.asarray(x, dtype=np.float64) @ pinv
