"""The invertible MLP of the identifiability literature (TCL, Hyvärinen & Morioka 2016;
iVAE, Khemakhem et al. 2020; cl-ica, Zimmermann et al. 2021).

``x = A_L σ(A_{L-1} σ(… σ(A_1 z)))`` with σ the leaky ReLU (or ``xtanh``,
``σ(h) = tanh(h) + a h``, the activation of the iVAE reference code's data) and no bias. Each ``A_l`` has
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
from crlkit.registry import unknown_choice

#: activations of :class:`InvertibleMLP` (both strictly increasing, so the map is a bijection)
ACTIVATIONS = ("lrelu", "xtanh")


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
        Negative slope of the leaky ReLU (0.2 in TCL/cl-ica, 0.1 in iVAE), or the linear
        coefficient ``a`` of ``xtanh``; must be > 0.
    activation : {"lrelu", "xtanh"}
        ``"lrelu"``: leaky ReLU (piecewise linear; the mixing of TCL and cl-ica, and the
        iVAE setting of issue 6 / REFERENCES). ``"xtanh"``: ``tanh(h) + slope * h``, smooth, slopes in
        ``(slope, 1 + slope]``; the data of the iVAE reference code's experiments
        (``configs/ivae.yaml``: ``act: 'xtanh'``).
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
    inverse ``h / slope`` where ``h < 0`` (xtanh: solved per element by bisection on the
    bracket ``[(y - 1) / a, (y + 1) / a]`` and Newton steps, to ~1e-15). ``log|det J| =
    Σ_l log|det A_l| + Σ log σ'(pre-activations)``; ``σ' = slope`` or 1 for the leaky ReLU,
    ``1 - tanh² + a`` for xtanh.
    """

    def __init__(self, dim: int, n_layers: int = 3, slope: float = 0.2, seed: int = 0, *,
                 cond_quantile: float = 0.25, n_draws: int = 10_000, out_dim: int | None = None,
                 activation: str = "lrelu"):
        if dim < 1:
            raise CrlkitError(f"dim must be >= 1; got {dim}")
        if n_layers < 1:
            raise CrlkitError(f"n_layers must be >= 1; got {n_layers}")
        if activation not in ACTIVATIONS:
            raise CrlkitError(unknown_choice("activation", activation, ACTIVATIONS))
        if not slope > 0:
            raise CrlkitError(f"slope must be > 0 for an invertible {activation}; got {slope}")
        self.activation = activation
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

    # -- the activation, its inverse and its log-derivative ---------------------------------
    def _act(self, h: np.ndarray) -> np.ndarray:
        if self.activation == "xtanh":
            return np.tanh(h) + self.slope * h
        return np.where(h >= 0, h, self.slope * h)

    def _act_inverse(self, y: np.ndarray) -> np.ndarray:
        if self.activation == "lrelu":
            return np.where(y >= 0, y, y / self.slope)
        a = self.slope
        lo, hi = (y - 1.0) / a, (y + 1.0) / a  # tanh in (-1, 1) brackets the root
        for _ in range(60):  # bisection: the bracket shrinks to (2 / a) 2^-60
            mid = 0.5 * (lo + hi)
            above = np.tanh(mid) + a * mid > y
            hi, lo = np.where(above, mid, hi), np.where(above, lo, mid)
        h = 0.5 * (lo + hi)
        for _ in range(2):  # Newton polish; the derivative is >= a > 0
            t = np.tanh(h)
            h = h - (t + a * h - y) / (1.0 - t * t + a)
        return h

    def _log_act_derivative(self, h: np.ndarray) -> np.ndarray:
        if self.activation == "xtanh":
            return np.log1p(-np.tanh(h) ** 2 + self.slope)
        return np.where(h < 0, np.log(self.slope), 0.0)

    def forward(self, z):
        h = z
        for i, w in enumerate(self.weights):
            h = h @ w.T
            if i < self.n_layers - 1:
                h = self._act(h)
        return h

    def inverse(self, x):
        h = self._check(x, self.out_dim, "x")
        for i in reversed(range(self.n_layers)):
            if i < self.n_layers - 1:
                h = self._act_inverse(h)
            h = h @ self.inverses[i].T
        return h

    def forward_torch(self, z: torch.Tensor) -> torch.Tensor:
        h = z
        for i, w in enumerate(self.weights):
            h = h @ self._tensor(w, h).T
            if i < self.n_layers - 1:
                h = torch.tanh(h) + self.slope * h if self.activation == "xtanh" else F.leaky_relu(h, self.slope)
        return h

    def log_abs_det_jacobian(self, z):
        if self.out_dim != self.in_dim:
            return super().log_abs_det_jacobian(z)
        h = self._check(z, self.in_dim, "z")
        logdet = np.full(len(h), sum(np.linalg.slogdet(w)[1] for w in self.weights))
        for w in self.weights[:-1]:
            h = h @ w.T
            logdet += self._log_act_derivative(h).sum(axis=1)
            h = self._act(h)
        return logdet

    def __repr__(self):
        act = "" if self.activation == "lrelu" else f", activation={self.activation!r}"
        return (f"InvertibleMLP(dim={self.in_dim}, n_layers={self.n_layers}, slope={self.slope}, "
                f"seed={self.seed}, out_dim={self.out_dim}{act})")
