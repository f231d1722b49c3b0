"""Factorised marginals: per-coordinate CDFs, quantiles and normal scores of independent latents.

Used for the exact marginals of independent latents (``LatentSCM.marginals``) and by the
impossibility construction (``crlkit.identify.impossibility``).
"""

from __future__ import annotations

import numpy as np
from scipy import special

from crlkit.errors import CrlkitError
from crlkit.scm.noise import check_noise, noise_cdf, noise_logpdf, noise_ppf


class FactorisedMarginals:
    """Marginals of independent latents: each ``z_j`` is a uniform mixture over components
    ``k`` of ``shift[k, j] + scale[k, j] · ε`` with ``ε`` a standardised symmetric noise
    (``gaussian``, ``laplace`` or ``uniform``). One component is the plain location-scale case.

    ``normal_score(z) = Φ^{-1}(F(z))`` is computed from whichever tail is smaller (CDF or
    survival function), so it stays accurate far into the tails.
    """

    def __init__(self, noise: str, scale, shift=None):
        self.noise = check_noise(noise)
        self.scale = np.atleast_2d(np.asarray(scale, dtype=np.float64))
        self.shift = np.zeros_like(self.scale) if shift is None else np.atleast_2d(np.asarray(shift, dtype=np.float64))
        if self.scale.shape != self.shift.shape or np.any(self.scale <= 0):
            raise CrlkitError("marginal scale/shift must have equal shapes (components, d) and scale > 0")

    @property
    def dim(self) -> int:
        return self.scale.shape[1]

    def _tails(self, z):
        e = (z[None] - self.shift[:, None]) / self.scale[:, None]  # (k, n, d)
        return noise_cdf(self.noise, e).mean(0), noise_cdf(self.noise, -e).mean(0)  # symmetric noise

    def logpdf(self, z: np.ndarray) -> np.ndarray:
        """Per-coordinate log-densities ``(n, d)``."""
        e = (z[None] - self.shift[:, None]) / self.scale[:, None]
        per = noise_logpdf(self.noise, e) - np.log(self.scale[:, None])
        return special.logsumexp(per, axis=0) - np.log(len(self.scale))

    def normal_score(self, z: np.ndarray) -> np.ndarray:
        """``Φ^{-1}(F_j(z_j))`` per coordinate."""
        z = np.asarray(z, dtype=np.float64)
        if len(self.scale) == 1 and self.noise == "gaussian":
            return (z - self.shift[0]) / self.scale[0]
        cdf, sf = self._tails(z)
        return np.where(cdf <= 0.5, special.ndtri(cdf), -special.ndtri(sf))

    def from_normal_score(self, a: np.ndarray, *, tol: float = 1e-13) -> np.ndarray:
        """Inverse of :meth:`normal_score`: ``F_j^{-1}(Φ(a_j))`` (closed form for one
        component, else bisection on the smaller tail)."""
        a = np.asarray(a, dtype=np.float64)
        if len(self.scale) == 1:
            if self.noise == "gaussian":
                return self.shift[0] + self.scale[0] * a
            e = np.where(a <= 0, noise_ppf(self.noise, special.ndtr(a)), -noise_ppf(self.noise, special.ndtr(-a)))
            return self.shift[0] + self.scale[0] * e
        q = special.ndtr(-np.abs(a))  # the smaller tail probability
        comp = np.stack([self.shift[k] + self.scale[k] * np.where(a <= 0, noise_ppf(self.noise, q),
                                                                 -noise_ppf(self.noise, q))
                         for k in range(len(self.scale))])
        lo, hi = comp.min(0), comp.max(0)  # the mixture quantile lies between the components'
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            cdf, sf = self._tails(mid)
            too_low = np.where(a <= 0, cdf < q, sf > q)
            lo, hi = np.where(too_low, mid, lo), np.where(too_low, hi, mid)
            if np.all(hi - lo <= tol * (1.0 + np.abs(mid))):
                break
        return 0.5 * (lo + hi)

    def cdf(self, z: np.ndarray) -> np.ndarray:
        """Per-coordinate marginal CDF ``F_j(z_j)``, ``(n, d)``."""
        return self._tails(np.asarray(z, dtype=np.float64))[0]

    def ppf(self, q: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`cdf`."""
        return self.from_normal_score(special.ndtri(np.asarray(q, dtype=np.float64)))
