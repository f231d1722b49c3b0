"""``arrays``: your own data from a ``.npz`` file, with the truth you have.

    make_dataset("arrays", path="world.npz")            # --dataset arrays --data-set path=world.npz

The file holds

- ``factors``       (n, k) ground-truth latents (float: continuous; integer: discrete indices);
- ``observations``  (n, ...) one observation per row: vectors (n, D) or images (n, C, H, W) in [0, 1];

and, when present,

- ``segments``      (n,) integer label of an auxiliary variable / environment per sample;
- ``pairs``         (m, 2) row indices of pairs (two observations of related latents);
- ``graph``         (k, k) adjacency over the factors (``A[i, j] != 0`` iff i -> j).

Samples are drawn with replacement from the rows, so every command that trains on i.i.d.
samples accepts it. The dataset's contract declares only what the file holds: i.i.d. rows,
the number of segment values, that pairs exist (their law is unknown), the graph, and a mixing
of unknown class with observation noise of unknown law, since a file cannot say whether its
observations are an injective, noise-free function of its factors. Methods whose samplers draw
fresh latents from a latent causal model (segments, positive pairs, views, interventions) are
therefore refused on it with a line that says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from crlkit.contracts.data import DataContract
from crlkit.data import register_dataset
from crlkit.data.base import GroundTruthData, as_generator
from crlkit.errors import CrlkitError


class ArraysData(GroundTruthData):
    """Rows of a ``.npz`` file (see the module docstring)."""

    def __init__(self, path: str | Path):
        p = Path(path)
        if not p.exists():
            raise CrlkitError(f"arrays: no file at {p} (path= names a .npz with 'factors' and 'observations')")
        try:
            with np.load(p, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except (ValueError, OSError) as e:
            raise CrlkitError(f"arrays: {p} is not a readable .npz file ({e})") from None
        for key in ("factors", "observations"):
            if key not in arrays:
                raise CrlkitError(f"arrays: {p} has no array {key!r}; it holds {sorted(arrays)}")
        factors, obs = arrays["factors"], arrays["observations"]
        if factors.ndim != 2:
            raise CrlkitError(f"arrays: 'factors' must have shape (n, k); got {factors.shape}")
        if obs.ndim not in (2, 4) or len(obs) != len(factors):
            raise CrlkitError(f"arrays: 'observations' must have shape (n, D) or (n, C, H, W) with n = "
                              f"{len(factors)}; got {obs.shape}")
        n, k = factors.shape
        self.name = "arrays"
        self.path = str(p)
        self.discrete_factors = np.issubdtype(factors.dtype, np.integer)
        self.factors = factors.astype(np.int64 if self.discrete_factors else np.float64)
        self.observations = obs.astype(np.float32)
        self.factor_names = tuple(f"z{i}" for i in range(k))
        self.factor_sizes = None  # rows are resampled, not re-rendered: no per-factor grid
        self.observation_shape = tuple(obs.shape[1:])
        self.segments = arrays.get("segments")
        if self.segments is not None and (self.segments.shape != (n,) or not np.issubdtype(self.segments.dtype, np.integer)):
            raise CrlkitError(f"arrays: 'segments' must be integer labels of shape ({n},); got "
                              f"{self.segments.dtype} {self.segments.shape}")
        self.pairs = arrays.get("pairs")
        if self.pairs is not None and (self.pairs.ndim != 2 or self.pairs.shape[1] != 2 or self.pairs.size == 0
                                       or self.pairs.min() < 0 or self.pairs.max() >= n):
            raise CrlkitError(f"arrays: 'pairs' must be (m, 2) row indices in [0, {n - 1}]; got shape {self.pairs.shape}")
        graph = arrays.get("graph")
        if graph is not None and graph.shape != (k, k):
            raise CrlkitError(f"arrays: 'graph' must have shape ({k}, {k}); got {graph.shape}")
        self.graph = graph
        self._row_of: dict[bytes, int] | None = None

    def declared_contract(self) -> DataContract:
        structures = ("single",)
        return DataContract(
            observations="vector" if len(self.observation_shape) == 1 else "image",
            observation_shape=self.observation_shape,
            factors="discrete" if self.discrete_factors else "continuous", latents=self.num_factors,
            structures=structures,
            segments=0 if self.segments is None else int(len(np.unique(self.segments))),
            independent=self.graph is None or not np.any(self.graph != 0), mixing="unknown",
            observation_noise=None,
            note=f"rows of {self.path}" + (f"; {len(self.pairs)} stored pairs (law unknown)" if self.pairs is not None
                                          else "") +
                 ("; segment labels are stored, not drawn" if self.segments is not None else ""))

    def sample_factors(self, n: int, rng) -> np.ndarray:
        idx = as_generator(rng).integers(0, len(self.factors), size=int(n))
        return self.factors[idx]

    def sample(self, n: int, rng, *, device: Any = None):
        idx = as_generator(rng).integers(0, len(self.factors), size=int(n))
        x = self.observations[idx]
        return self.factors[idx], (torch.as_tensor(x, device=device) if device is not None else x)

    def observations_from_factors(self, factors, rng=None, *, device: Any = None):
        """The stored observation of each given factor row (looked up; rows not in the file raise)."""
        if self._row_of is None:
            self._row_of = {row.tobytes(): i for i, row in enumerate(self.factors)}
        f = np.asarray(factors, dtype=self.factors.dtype)
        try:
            idx = [self._row_of[row.tobytes()] for row in f]
        except KeyError:
            raise CrlkitError("arrays: observations exist only for the factor rows stored in the file") from None
        x = self.observations[idx]
        return torch.as_tensor(x, device=device) if device is not None else x

    def info(self) -> dict:
        out = super().info()
        out.update({"path": self.path, "n": len(self.factors), "segments": self.declared_contract().segments,
                    "pairs": 0 if self.pairs is None else len(self.pairs),
                    "graph": None if self.graph is None else np.asarray(self.graph).tolist()})
        return out


@register_dataset("arrays")
def make_arrays(*, path: str) -> ArraysData:
    """Your own arrays from ``path`` (.npz with ``factors``, ``observations``; optional ``segments``,
    ``pairs``, ``graph``); see :mod:`crlkit.data.arrays`."""
    return ArraysData(path)
