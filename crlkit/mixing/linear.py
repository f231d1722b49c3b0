"""Linear mixings ``x = A z``: a random well-conditioned matrix, or an orthogonal one."""

from __future__ import annotations

import numpy as np
import torch

from crlkit.errors import CrlkitError
from crlkit.mixing.base import Mixing
from crlkit.registry import unknown_choice


def random_orthogonal(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-distributed matrix with orthonormal columns (``rows >= cols``): QR of a Gaussian
    matrix with the signs of R's diagonal folded into Q (Mezzadri 2007)."""
    q, r = np.linalg.qr(rng.standard_normal((rows, cols)))
    return q * np.sign(np.diag(r))[None, :]


class LinearMixing(Mixing):
    """``x = z A^T`` with ``A`` of shape ``(out_dim, in_dim)``, ``out_dim >= in_dim``.

    Parameters
    ----------
    dim : int
        Latent dimension.
    out_dim : int, optional
        Observation dimension (default ``dim``); larger values give an injective map whose
        inverse is the pseudo-inverse (exact on the image of ``A``).
    kind : {"random", "orthogonal"}
        ``"random"``: entries U(-1, 1), columns L2-normalised, resampled until the condition
        number is below the ``cond_quantile`` quantile of ``n_draws`` random draws (the recipe of
        :class:`~crlkit.mixing.InvertibleMLP` with one layer). ``"orthogonal"``: Haar-random
        orthonormal columns (condition number 1).
    seed : int
        Seed of the parameters.
    """

    KINDS = ("random", "orthogonal")

    def __init__(self, dim: int, *, out_dim: int | None = None, kind: str = "random", seed: int = 0,
                 cond_quantile: float = 0.25, n_draws: int = 10_000):
        from crlkit.mixing.mlp import conditioned_matrix, condition_threshold

        out_dim = dim if out_dim is None else int(out_dim)
        if dim < 1 or out_dim < dim:
            raise CrlkitError(f"out_dim must be >= dim >= 1; got dim={dim}, out_dim={out_dim}")
        if kind not in self.KINDS:
            raise CrlkitError(unknown_choice("kind of linear mixing", kind, self.KINDS))
        self.in_dim, self.out_dim, self.kind = int(dim), out_dim, kind
        rng = np.random.default_rng(seed)
        if kind == "orthogonal":
            self.A = random_orthogonal(out_dim, dim, rng)
            self.threshold = 1.0
        else:
            self.threshold = condition_threshold(out_dim, dim, rng, cond_quantile, n_draws)
            self.A = conditioned_matrix(out_dim, dim, rng, self.threshold)
        self.A_pinv = np.linalg.pinv(self.A)

    def forward(self, z):
        return z @ self.A.T

    def inverse(self, x):
        return self._check(x, self.out_dim, "x") @ self.A_pinv.T

    def forward_torch(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self._tensor(self.A, z).T

    def log_abs_det_jacobian(self, z):
        if self.out_dim != self.in_dim:
            return super().log_abs_det_jacobian(z)
        z = self._check(z, self.in_dim, "z")
        return np.full(len(z), np.linalg.slogdet(self.A)[1])

    def __repr__(self):
        return f"LinearMixing(dim={self.in_dim}, out_dim={self.out_dim}, kind={self.kind!r})"


class IdentityMixing(Mixing):
    """``x = z`` (the oracle: observations are the latents)."""

    def __init__(self, dim: int):
        self.in_dim = self.out_dim = int(dim)

    def forward(self, z):
        return z.copy()

    def inverse(self, x):
        return self._check(x, self.out_dim, "x").copy()

    def forward_torch(self, z):
        return z

    def log_abs_det_jacobian(self, z):
        return np.zeros(len(self._check(z, self.in_dim, "z")))

    def __repr__(self):
        return f"IdentityMixing(dim={self.in_dim})"
