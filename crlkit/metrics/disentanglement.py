"""Supervised disentanglement metrics on arrays, with disentanglement_lib's definitions.

Every function takes ``codes`` (n_samples, n_latents) float — usually the posterior mean —
and integer ``factors`` (n_samples, n_factors); the ones that fit a classifier also take a
held-out ``codes_test`` / ``factors_test``. disentanglement_lib's defaults are 10,000 train
and 5,000 test samples drawn i.i.d. from the dataset; see :func:`crlkit.metrics.evaluate`
for the sampling.
"""

from __future__ import annotations

import numpy as np
import scipy.stats

from crlkit.errors import CrlkitError
from crlkit.metrics._checks import as_factors, as_matrix, choice, positive_int, rng_from, same_length
from crlkit.metrics._gbt import boosted_tree_importances
from crlkit.metrics._info import discretize, entropy, mutual_info_matrix
from crlkit.metrics._progress import Progress

DCI_BACKENDS = ("auto", "numba", "numpy", "sklearn")


def _train_test(codes, factors, codes_test, factors_test, *, min_rows: int = 2):
    c = as_matrix("codes", codes, min_rows=min_rows)
    f = as_factors("factors", factors, min_rows=min_rows)
    same_length(codes=c, factors=f)
    ct = as_matrix("codes_test", codes_test, min_rows=1)
    ft = as_factors("factors_test", factors_test, min_rows=1, min_values=1)
    same_length(codes_test=ct, factors_test=ft)
    if ct.shape[1] != c.shape[1]:
        raise CrlkitError(f"codes_test has {ct.shape[1]} latents but codes has {c.shape[1]}")
    if ft.shape[1] != f.shape[1]:
        raise CrlkitError(f"factors_test has {ft.shape[1]} factors but factors has {f.shape[1]}")
    return c, f, ct, ft


# --------------------------------------------------------------------------------------
# MIG
# --------------------------------------------------------------------------------------
def mig_score(codes, factors, *, n_bins: int = 20) -> float:
    r"""Mutual Information Gap (Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs").

    .. math:: \mathrm{MIG} = \frac{1}{K}\sum_{k=1}^{K}
              \frac{I(z_{j^{(k)}}; v_k) - \max_{j \ne j^{(k)}} I(z_j; v_k)}{H(v_k)}

    with :math:`j^{(k)} = \arg\max_j I(z_j; v_k)`. As in disentanglement_lib, each latent is
    discretised into ``n_bins`` equal-width bins over its range (:func:`discretize`) and the
    plug-in discrete mutual information and factor entropy are used (nats; the ratio is
    unit-free).

    Returns a float in [0, 1]. 1 for a representation where each factor is captured by one
    latent and no other latent carries information about it; 0 for constant or independent
    codes (up to the plug-in estimator's positive bias, ~(bins·values)/(2n)). Invariant to
    permuting latents and to increasing affine maps of each latent (equal-width bins move with
    the range; a decreasing map mirrors the bins, which also leaves MI unchanged).
    """
    c = as_matrix("codes", codes)
    f = as_factors("factors", factors)
    same_length(codes=c, factors=f)
    n_bins = positive_int("n_bins", n_bins, minimum=2)
    if c.shape[1] < 2:
        raise CrlkitError(f"MIG needs at least 2 latents (a gap between the top two); codes has {c.shape[1]}")
    m = mutual_info_matrix(discretize(c, n_bins=n_bins), f)              # (latents, factors)
    h = np.array([entropy(f[:, k]) for k in range(f.shape[1])])
    top = np.sort(m, axis=0)[::-1]
    return float(np.mean((top[0] - top[1]) / h))


# --------------------------------------------------------------------------------------
# DCI
# --------------------------------------------------------------------------------------
def _entropy_weighted_score(importance: np.ndarray, axis: int) -> float:
    """disentanglement_lib's D (axis=1: per code over factors) or C (axis=0: per factor over
    codes): ``sum_i rho_i (1 - H_base(P_i))`` with ``P_i`` the normalised importances."""
    base = importance.shape[1] if axis == 1 else importance.shape[0]
    probs = importance.T if axis == 1 else importance                   # distributions in columns
    per = 1.0 - scipy.stats.entropy(probs + 1e-11, base=base)
    if importance.sum() == 0.0:
        importance = np.ones_like(importance)
    weight = importance.sum(axis=axis) / importance.sum()
    return float(np.sum(per * weight))


def _numba_available() -> bool:
    """Whether the compiled DCI engine can be used (numba installed and importable)."""
    try:
        import crlkit.metrics._gbt_numba  # noqa: F401
    except ImportError:
        return False
    return True


def dci_importance_matrix(codes, factors, codes_test, factors_test, *, backend: str = "auto",
                          max_bins: int | None = None, seed=0, n_jobs: int = 1, progress: bool = False):
    """Importance matrix ``R`` (n_latents, n_factors) of gradient-boosted trees, with the
    per-factor train and test accuracies.

    ``backend="sklearn"`` fits ``sklearn.ensemble.GradientBoostingClassifier()`` per factor,
    exactly as disentanglement_lib (slow: 100 x n_classes trees each, one at a time).
    ``backend="numpy"`` fits the same model (same loss, stages, depth, learning rate, leaf
    values, importances; see ``crlkit.metrics._gbt``) with all trees of a stage grown at once;
    ``max_bins=None`` (default) searches every threshold as scikit-learn does (the same model
    up to floating-point order; exact ties between latents are broken at random, seeded by
    ``seed``, as scikit-learn's random feature order does); an integer restricts thresholds to
    that many quantile bins per latent (faster, but it shifts D and C by up to ~0.03 on
    noisy, over-fitted codes; see bench/RESULTS_metrics.md). ``n_jobs`` threads scan the
    latents in parallel (exact mode; results are identical for any ``n_jobs``).
    ``backend="numba"`` is the same engine with the exact split search, node statistics,
    routing and leaf updates compiled by numba (same gains, thresholds and seeded
    tie-breaking as ``"numpy"``; ~4x faster than it, ~14x faster than scikit-learn on 1,000
    dSprites samples); the binned search (``max_bins``) stays NumPy.
    ``backend="auto"`` (default) is ``"numba"`` when numba imports, else ``"numpy"``.
    ``progress=True`` shows the boosting stages (per factor for ``"sklearn"``) with the time
    left on stderr.
    """
    c, f, ct, ft = _train_test(codes, factors, codes_test, factors_test)
    choice("backend", backend, DCI_BACKENDS)
    if max_bins is not None:
        max_bins = positive_int("max_bins", max_bins, minimum=2)
    if backend == "auto":
        backend = "numba" if _numba_available() else "numpy"
    elif backend == "numba" and not _numba_available():
        raise CrlkitError("backend='numba' needs numba (pip install numba); or use backend='numpy'")
    if backend in ("numpy", "numba"):
        n_jobs = positive_int("n_jobs", n_jobs)
        with Progress("dci", 100, unit="stages", enabled=progress) as bar:
            return boosted_tree_importances(c, f, ct, ft, max_bins=max_bins, seed=rng_from(seed), n_jobs=n_jobs,
                                            engine=backend, on_stage=bar.update)
    from sklearn.ensemble import GradientBoostingClassifier

    imp = np.zeros((c.shape[1], f.shape[1]))
    tr, te = np.zeros(f.shape[1]), np.zeros(f.shape[1])
    with Progress("dci", f.shape[1], unit="factors", enabled=progress) as bar:
        for j in range(f.shape[1]):
            model = GradientBoostingClassifier().fit(c, f[:, j])
            imp[:, j] = np.abs(model.feature_importances_)
            tr[j] = np.mean(model.predict(c) == f[:, j])
            te[j] = np.mean(model.predict(ct) == ft[:, j])
            bar.update()
    return imp, tr, te


def dci_scores(codes, factors, codes_test, factors_test, *, backend: str = "auto",
               max_bins: int | None = None, seed=0, n_jobs: int = 1, progress: bool = False) -> dict:
    r"""Disentanglement, completeness and informativeness (Eastwood & Williams 2018), as in
    disentanglement_lib.

    One gradient-boosted classifier per factor (scikit-learn defaults: 100 stages, depth 3,
    learning rate 0.1) predicts the factor from all latents; ``R[i, j]`` is the impurity-based
    importance of latent ``i`` for factor ``j`` (each column sums to 1). With
    :math:`P_{ij} = R_{ij}/\sum_k R_{ik}` and :math:`\tilde P_{ij} = R_{ij}/\sum_k R_{kj}`:

    .. math::
        D = \sum_i \rho_i \bigl(1 - H_K(P_{i\cdot})\bigr),\quad
        \rho_i = \frac{\sum_j R_{ij}}{\sum_{ij} R_{ij}};\qquad
        C = \sum_j \rho_j \bigl(1 - H_L(\tilde P_{\cdot j})\bigr),\quad
        \rho_j = \frac{\sum_i R_{ij}}{\sum_{ij} R_{ij}}

    (entropies in base K = number of factors and L = number of latents). Informativeness is
    the mean test accuracy of the classifiers (disentanglement_lib's
    ``informativeness_test``), not Eastwood & Williams' prediction error.

    Returns ``{"disentanglement", "completeness", "informativeness"}``, each in [0, 1].
    Invariant to permuting latents and, because trees split on order only, to any strictly
    monotone map of each latent (up to random tie-breaking and float32 rounding, which
    scikit-learn's trees also apply). ``backend``, ``max_bins``, ``seed``, ``n_jobs``,
    ``progress``: see :func:`dci_importance_matrix`.
    """
    imp, _, test_acc = dci_importance_matrix(codes, factors, codes_test, factors_test, backend=backend,
                                             max_bins=max_bins, seed=seed, n_jobs=n_jobs, progress=progress)
    return {"disentanglement": _entropy_weighted_score(imp, axis=1),
            "completeness": _entropy_weighted_score(imp, axis=0),
            "informativeness": float(np.mean(test_acc))}


# --------------------------------------------------------------------------------------
# SAP
# --------------------------------------------------------------------------------------
def sap_score(codes, factors, codes_test, factors_test, *, continuous_factors: bool = False) -> float:
    r"""Separated Attribute Predictability (Kumar et al. 2018, "Variational Inference of
    Disentangled Latent Concepts from Unlabeled Observations").

    Score matrix ``S[i, j]``: for discrete factors, the test accuracy of
    ``LinearSVC(C=0.01, class_weight="balanced")`` predicting factor ``j`` from latent ``i``
    alone (disentanglement_lib), solved in the primal (``dual=False``: the same optimum; with one
    feature and many samples the dual solver stops at its iteration limit on mixed codes);
    with ``continuous_factors=True`` the squared correlation
    :math:`\mathrm{cov}(z_i, v_j)^2 / (\mathrm{var}\, z_i \, \mathrm{var}\, v_j)` on the
    training split (0 for a latent with variance <= 1e-12). SAP is the mean over factors of
    the gap between the largest and second-largest entry of the factor's column.

    Returns a float in [0, 1]. Invariant to permuting latents; the classifier is fitted on an
    unscaled latent with a fixed ``C``, so SAP is only approximately invariant to rescaling.
    """
    c, f, ct, ft = _train_test(codes, factors, codes_test, factors_test)
    if c.shape[1] < 2:
        raise CrlkitError(f"SAP needs at least 2 latents (a gap between the top two); codes has {c.shape[1]}")
    n_lat, n_fac = c.shape[1], f.shape[1]
    score = np.zeros((n_lat, n_fac))
    if continuous_factors:
        for i in range(n_lat):
            for j in range(n_fac):
                cov = np.cov(c[:, i], f[:, j], ddof=1)
                score[i, j] = cov[0, 1] ** 2 / (cov[0, 0] * cov[1, 1]) if cov[0, 0] > 1e-12 else 0.0
    else:
        from sklearn.svm import LinearSVC

        for i in range(n_lat):
            for j in range(n_fac):
                clf = LinearSVC(C=0.01, class_weight="balanced", dual=False).fit(c[:, i:i + 1], f[:, j])
                score[i, j] = np.mean(clf.predict(ct[:, i:i + 1]) == ft[:, j])
    top = np.sort(score, axis=0)
    return float(np.mean(top[-1] - top[-2]))


# --------------------------------------------------------------------------------------
# Modularity and explicitness
# --------------------------------------------------------------------------------------
def modularity_explicitness_scores(codes, factors, codes_test, factors_test, *, n_bins: int = 20) -> dict:
    r"""Modularity and explicitness (Ridgeway & Mozer 2018, "Learning Deep Disentangled
    Embeddings with the F-Statistic Loss"), as in disentanglement_lib.

    Modularity: with ``m[i, j]`` the discrete mutual information between latent ``i``
    (``n_bins`` equal-width bins) and factor ``j`` on the training split,

    .. math:: \mathrm{mod}_i = 1 - \frac{\sum_j m_{ij}^2 - \max_j m_{ij}^2}
              {\max_j m_{ij}^2\,(K - 1)}

    (0 for a latent with no information), averaged over latents. Explicitness: a logistic
    regression (scikit-learn defaults) on the standardised latents predicts each factor;
    the score is the macro one-vs-rest ROC-AUC on the test split, averaged over factors
    (classes absent from the test split are skipped).

    Returns ``{"modularity", "explicitness"}`` in [0, 1] (explicitness 0.5 at chance).
    Both are invariant to permuting latents; modularity to increasing affine maps per latent.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    c, f, ct, ft = _train_test(codes, factors, codes_test, factors_test)
    n_bins = positive_int("n_bins", n_bins, minimum=2)
    if f.shape[1] < 2:
        raise CrlkitError("modularity needs at least 2 factors (it compares a latent's information across factors)")
    sq = mutual_info_matrix(discretize(c, n_bins=n_bins), f) ** 2       # (latents, factors)
    mx = sq.max(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mod = 1.0 - (sq.sum(axis=1) - mx) / (mx * (sq.shape[1] - 1.0))
    mod[mx == 0.0] = 0.0
    mean, std = c.mean(axis=0), c.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    c_n, ct_n = (c - mean) / std, (ct - mean) / std
    aucs = []
    for j in range(f.shape[1]):
        clf = LogisticRegression().fit(c_n, f[:, j])
        proba = clf.predict_proba(ct_n)
        per_class = []
        for k, cls in enumerate(clf.classes_):
            pos = ft[:, j] == cls
            if 0 < pos.sum() < len(pos):
                per_class.append(roc_auc_score(pos, proba[:, k]))
        aucs.append(np.mean(per_class) if per_class else 0.5)
    return {"modularity": float(np.mean(mod)), "explicitness": float(np.mean(aucs))}


# --------------------------------------------------------------------------------------
# IRS
# --------------------------------------------------------------------------------------
def irs_score(codes, factors, *, diff_quantile: float = 0.99, n_bins: int = 20) -> float:
    r"""Interventional Robustness Score (Suter et al. 2019, "Robustly Disentangled Causal
    Mechanisms"), as in disentanglement_lib.

    Factors are histogram-discretised into ``n_bins`` bins; latents with zero variance are
    dropped. For latent ``j`` and factor ``i``, the deviation is the mean over values ``v`` of
    factor ``i`` of the ``diff_quantile`` quantile of :math:`|z_j - E[z_j \mid v_i = v]|`
    among samples with ``v_i = v``; normalised by ``max |z_j - E z_j|`` it gives
    :math:`\mathrm{IRS}_{ji} = 1 - \mathrm{dev}_{ji} / \mathrm{maxdev}_j`. A latent's score is
    its best factor's, and IRS is their mean weighted by ``maxdev_j``.

    disentanglement_lib computes it from i.i.d. samples (10,000), so it is a function of
    arrays here. Returns a float (<= 1; 0 when every latent is constant). Invariant to
    permuting latents and to rescaling them (both deviations scale alike).
    """
    c = as_matrix("codes", codes)
    f = as_factors("factors", factors)
    same_length(codes=c, factors=f)
    if not 0.0 < float(diff_quantile) <= 1.0:
        raise CrlkitError(f"diff_quantile must be in (0, 1]; got {diff_quantile!r}")
    n_bins = positive_int("n_bins", n_bins, minimum=2)
    fd = discretize(f, n_bins=n_bins)
    c = c[:, c.std(axis=0) > 0]
    if c.shape[1] == 0:
        return 0.0
    max_dev = np.abs(c - c.mean(axis=0)).max(axis=0)
    cum = np.zeros((c.shape[1], fd.shape[1]))
    for i in range(fd.shape[1]):
        values = np.unique(fd[:, i])
        for v in values:
            zc = c[fd[:, i] == v]
            cum[:, i] += np.percentile(np.abs(zc - zc.mean(axis=0)), q=diff_quantile * 100, axis=0)
        cum[:, i] /= len(values)
    irs = 1.0 - cum / max_dev[:, None]
    per_latent = irs.max(axis=1)
    return float(np.average(per_latent, weights=max_dev) if max_dev.sum() > 0 else per_latent.mean())
