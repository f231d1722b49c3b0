"""Unsupervised Disentanglement Ranking (UDR; Duan et al., ICLR 2020).

UDR scores a model by how much its representation agrees, latent by latent, with those of
models trained with the same hyperparameters and other seeds: disentangled solutions are
alike up to permutation and sign, entangled ones differ from seed to seed.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from crlkit.errors import CrlkitError

UDR_SIMILARITIES = ("spearman", "lasso")


def _similarity(a: np.ndarray, b: np.ndarray, how: str, seed: int) -> np.ndarray:
    """|R| between the latents of ``a`` (rows) and ``b`` (columns)."""
    da = a.shape[1]
    if how == "spearman":
        rho = spearmanr(a, b).statistic
        rho = np.atleast_2d(rho)
        r = np.abs(rho[:da, da:]) if rho.shape[0] > 1 else np.abs(rho).reshape(1, 1)
        return np.nan_to_num(r, nan=0.0)
    from sklearn.linear_model import Lasso

    fit = Lasso(alpha=0.1, random_state=seed, max_iter=5000).fit(a, b)
    return np.abs(fit.coef_).T  # (latents of a, latents of b)


def _relative_strength(r: np.ndarray) -> float:
    """Mean of the two directions' nanmean of max(R)^2 / sum(R) (one dominant partner each)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        cols = np.max(r, axis=0) ** 2 / np.sum(r, axis=0)
        rows = np.max(r, axis=1) ** 2 / np.sum(r, axis=1)
    return float((np.nanmean(np.nan_to_num(cols, nan=0.0)) + np.nanmean(np.nan_to_num(rows, nan=0.0))) / 2.0)


def udr_pair_score(codes_a: np.ndarray, codes_b: np.ndarray, *, kl_a: np.ndarray | None = None,
                   kl_b: np.ndarray | None = None, kl_threshold: float = 0.01, similarity: str = "spearman",
                   seed: int = 0) -> float:
    """UDR agreement of two representations of the same inputs, in [0, 1].

    Each representation is standardised; latents whose mean KL to the prior is below
    ``kl_threshold`` (uninformative, "collapsed") are dropped. ``R`` is the latent-by-latent
    similarity (``|Spearman correlation|``, or ``|Lasso(alpha=0.1)|`` coefficients regressing
    b's latents on a's); the score is the mean of the two relative-strength terms
    ``nanmean_j max_i R_ij^2 / sum_i R_ij`` (and the same over rows). It is 1 when each
    informative latent of one matches exactly one of the other (invariant to permutation,
    sign and rescaling), near 0 for unrelated codes, low for rotated copies. Sampling noise in
    the off-diagonal correlations keeps exact copies below 1 (about 0.89 for 5 latents on
    1,000 inputs; Lasso's shrinkage gives 0.9).
    A pair with no informative latent on either side scores 0.

    Duan et al., "Unsupervised model selection for variational disentangled representation
    learning", ICLR 2020; disentanglement_lib ``evaluation/udr``.
    """
    if similarity not in UDR_SIMILARITIES:
        raise CrlkitError(f"unknown similarity {similarity!r}; valid choices: {', '.join(UDR_SIMILARITIES)}")
    a, b = np.asarray(codes_a, dtype=np.float64), np.asarray(codes_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
        raise CrlkitError(f"codes_a and codes_b must be (n_samples, n_latents) of the same inputs; got {a.shape} and {b.shape}")
    keep_a = np.ones(a.shape[1], bool) if kl_a is None else np.asarray(kl_a) >= kl_threshold
    keep_b = np.ones(b.shape[1], bool) if kl_b is None else np.asarray(kl_b) >= kl_threshold
    keep_a &= a.std(axis=0) > 0
    keep_b &= b.std(axis=0) > 0
    if not keep_a.any() or not keep_b.any():
        return 0.0
    a, b = a[:, keep_a], b[:, keep_b]
    a = (a - a.mean(0)) / a.std(0)
    b = (b - b.mean(0)) / b.std(0)
    return _relative_strength(_similarity(a, b, similarity, seed))


def udr_scores(codes: list[np.ndarray], *, kl: list[np.ndarray] | None = None, kl_threshold: float = 0.01,
               similarity: str = "spearman", seed: int = 0) -> np.ndarray:
    """UDR of each model of one group (same hyperparameters, different seeds).

    Parameters
    ----------
    codes : list of (n_samples, n_latents) arrays
        Each model's representation (posterior means) of the *same* inputs.
    kl : list of (n_latents,) arrays, optional
        Each model's mean KL per latent; latents below ``kl_threshold`` are ignored.
    similarity : {"spearman", "lasso"}

    Returns
    -------
    (n_models,) array: each model's median pair score against every other model of the
    group (:func:`udr_pair_score`, both orders averaged); NaN for a group of one.
    """
    n = len(codes)
    if n < 2:
        return np.full(n, np.nan)
    kl = kl if kl is not None else [None] * n
    pair = np.full((n, n), np.nan)
    for i in range(n):
        for j in range(i + 1, n):
            s = 0.5 * (udr_pair_score(codes[i], codes[j], kl_a=kl[i], kl_b=kl[j], kl_threshold=kl_threshold,
                                      similarity=similarity, seed=seed)
                       + udr_pair_score(codes[j], codes[i], kl_a=kl[j], kl_b=kl[i], kl_threshold=kl_threshold,
                                        similarity=similarity, seed=seed))
            pair[i, j] = pair[j, i] = s
    return np.array([np.nanmedian(np.delete(pair[i], i)) for i in range(n)])
