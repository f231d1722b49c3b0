"""Metrics of identifiability for causal representation learning.

Continuous ground-truth latents ``z_true`` ``(n, d)`` are compared with a learned
representation ``z_hat`` ``(n, m)``:

- :func:`mcc_score` — identifiability up to permutation and element-wise (monotone/affine)
  maps: mean absolute correlation of Hungarian-matched pairs (and
  :func:`mcc_score_out_of_sample`, matching fitted on one split, scored on another).
- :func:`linear_r2_score` — identifiability up to an affine map: R² of predicting ``z_true``
  from ``z_hat`` with linear regression on held-out samples.
- :func:`nonlinear_r2_score` — how much of ``z_true`` is recoverable at all: R² of an RBF
  kernel ridge regression, held out.
- :func:`block_r2_score` — block identifiability (content/style; von Kügelgen et al. 2021):
  R² of predicting a block of true latents from the whole representation.
- :func:`shd` — structural Hamming distance between two graphs (learned causal graphs).
- :func:`random_rotation_baseline` — the chance level of any of these: the score that a
  random rotation of the true latents gets (a rotation of an isotropic Gaussian has the same
  distribution, so no unsupervised method can tell it from the truth).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import rankdata

from crlkit.errors import CrlkitError
from crlkit.metrics._checks import as_matrix, choice, fraction, positive_int, rng_from, same_length

MCC_METHODS = ("pearson", "spearman")
R2_MODELS = ("linear", "nonlinear")
# Hyper-parameter grid of the RBF kernel ridge in nonlinear_r2_score, picked on a
# validation split of the training samples (inputs are standardised first).
KRR_ALPHAS = (1.0, 0.1, 0.01, 0.001)
KRR_GAMMAS = (0.01, 0.1, 1.0)


# --------------------------------------------------------------------------------------
# MCC
# --------------------------------------------------------------------------------------
def _standardise_columns(a: np.ndarray) -> np.ndarray:
    """Zero-mean unit-norm columns; a constant column becomes all zeros (correlation 0)."""
    a = a - a.mean(axis=0, keepdims=True)
    norm = np.sqrt((a * a).sum(axis=0, keepdims=True))
    return np.divide(a, norm, out=np.zeros_like(a), where=norm > 1e-12 * max(1.0, float(norm.max(initial=0.0))))


def correlation_matrix(z_true, z_hat, *, method: str = "pearson") -> np.ndarray:
    """Cross-correlation ``C[i, j] = corr(z_true[:, i], z_hat[:, j])``, shape ``(d, m)``.

    ``method="spearman"`` correlates ranks (average ranks for ties). A constant column
    correlates 0 with everything.
    """
    choice("method", method, MCC_METHODS)
    a = as_matrix("z_true", z_true)
    b = as_matrix("z_hat", z_hat)
    same_length(z_true=a, z_hat=b)
    if method == "spearman":
        a = rankdata(a, axis=0)
        b = rankdata(b, axis=0)
    return _standardise_columns(a).T @ _standardise_columns(b)


def mcc_matching(z_true, z_hat, *, method: str = "pearson") -> tuple[np.ndarray, np.ndarray]:
    """The Hungarian matching of true to learned latents maximising total |correlation|.

    Returns
    -------
    perm : ndarray of int, shape (d,)
        ``perm[i]`` is the learned latent matched to true latent ``i`` (``-1`` when
        ``z_hat`` has fewer dimensions than ``z_true`` and ``i`` is left unmatched).
    corr : ndarray, shape (d, m)
        The signed correlation matrix the matching was computed from.
    """
    corr = correlation_matrix(z_true, z_hat, method=method)
    rows, cols = linear_sum_assignment(-np.abs(corr))
    perm = np.full(corr.shape[0], -1, dtype=np.int64)
    perm[rows] = cols
    return perm, corr


def _mean_matched(corr: np.ndarray, perm: np.ndarray) -> float:
    d = corr.shape[0]
    vals = np.array([abs(corr[i, perm[i]]) if perm[i] >= 0 else 0.0 for i in range(d)])
    return float(vals.mean())


def mcc_score(z_true, z_hat, *, method: str = "pearson") -> float:
    r"""Mean correlation coefficient (MCC) after optimal matching.

    .. math:: \mathrm{MCC} = \frac{1}{d}\max_{\pi}\sum_{i=1}^{d} |\rho(z_i, \hat z_{\pi(i)})|

    with :math:`\rho` the Pearson correlation (or Spearman's, the Pearson correlation of
    ranks) and :math:`\pi` an injective assignment of learned to true latents found with the
    Hungarian algorithm (``scipy.optimize.linear_sum_assignment``), as in Hyvärinen & Morioka
    (TCL, 2016), Khemakhem et al. (iVAE, 2020) and Zimmermann et al. (2021).

    Parameters
    ----------
    z_true : array (n, d)
        Ground-truth latents.
    z_hat : array (n, m)
        Learned representation. With ``m > d`` the best ``d`` learned dimensions are used;
        with ``m < d`` the unmatched true latents count as correlation 0 (the mean is over
        all ``d`` true latents).
    method : {"pearson", "spearman"}
        Pearson measures identifiability up to permutation and per-dimension affine maps;
        Spearman up to permutation and per-dimension *monotone* maps.

    Returns
    -------
    float in [0, 1]; 1 iff each true latent is an affine (Pearson) / monotone (Spearman)
    function of its own learned dimension. Invariant to permuting and sign-flipping the
    columns of ``z_hat`` and to rescaling them (any strictly monotone map for Spearman).
    The chance level is not 0: see :func:`random_rotation_baseline`.
    """
    perm, corr = mcc_matching(z_true, z_hat, method=method)
    return _mean_matched(corr, perm)


def mcc_score_out_of_sample(z_true_train, z_hat_train, z_true_test, z_hat_test, *,
                            method: str = "pearson") -> float:
    """MCC with the matching fitted on a training split and scored on a test split.

    The in-sample :func:`mcc_score` picks the best of ``m!`` assignments on the same samples it
    scores, which biases it upward for small ``n`` and noisy codes; here the assignment
    ``pi`` is chosen on ``(z_true_train, z_hat_train)`` and the reported score is
    ``mean_i |corr_test(z_i, zhat_pi(i))|`` on ``(z_true_test, z_hat_test)``.
    """
    perm, corr_train = mcc_matching(z_true_train, z_hat_train, method=method)
    corr_test = correlation_matrix(z_true_test, z_hat_test, method=method)
    if corr_test.shape != corr_train.shape:
        raise CrlkitError(f"train and test splits must have the same dimensions; got train "
                          f"{corr_train.shape} and test {corr_test.shape} (true x learned)")
    return _mean_matched(corr_test, perm)


# --------------------------------------------------------------------------------------
# R² scores
# --------------------------------------------------------------------------------------
def _split(n: int, test_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    idx = rng.permutation(n)
    n_test = int(round(n * test_fraction))
    if n_test < 2 or n - n_test < 2:
        raise CrlkitError(f"too few samples ({n}) for a held-out split with test_fraction={test_fraction}; "
                          "need at least 2 train and 2 test samples")
    return idx[n_test:], idx[:n_test]


def _r2_per_dim(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Coefficient of determination per column; a constant target column scores 1 if
    predicted exactly, else 0 (scikit-learn's convention)."""
    ss_res = ((y_true - y_pred) ** 2).sum(axis=0)
    ss_tot = ((y_true - y_true.mean(axis=0)) ** 2).sum(axis=0)
    out = np.empty(y_true.shape[1])
    nz = ss_tot > 0
    out[nz] = 1.0 - ss_res[nz] / ss_tot[nz]
    out[~nz] = np.where(ss_res[~nz] == 0, 1.0, 0.0)
    return out


def _standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = x.mean(axis=0)
    sd = x.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    return mu, sd


def _fit_predict_linear(x_tr, y_tr, x_te):
    mu, sd = _standardiser(x_tr)
    a = np.hstack([(x_tr - mu) / sd, np.ones((len(x_tr), 1))])
    coef, *_ = np.linalg.lstsq(a, y_tr, rcond=None)
    return np.hstack([(x_te - mu) / sd, np.ones((len(x_te), 1))]) @ coef


def _rbf(a: np.ndarray, b: np.ndarray, gamma: float) -> np.ndarray:
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.exp(-gamma * np.maximum(sq, 0.0))


def _krr_fit_predict(x_tr, y_tr, x_te, alpha, gamma):
    from scipy.linalg import solve

    k = _rbf(x_tr, x_tr, gamma)
    k[np.diag_indices_from(k)] += alpha
    dual = solve(k, y_tr, assume_a="pos")
    return _rbf(x_te, x_tr, gamma) @ dual


def _fit_predict_kernel(x_tr, y_tr, x_te, rng):
    """RBF kernel ridge on standardised inputs and centred/scaled targets; (alpha, gamma)
    chosen from KRR_ALPHAS x KRR_GAMMAS by R² on a 20% validation split of the train set."""
    mu, sd = _standardiser(x_tr)
    x_tr = (x_tr - mu) / sd
    x_te = (x_te - mu) / sd
    ymu, ysd = _standardiser(y_tr)
    y_tr = (y_tr - ymu) / ysd
    fit_idx, val_idx = _split(len(x_tr), 0.2, rng)
    best, best_score = (KRR_ALPHAS[0], KRR_GAMMAS[0]), -np.inf
    for gamma in KRR_GAMMAS:
        for alpha in KRR_ALPHAS:
            pred = _krr_fit_predict(x_tr[fit_idx], y_tr[fit_idx], x_tr[val_idx], alpha, gamma)
            s = float(_r2_per_dim(y_tr[val_idx], pred).mean())
            if s > best_score:
                best, best_score = (alpha, gamma), s
    pred = _krr_fit_predict(x_tr, y_tr, x_te, *best)
    return pred * ysd + ymu


def _r2(z_true, z_hat, *, model: str, block: Sequence[int] | None, test_fraction: float, seed,
        z_true_test, z_hat_test, max_train: int | None) -> float:
    choice("model", model, R2_MODELS)
    y = as_matrix("z_true", z_true)
    x = as_matrix("z_hat", z_hat)
    same_length(z_true=y, z_hat=x)
    rng = rng_from(seed)
    if block is not None:
        block = np.asarray(block, dtype=np.int64).ravel()
        if block.size == 0 or block.min() < 0 or block.max() >= y.shape[1]:
            raise CrlkitError(f"block must be a non-empty list of column indices of z_true in "
                              f"[0, {y.shape[1] - 1}]; got {block.tolist()}")
    if (z_true_test is None) != (z_hat_test is None):
        raise CrlkitError("give both z_true_test and z_hat_test, or neither")
    if z_true_test is not None:
        y_te = as_matrix("z_true_test", z_true_test)
        x_te = as_matrix("z_hat_test", z_hat_test)
        same_length(z_true_test=y_te, z_hat_test=x_te)
        if y_te.shape[1] != y.shape[1] or x_te.shape[1] != x.shape[1]:
            raise CrlkitError("test arrays must have the same number of columns as the training arrays")
        x_tr, y_tr = x, y
    else:
        fraction("test_fraction", test_fraction)
        tr, te = _split(len(x), test_fraction, rng)
        x_tr, y_tr, x_te, y_te = x[tr], y[tr], x[te], y[te]
    if max_train is not None and len(x_tr) > max_train:
        keep = rng.choice(len(x_tr), size=max_train, replace=False)
        x_tr, y_tr = x_tr[keep], y_tr[keep]
    if block is not None:
        y_tr, y_te = y_tr[:, block], y_te[:, block]
    if model == "linear":
        pred = _fit_predict_linear(x_tr, y_tr, x_te)
    else:
        if len(x_tr) < 10:
            raise CrlkitError(f"nonlinear R² needs at least 10 training samples; got {len(x_tr)}")
        pred = _fit_predict_kernel(x_tr, y_tr, x_te, rng)
    return float(_r2_per_dim(y_te, pred).mean())


def linear_r2_score(z_true, z_hat, *, test_fraction: float = 0.2, seed=0,
                    z_true_test=None, z_hat_test=None) -> float:
    r"""Held-out R² of predicting the true latents from the representation, linearly.

    Direction: ``z_true ≈ W z_hat + b`` (true from learned), fitted by least squares on a
    training split; the score is the coefficient of determination
    :math:`R^2_i = 1 - \sum (z_i - \hat z_i)^2 / \sum (z_i - \bar z_i)^2` on the test split,
    averaged over the ``d`` true dimensions (``multioutput="uniform_average"``). 1 iff every
    true latent is an affine function of the representation (identifiability up to an affine
    map, as in Khemakhem et al. 2020 / Zimmermann et al. 2021 "linear" scores). Held out, it
    can be negative. Invariant to any invertible affine map of ``z_hat`` (so to permutations
    and rescaling).

    Parameters
    ----------
    test_fraction : float in (0, 1)
        Share of samples held out when no explicit test arrays are given.
    seed : int or numpy.random.Generator
        Seeds the split.
    z_true_test, z_hat_test : arrays, optional
        An explicit test split; then all of ``(z_true, z_hat)`` is used for fitting.
    """
    return _r2(z_true, z_hat, model="linear", block=None, test_fraction=test_fraction, seed=seed,
               z_true_test=z_true_test, z_hat_test=z_hat_test, max_train=None)


def nonlinear_r2_score(z_true, z_hat, *, test_fraction: float = 0.2, seed=0,
                       z_true_test=None, z_hat_test=None, max_train: int = 2000) -> float:
    r"""Held-out R² of predicting the true latents from the representation with RBF kernel ridge.

    As :func:`linear_r2_score` (true from learned, mean over true dims), but the regressor is
    kernel ridge regression with an RBF kernel on standardised ``z_hat``; ``alpha`` in
    ``KRR_ALPHAS`` and ``gamma`` in ``KRR_GAMMAS`` are chosen on a 20% validation split of the
    training samples (the protocol of von Kügelgen et al. 2021). Measures how much of the true
    latents is recoverable at all (block-/nonlinear identifiability); invariant to smooth
    invertible maps of ``z_hat`` only approximately (finite samples, fixed kernel grid).

    Parameters
    ----------
    max_train : int
        Kernel ridge is O(n³): at most this many training samples are used (a seeded random
        subset).
    """
    positive_int("max_train", max_train, minimum=10)
    return _r2(z_true, z_hat, model="nonlinear", block=None, test_fraction=test_fraction, seed=seed,
               z_true_test=z_true_test, z_hat_test=z_hat_test, max_train=max_train)


def block_r2_score(z_true, z_hat, block: Sequence[int], *, model: str = "nonlinear",
                   test_fraction: float = 0.2, seed=0, z_true_test=None, z_hat_test=None,
                   max_train: int = 2000) -> float:
    """Held-out R² of predicting the block ``z_true[:, block]`` from the whole representation.

    For content/style identification (von Kügelgen et al. 2021): with ``block`` the content
    latents a content encoder scores high; with ``block`` the style latents it should score low
    (style is discarded). ``model="nonlinear"`` (kernel ridge, the paper's main score) or
    ``"linear"``. Mean over the dimensions of the block.
    """
    positive_int("max_train", max_train, minimum=10)
    return _r2(z_true, z_hat, model=model, block=block, test_fraction=test_fraction, seed=seed,
               z_true_test=z_true_test, z_hat_test=z_hat_test, max_train=max_train)


# --------------------------------------------------------------------------------------
# Graphs
# --------------------------------------------------------------------------------------
def _as_adjacency(name: str, g) -> np.ndarray:
    if hasattr(g, "detach"):
        g = g.detach().cpu().numpy()
    a = np.asarray(g)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise CrlkitError(f"{name} must be a square adjacency matrix; got shape {a.shape}")
    if a.dtype != bool and not np.all(np.isfinite(a.astype(np.float64))):
        raise CrlkitError(f"{name} contains NaN or inf")
    a = a != 0
    if np.any(np.diag(a)):
        raise CrlkitError(f"{name} has self-loops (non-zero diagonal); SHD is defined on graphs without them")
    return a


def shd(graph_true, graph_hat, *, reversed_cost: int = 1) -> int:
    """Structural Hamming distance between two directed graphs.

    ``A[i, j] != 0`` means an edge ``i -> j`` (the convention of
    :class:`crlkit.data.GroundTruthData`). For every unordered pair ``{i, j}`` the pair's
    state in each graph is one of: no edge, ``i -> j``, ``j -> i``, both. Each pair whose state
    differs costs 1 — a missing edge, an extra edge, or a reversed edge each cost 1 (as in
    Tsamardinos et al. 2006 and causal-learn's ``SHD``). With ``reversed_cost=2`` a reversed
    edge counts as one deletion plus one insertion (``cdt``'s ``double_for_anticausal=True``).

    Returns an int in ``[0, d(d-1)/2]`` (``reversed_cost=1``); 0 iff the graphs are equal.
    """
    a = _as_adjacency("graph_true", graph_true)
    b = _as_adjacency("graph_hat", graph_hat)
    if a.shape != b.shape:
        raise CrlkitError(f"graph_true and graph_hat must have the same shape; got {a.shape} and {b.shape}")
    if reversed_cost not in (1, 2):
        raise CrlkitError(f"reversed_cost must be 1 or 2; got {reversed_cost!r}")
    iu = np.triu_indices(a.shape[0], k=1)
    fwd_a, bwd_a = a[iu], a.T[iu]
    fwd_b, bwd_b = b[iu], b.T[iu]
    differs = (fwd_a != fwd_b) | (bwd_a != bwd_b)
    if reversed_cost == 1:
        return int(differs.sum())
    reversed_edge = differs & (fwd_a == bwd_b) & (bwd_a == fwd_b) & (fwd_a != bwd_a)
    return int(differs.sum() + reversed_edge.sum())


# --------------------------------------------------------------------------------------
# Chance baseline
# --------------------------------------------------------------------------------------
BASELINE_METRICS: dict[str, Callable[..., float]] = {
    "mcc": lambda zt, zh, rng: mcc_score(zt, zh, method="pearson"),
    "mcc_spearman": lambda zt, zh, rng: mcc_score(zt, zh, method="spearman"),
    "linear_r2": lambda zt, zh, rng: linear_r2_score(zt, zh, seed=rng),
    "nonlinear_r2": lambda zt, zh, rng: nonlinear_r2_score(zt, zh, seed=rng),
}


def random_rotation(d: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-distributed random rotation in SO(d): a Haar orthogonal matrix
    (:func:`crlkit.mixing.random_orthogonal`) with its first column flipped if det = -1."""
    from crlkit.mixing.linear import random_orthogonal

    q = random_orthogonal(d, d, rng)
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def random_rotation_baseline(z_true, metric: str | Callable[[np.ndarray, np.ndarray], float] = "mcc", *,
                             seed=0, n_rotations: int = 10, return_all: bool = False):
    """Chance level of an identifiability metric: its score for a random rotation of the truth.

    Draws ``n_rotations`` Haar-random rotations ``R`` and scores ``z_hat = z_true R^T``
    against ``z_true``. For an isotropic Gaussian ``p(z)`` the rotated latents have exactly the
    same distribution, so a method that is not identifiable can output them (Locatello et al.
    2019); a reported MCC should be read against this level, not against 0.

    For Gaussian z, MCC (Pearson) averages about 0.90 (d=2; the worst rotation, 45°, gives
    1/sqrt(2) = 0.707), about 0.72 (d=5) and about 0.59 (d=10); linear R² of a rotation is 1
    by construction (it is invertible and linear), which is why linear R² alone cannot show
    identifiability up to permutation.

    Parameters
    ----------
    metric : {"mcc", "mcc_spearman", "linear_r2", "nonlinear_r2"} or callable
        A callable is called as ``metric(z_true, z_rotated) -> float``.
    seed : int or numpy.random.Generator
    n_rotations : int
        Number of random rotations averaged.
    return_all : bool
        Return the array of per-rotation scores instead of their mean.
    """
    zt = as_matrix("z_true", z_true)
    rng = rng_from(seed)
    n_rotations = positive_int("n_rotations", n_rotations)
    if callable(metric):
        fn = lambda a, b, r: float(metric(a, b))  # noqa: E731
    else:
        fn = BASELINE_METRICS[choice("metric", metric, BASELINE_METRICS)]
    scores = np.array([fn(zt, zt @ random_rotation(zt.shape[1], rng).T, rng) for _ in range(n_rotations)])
    return scores if return_all else float(scores.mean())
