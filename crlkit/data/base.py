"""The ground-truth data protocol every crlkit dataset implements.

A dataset is a generative process with its truth kept: factors (latents) are sampled, then
rendered (mixed) into observations. Image datasets have discrete factors with
``factor_sizes``; vector datasets built from an SCM have continuous latents
(``factor_sizes is None``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crlkit.errors import CrlkitError
from crlkit.seeding import as_generator


class GroundTruthData:
    """Base class of crlkit datasets.

    Attributes
    ----------
    name : str
        Registry name.
    factor_names : tuple of str
        One name per factor, in column order of the factor arrays.
    factor_sizes : tuple of int or None
        Number of values of each discrete factor; ``None`` for continuous latents.
    observation_shape : tuple of int
        Shape of one observation, ``(C, H, W)`` for images or ``(D,)`` for vectors.
    graph : numpy.ndarray or None
        Adjacency over the factors (``A[i, j] != 0`` iff factor i -> factor j) where the
        factors have a causal graph; ``None`` where they are independent.
    """

    name: str = ""
    factor_names: tuple[str, ...] = ()
    factor_sizes: tuple[int, ...] | None = None
    observation_shape: tuple[int, ...] = ()
    graph: np.ndarray | None = None

    # --- the protocol -------------------------------------------------------------------
    @property
    def num_factors(self) -> int:
        return len(self.factor_names)

    @property
    def discrete(self) -> bool:
        return self.factor_sizes is not None

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Sample ``n`` factor vectors: int64 ``(n, k)`` indices for discrete datasets
        (uniform over each factor, independent unless the dataset says otherwise)."""
        if self.factor_sizes is None:
            raise NotImplementedError
        rng = as_generator(rng)
        cols = [rng.integers(0, s, size=n) for s in self.factor_sizes]
        return np.stack(cols, axis=1).astype(np.int64)

    def observations_from_factors(self, factors: np.ndarray, rng: np.random.Generator | None = None,
                                  *, device: Any = None):
        """Render observations, float32 in [0, 1], shape ``(n, *observation_shape)``.

        Returns a NumPy array, or a ``torch.Tensor`` on ``device`` when one is given.
        """
        raise NotImplementedError

    def sample(self, n: int, rng: np.random.Generator, *, device: Any = None):
        """``(factors, observations)`` for ``n`` fresh samples."""
        rng = as_generator(rng)
        factors = self.sample_factors(n, rng)
        return factors, self.observations_from_factors(factors, rng, device=device)

    # --- helpers for implementations ----------------------------------------------------
    def validate_factors(self, factors) -> np.ndarray:
        """Check shape and range of discrete factor indices; raise ValueError naming the factor."""
        factors = np.asarray(factors)
        if factors.ndim != 2 or factors.shape[1] != self.num_factors:
            raise CrlkitError(
                f"factors must have shape (n, {self.num_factors}) for {self.name} "
                f"({', '.join(self.factor_names)}); got {factors.shape}")
        if self.factor_sizes is not None:
            if not np.issubdtype(factors.dtype, np.integer):
                if not np.all(np.equal(np.mod(factors, 1), 0)):
                    raise CrlkitError(f"factors of {self.name} must be integer indices")
                factors = factors.astype(np.int64)
            for j, (fname, size) in enumerate(zip(self.factor_names, self.factor_sizes)):
                col = factors[:, j]
                if col.size and (col.min() < 0 or col.max() >= size):
                    bad = col[(col < 0) | (col >= size)][0]
                    raise CrlkitError(
                        f"factor {fname!r} of {self.name} must be in [0, {size - 1}]; got {bad}")
        return factors

    def contract(self):
        """The structure this dataset offers (:class:`crlkit.contracts.DataContract`): its own
        ``declared_contract`` when it has one, else crlkit's declared table or a default."""
        from crlkit.contracts import dataset_contract

        return dataset_contract(self)

    def info(self) -> dict:
        return {"name": self.name, "factor_names": list(self.factor_names),
                "factor_sizes": None if self.factor_sizes is None else list(self.factor_sizes),
                "observation_shape": list(self.observation_shape)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, factors={self.factor_names})"
