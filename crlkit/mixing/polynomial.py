"""Polynomial mixing with an exact inverse: ``x = B T(A z)`` where ``T`` is a triangular
polynomial map.

``T_i(h) = h_i + Σ_m c_{i,m} h^m`` sums monomials ``h^m`` of degree 2..``degree`` in the
*earlier* coordinates ``h_1 … h_{i-1}`` only, so ``T`` is a bijection of R^d with Jacobian
determinant 1 and the inverse is solved coordinate by coordinate:
``h_i = t_i - Σ_m c_{i,m} h^m``. ``A`` and ``B`` are well-conditioned random matrices (the
:class:`~crlkit.mixing.InvertibleMLP` recipe), so the whole map is a polynomial of degree
``degree`` in z, globally invertible, with ``log|det J| = log|det A| + log|det B|`` (constant).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from crlkit.errors import CrlkitError
from crlkit.mixing.base import Mixing
from crlkit.mixing.mlp import condition_threshold, conditioned_matrix


class PolynomialMixing(Mixing):
    """Globally invertible polynomial mixing of degree 2 or 3.

    Parameters
    ----------
    dim : int
        Latent and observation dimension.
    degree : {2, 3}
        Highest total degree of the monomials.
    seed : int
        Seed of ``A``, ``B`` and the coefficients.
    coef_scale : float
        Coefficients ``c_{i,m}`` are U(-1, 1) · coef_scale / sqrt(#monomials of coordinate i);
        larger values are more nonlinear (and make values grow faster for large |z|).
    cond_quantile, n_draws
        Condition-number control of ``A`` and ``B`` as in InvertibleMLP.

    Notes
    -----
    With ``dim = 1`` there are no earlier coordinates and the map is linear.
    """

    def __init__(self, dim: int, degree: int = 2, seed: int = 0, *, coef_scale: float = 0.5,
                 cond_quantile: float = 0.25, n_draws: int = 10_000):
        if dim < 1:
            raise CrlkitError(f"dim must be >= 1; got {dim}")
        if degree not in (2, 3):
            raise CrlkitError(f"degree of polynomial mixing must be 2 or 3; got {degree}")
        self.in_dim = self.out_dim = int(dim)
        self.degree, self.seed = int(degree), seed
        rng = np.random.default_rng(seed)
        thr = condition_threshold(dim, dim, rng, cond_quantile, n_draws)
        self.A = conditioned_matrix(dim, dim, rng, thr)
        self.B = conditioned_matrix(dim, dim, rng, thr)
        self.A_inv, self.B_inv = np.linalg.inv(self.A), np.linalg.inv(self.B)
        # monomials, grouped by degree: index arrays (n_monomials_k, k)
        self.monomials = [np.array(list(itertools.combinations_with_replacement(range(dim), k)),
                                   dtype=np.int64).reshape(-1, k) for k in range(2, degree + 1)]
        top = np.concatenate([m.max(axis=1) for m in self.monomials])  # highest variable of each
        # coefficient c[i, m] is non-zero only if every variable of monomial m comes before i
        allowed = top[None, :] < np.arange(dim)[:, None]
        n_terms = np.maximum(allowed.sum(axis=1, keepdims=True), 1)
        c = rng.uniform(-1.0, 1.0, size=allowed.shape) * coef_scale / np.sqrt(n_terms)
        self.coef = np.where(allowed, c, 0.0)  # (dim, n_monomials)

    def _features(self, h, prod):
        return [prod(h[:, m]) for m in self.monomials]

    def _triangular(self, h: np.ndarray) -> np.ndarray:
        feats = np.concatenate(self._features(h, lambda a: a.prod(axis=2)), axis=1)
        return h + feats @ self.coef.T

    def forward(self, z):
        return self._triangular(z @ self.A.T) @ self.B.T

    def inverse(self, x):
        t = self._check(x, self.out_dim, "x") @ self.B_inv.T
        h = np.zeros_like(t)
        for i in range(self.in_dim):  # coordinate i depends only on h_{<i}, already solved
            feats = np.concatenate(self._features(h, lambda a: a.prod(axis=2)), axis=1)
            h[:, i] = t[:, i] - feats @ self.coef[i]
        return h @ self.A_inv.T

    def forward_torch(self, z: torch.Tensor) -> torch.Tensor:
        h = z @ self._tensor(self.A, z).T
        feats = torch.cat([h[:, self._tensor(m, h[:1].long())].prod(dim=2) for m in self.monomials], 1)
        return (h + feats @ self._tensor(self.coef, z).T) @ self._tensor(self.B, z).T

    def log_abs_det_jacobian(self, z):
        z = self._check(z, self.in_dim, "z")
        return np.full(len(z), np.linalg.slogdet(self.A)[1] + np.linalg.slogdet(self.B)[1])

    def __repr__(self):
        return f"PolynomialMixing(dim={self.in_dim}, degree={self.degree}, seed={self.seed})"
