"""The invertible MLP of the identifiability literature (TCL, Hyvärinen & Morioka 2016;
iVAE, Khemakhem et al. 2020; cl-ica, Zimmermann et al. 2021).

``x = A_L σ(A_{L-1} σ(… σ(A_1 z)))`` with σ the leaky ReLU and no bias. Each ``A_l`` has
entries U(-1, 1) with L2-normalised columns and is resampled until its condition number is
at most a threshold, the ``cond_quantile`` quantile of the condition numbers of ``n_draws``
random matrices drawn the same way. Leaky ReLU (slope > 0) and non-singular ``A_l`` make
the map a bijection with an exact inverse and Jacobian.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from crlkit.errors import CrlkitError
from crlkit.mixing.base import Mixing


def _draw(rows: int, cols: int, rng: np.random.Generator, n: int | None = None) -> np.ndarray:
    """Matrices with entries U(-1, 1) and L2-normalised columns; ``(n, rows, cols)`` or one."""
    shape = (rows, cols) if n is None else (n, rows, cols)
    a = rng.uniform(-1.0, 1.0, size=shape)
    return a / np.linalg.norm(a, axis=-2, keepdims=True)


def condition_number(a: np.ndarray) -> np.ndarray:
    """2-norm condition number ``s_max / s_min`` of one matrix or a stack of them."""
    s = np.linalg.svd(a, compute_uv=False)
    return s[..., 0] / s[..., -1]


def condition_threshold(rows: int, cols: int, rng: np.random.Generator, quantile: float,
                        n_draws: int) -> float:
    """The ``quantile`` of the condition numbers of ``n_draws`` random column-normalised
    U(-1, 1) matrices (computed in chunks, so memory stays O(chunk))."""
    if not 0.0 < quantile <= 1.0:
        raise CrlkitError(f"cond_quantile must be in (0, 1]; got {quantile}")
    if n_draws < 1:
        raise CrlkitError(f"n_draws must be >= 1; got {n_draws}")
    conds, left = [], int(n_draws)
    chunk = max(1, 2_000_000 // (rows * cols))
    while left > 0:
        k = min(chunk, left)
        conds.append(condition_number(_draw(rows, cols, rng, k)))
        left -= k
    return float(np.quantile(np.concatenate(conds), quantile))


def conditioned_matrix(rows: int, cols: int, rng: np.random.Generator, threshold: float,
                       max_tries: int = 100_000) -> np.ndarray:
    """Draw column-normalised U(-1, 1) matrices until one has condition number <= threshold."""
    for _ in range(max_tries):
        a = _draw(rows, cols, rng)
        if condition_number(a) <= threshold:
            return a
    raise CrlkitError(f"no matrix with condition number <= {threshold:.3g} in {max_tries} draws")


class InvertibleMLP(Mixing):
    """Leaky-ReLU MLP without biases whose weight matrices have bounded condition number.

    Parameters
    ----------
    dim : int
        Latent (and, unless ``out_dim`` is given, observation) dimension.
    n_layers : int
        Number of linear layers L (>= 1); L = 1 is a linear mixing.
    slope : float
        Negative slope of the leaky ReLU (0.2 in TCL/cl-ica, 0.1 in iVAE); must be > 0.
    seed : int
        Seed of the weights (threshold draws and layers come from one ``Generator``).
    cond_quantile : float
        Quantile of the random condition numbers used as the threshold (0.25 TCL/cl-ica;
        0.001 in ssl_identifiability / multiview-crl, much better conditioned).
    n_draws : int
        Number K of random matrices used to estimate the threshold.
    out_dim : int, optional
        Width of the last layer (>= dim): an injective map into a higher dimension, inverted
        with the pseudo-inverse of the last layer (exact on the image).

    Notes
    -----
    ``inverse`` undoes the layers in reverse order: ``h = A_l^{-1} y``, then the leaky ReLU
    inverse ``h / slope`` where ``h < 0``. ``log|det J| = Σ_l log|det A_l| + log(slope) ·
    #(negative pre-activations)``.
    """

    def __init__(self, dim: int, n_layers: int = 3, slope: float = 0.2, seed: int = 0, *,
                 cond_quantile: float = 0.25, n_draws: int = 10_000, out_dim: int | None = None):
        if dim < 1:
            raise CrlkitError(f"dim must be >= 1; got {dim}")
        if n_layers < 1:
            raise CrlkitError(f"n_layers must be >= 1; got {n_layers}")
        if not slope > 0:
            raise CrlkitError(f"slope must be > 0 for an invertible leaky ReLU; got {slope}")
        out_dim = dim if out_dim is None else int(out_dim)
        if out_dim < dim:
            raise CrlkitError(f"out_dim must be >= dim={dim}; got {out_dim}")
        self.in_dim, self.out_dim = int(dim), out_dim
        self.n_layers, self.slope, self.seed = int(n_layers), float(slope), seed
        rng = np.random.default_rng(seed)
        self.threshold = condition_threshold(dim, dim, rng, cond_quantile, n_draws)
        self.weights = [conditioned_matrix(dim, dim, rng, self.threshold) for _ in range(n_layers - 1)]
        if out_dim == dim:
            self.weights.append(conditioned_matrix(dim, dim, rng, self.threshold))
        else:
            last_thr = condition_threshold(out_dim, dim, rng, cond_quantile, n_draws)
            self.weights.append(conditioned_matrix(out_dim, dim, rng, last_thr))
        self.inverses = [np.linalg.inv(w) for w in self.weights[:-1]]
        self.inverses.append(np.linalg.inv(self.weights[-1]) if out_dim == dim
                             else np.linalg.pinv(self.weights[-1]))

    @property
    def condition_numbers(self) -> list[float]:
        return [float(condition_number(w)) for w in self.weights]

    def forward(self, z):
        h = z
        for i, w in enumerate(self.weights):
            h = h @ w.T
            if i < self.n_layers - 1:
                h = np.where(h >= 0, h, self.slope * h)
        return h

    def inverse(self, x):
        h = self._check(x, self.out_dim, "x")
        for i in reversed(range(self.n_layers)):
            if i < self.n_layers - 1:
                h = np.where(h >= 0, h, h / self.slope)
            h = h @ self.inverses[i].T
        return h

    def forward_torch(self, z: torch.Tensor) -> torch.Tensor:
        h = z
        for i, w in enumerate(self.weights):
            h = h @ self._tensor(w, h).T
            if i < self.n_layers - 1:
                h = F.leaky_relu(h, self.slope)
        return h

    def log_abs_det_jacobian(self, z):
        if self.out_dim != self.in_dim:
            return super().log_abs_det_jacobian(z)
        h = self._check(z, self.in_dim, "z")
        logdet = np.full(len(h), sum(np.linalg.slogdet(w)[1] for w in self.weights))
        for w in self.weights[:-1]:
            h = h @ w.T
            logdet += np.log(self.slope) * (h < 0).sum(axis=1)
            h = np.where(h >= 0, h, self.slope * h)
        return logdet

    def __repr__(self):
        return (f"InvertibleMLP(dim={self.in_dim}, n_layers={self.n_layers}, slope={self.slope}, "
                f"seed={self.seed}, out_dim={self.out_dim})")
