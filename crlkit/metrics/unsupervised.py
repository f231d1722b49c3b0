"""Unsupervised scores of a representation (no ground truth needed), as in
disentanglement_lib's ``unsupervised_metrics``: how far the aggregate codes are from
factorised. Lower is more factorised; none of them is a ``*_score`` (higher-is-better)."""

from __future__ import annotations

import numpy as np

from crlkit.errors import CrlkitError
from crlkit.metrics._checks import as_matrix, positive_int
from crlkit.metrics._info import discretize, mutual_info_matrix


def _cov(codes) -> np.ndarray:
    c = as_matrix("codes", codes, min_rows=3)
    if c.shape[1] < 2:
        raise CrlkitError(f"codes must have at least 2 latents for a correlation between them; got {c.shape[1]}")
    return np.atleast_2d(np.cov(c, rowvar=False, ddof=1))


def gaussian_total_correlation(codes) -> float:
    r"""Total correlation of a Gaussian with the codes' covariance :math:`\Sigma`:

    .. math:: \mathrm{TC} = \tfrac12\bigl(\sum_i \log \Sigma_{ii} - \log\det\Sigma\bigr)

    = KL(N(0, Σ) || N(0, diag Σ)) in nats; 0 iff the covariance is diagonal. Invariant to
    permuting and rescaling latents. A collapsed (constant) latent gives ``inf``.
    """
    cov = _cov(codes)
    with np.errstate(divide="ignore"):
        sign, logdet = np.linalg.slogdet(cov)
        if sign <= 0 or np.any(np.diag(cov) <= 0):
            return float("inf")
        return float(0.5 * (np.sum(np.log(np.diag(cov))) - logdet))


def gaussian_wasserstein_correlation(codes, *, normalize: bool = False) -> float:
    r"""Squared 2-Wasserstein distance between N(0, Σ) and N(0, diag Σ):

    .. math:: W = 2\,\mathrm{tr}\,\Sigma - 2\,\mathrm{tr}\sqrt{\mathrm{diag}(\Sigma)\,\Sigma}

    (the form disentanglement_lib computes; DIP-VAE's motivation). With ``normalize=True``
    divided by tr Σ, which makes it invariant to a global rescaling. 0 iff Σ is diagonal.
    :math:`\mathrm{diag}(\Sigma)\,\Sigma` has the eigenvalues of the symmetric PSD
    :math:`D^{1/2}\Sigma D^{1/2}` (:math:`D = \mathrm{diag}\,\Sigma`), so the trace of its root is
    the sum of their square roots: the value ``scipy.linalg.sqrtm`` gives, and defined (without
    a singular-matrix warning) when a collapsed latent makes Σ singular.
    """
    cov = _cov(codes)
    s = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    eig = np.linalg.eigvalsh(s[:, None] * cov * s[None, :])
    w = float(2.0 * np.trace(cov) - 2.0 * np.sum(np.sqrt(np.clip(eig, 0.0, None))))
    return w / float(np.trace(cov)) if normalize else w


def mutual_info_between_latents(codes, *, n_bins: int = 20) -> float:
    """Mean pairwise discrete mutual information (nats) between distinct latents, each
    discretised into ``n_bins`` equal-width bins: ``sum_{i != j} I(z_i; z_j) / (L^2 - L)``.
    Invariant to permuting latents and to increasing affine maps of each."""
    c = as_matrix("codes", codes, min_rows=3)
    positive_int("n_bins", n_bins, minimum=2)
    if c.shape[1] < 2:
        raise CrlkitError(f"codes must have at least 2 latents; got {c.shape[1]}")
    d = discretize(c, n_bins=n_bins)
    m = mutual_info_matrix(d, d)
    np.fill_diagonal(m, 0.0)
    L = c.shape[1]
    return float(m.sum() / (L * L - L))


def unsupervised_scores(codes, *, n_bins: int = 20) -> dict:
    """All three: ``{"gaussian_total_correlation", "gaussian_wasserstein_correlation",
    "gaussian_wasserstein_correlation_norm", "mutual_info"}``."""
    w = gaussian_wasserstein_correlation(codes)
    return {"gaussian_total_correlation": gaussian_total_correlation(codes),
            "gaussian_wasserstein_correlation": w,
            "gaussian_wasserstein_correlation_norm": w / float(np.trace(_cov(codes))),
            "mutual_info": mutual_info_between_latents(codes, n_bins=n_bins)}
