"""Stage 2 of learning from counterfactual pairs: from the codes of an encoder that recovered the
noise encoding (``crlkit.models.interventional``, stage 1) to the causal variables, their causal
order and the latent graph.

- :func:`causal_variables`: undo a linear mix of the codes, infer each pair's target, fit every
  node's parents' contribution and read the causal order from which noises enter which node;
- :func:`learn_graph`: the DAG over those variables, by conditional-independence tests along the
  order (causal-learn's ``CIT``) or PC's skeleton, with effect-size floors.
"""

from __future__ import annotations

import numpy as np

from crlkit.errors import CrlkitError

__all__ = ["GRAPH_SEARCHES", "INDEP_TESTS", "causal_variables", "learn_graph", "unmix_from_changes",
           "fit_parents_contribution", "ordered_partial_correlation", "ordered_dependence", "causal_order"]

#: how :func:`learn_graph` finds the skeleton
GRAPH_SEARCHES = ("order", "pc")
#: causal-learn CI tests accepted
INDEP_TESTS = ("fisherz", "kci")


def causal_variables(e: np.ndarray, e2: np.ndarray, *, targets: np.ndarray | None = None, unmix: bool = True,
                     parent_fit_bound: float = 2.0) -> dict[str, np.ndarray]:
    """The causal variables and the noise-to-variable weights from the codes of pairs.

    Parameters
    ----------
    e, e2 : ndarray, shape (N, n)
        Stage-1 codes of each pair before and after its single-node intervention.
    targets : ndarray, shape (N,), optional
        The intervened coordinate of each pair when known; inferred from the codes otherwise.
    unmix : bool
        Undo a linear mix of the codes first (:func:`unmix_from_changes`).
    parent_fit_bound : float
        See :func:`fit_parents_contribution`.

    Returns
    -------
    dict
        ``"z"``: (N, n) recovered causal variables for ``e``; ``"noise"``: (N, n) the codes after
        the unmixing; ``"unmixing"``: (n, n) map T applied to the raw codes (``e @ T``; the
        identity when ``unmix`` is off); ``"targets"``: (N,) intervened coordinate per pair;
        ``"weights"``: (n, n) with ``weights[i, k]`` = |coefficient of noise i in z_k|;
        ``"direct"``: (n, n) standardised direct effects (linear reading: ``z = e (I + C) = z A + e``,
        so ``A = I - (I + C)^{-1}``); ``"order"``: the inferred causal order; ``"change_share"``:
        mean over pairs of the largest |code change| over the sum of |code changes| (standardised
        codes), a label-free check of stage 1: 1 when every pair changes one coordinate, 1/n when
        the changes are spread evenly; ``"target_balance"``: ``exp(H(p)) / n``, the perplexity of
        the share ``p_k`` of pairs whose inferred target is coordinate k over n: 1 when every
        coordinate is the target of the same share of pairs, 1/n when one coordinate takes them
        all. With every node intervened on equally often, a stage 1 that has folded two noises
        into one coordinate and spread one noise over two shows up as imbalance.
    """
    e, e2 = np.asarray(e, dtype=np.float64), np.asarray(e2, dtype=np.float64)
    n = e.shape[1]
    if targets is not None:
        targets = np.asarray(targets).astype(int).ravel()
        if targets.shape != (e.shape[0],) or targets.min() < 0 or targets.max() >= n:
            raise CrlkitError(f"targets must be {e.shape[0]} node indices in [0, {n - 1}]; got shape "
                              f"{targets.shape}, range [{targets.min()}, {targets.max()}]")
    t = unmix_from_changes(e, e2, targets=targets) if unmix else np.eye(n)
    e, e2 = e @ t, e2 @ t
    e_s, e2_s = (e - e.mean(0)) / (e.std(0) + 1e-12), (e2 - e.mean(0)) / (e.std(0) + 1e-12)
    change = np.abs(e2_s - e_s)
    if targets is None:
        targets = change.argmax(1)
    # 1 when every pair changes a single code coordinate (the noise encoding of a linear code)
    change_share = float(np.mean(change.max(1) / np.maximum(change.sum(1), 1e-12)))
    share = np.bincount(targets, minlength=n) / len(targets)
    share = share[share > 0]
    target_balance = float(np.exp(-(share * np.log(share)).sum()) / n)  # perplexity / n
    c = np.zeros((n, n))  # c[i, k]: coefficient of noise i in z_k - e_k
    for k in range(n):
        sel = targets == k
        if sel.sum() < n + 2:
            continue  # never intervened on: treated as a root
        # z_k = e_k + f_k(pa) and E[e~_k | e] = const - f_k(pa): minus the fit, without e_k itself
        c[:, k] = -fit_parents_contribution(e_s[sel], e2_s[sel, k], bound=parent_fit_bound)
        c[k, k] = 0.0
    order = causal_order(np.abs(c))
    rank = np.empty(n, dtype=int)
    rank[order] = np.arange(n)
    c_dag = np.where(rank[:, None] < rank[None, :], c, 0.0)  # only ancestors' noise enters
    z = e_s @ (np.eye(n) + c_dag)  # (N, n)
    a = np.eye(n) - np.linalg.inv(np.eye(n) + c_dag)  # direct effects in these units
    sd = z.std(0) + 1e-12
    direct = a * sd[:, None] / sd[None, :]  # standardised: effect of a 1-sd change of z_i on z_j in sd
    np.fill_diagonal(direct, 0.0)
    return {"z": z, "noise": e, "unmixing": t, "targets": targets, "weights": np.abs(c), "direct": direct,
            "order": order, "change_share": change_share, "target_balance": target_balance}


def learn_graph(z: np.ndarray, order, direct: np.ndarray, *, search: str = "order", alpha: float = 0.01,
                indep_test: str = "fisherz", min_partial_corr: float = 0.05, min_effect: float = 0.1
                ) -> dict[str, np.ndarray]:
    """The latent DAG over recovered causal variables ``z`` given their causal ``order``.

    ``search="order"``: ``i -> j`` for each predecessor ``i`` of ``j`` that causal-learn's CI
    test (``indep_test``, level ``alpha``) finds dependent on ``j`` given the other predecessors
    of ``j`` (identified under causal minimality alone); ``"pc"``: the edges of PC's skeleton
    (needs faithfulness), oriented along the order. Either way an edge ``i -> j`` needs
    ``|partial correlation of z_i and z_j given j's other predecessors| >= min_partial_corr``
    and a standardised direct effect ``|direct[i, j]| >= min_effect``: estimated variables are
    never exact, and a test's p-value alone finds their small biases significant once there are
    enough samples.

    Returns
    -------
    dict
        ``"graph"``: (n, n) int adjacency, ``graph[i, j] = 1`` iff ``i -> j``; ``"skeleton"``:
        (n, n) symmetric skeleton of the CI tests (before the effect floors); ``"partial"``: (n, n)
        partial correlations along the order (:func:`ordered_partial_correlation`).
    """
    if search not in GRAPH_SEARCHES:
        from crlkit.registry import unknown_choice

        raise CrlkitError(unknown_choice("graph_search", search, GRAPH_SEARCHES))
    z = np.asarray(z, dtype=np.float64)
    z_std = (z - z.mean(0)) / (z.std(0) + 1e-12)
    if search == "pc":
        from causallearn.search.ConstraintBased.PC import pc

        cg = pc(z_std, alpha=alpha, indep_test=indep_test, stable=True, show_progress=False)
        g = np.asarray(cg.G.graph)
        skeleton = ((g != 0) | (g.T != 0)).astype(int)
    else:
        skeleton = ordered_dependence(z_std, order, alpha=alpha, indep_test=indep_test)
        skeleton = skeleton | skeleton.T
    np.fill_diagonal(skeleton, 0)
    partial = ordered_partial_correlation(z_std, order)
    adj = ((skeleton == 1) & (np.abs(partial) >= min_partial_corr) & (np.abs(direct) >= min_effect)).astype(int)
    return {"graph": adj, "skeleton": skeleton, "partial": partial}


def unmix_from_changes(e: np.ndarray, e2: np.ndarray, *, targets: np.ndarray | None = None, max_iter: int = 20,
                       tol: float = 1e-3) -> np.ndarray:
    r"""A linear map ``T`` under which the changes of counterfactual pairs are one-sparse.

    If the codes are an invertible linear mix of independent noises, ``e = eps M^T`` (rows are
    samples), a pair whose noises differ in coordinate k only changes its code along column k of
    ``M``: ``e2 - e = (eps2_k - eps_k) M[:, k]``. Taking each pair's target as its largest
    standardised change, the least-squares slope of every coordinate's change on coordinate k's
    change over the pairs of target k estimates ``M[:, k]`` (with ``M_kk = 1``), and
    ``e M^{-T}`` changes in one coordinate per pair. Targets are re-assigned and the step repeated
    until the estimated ``M`` is within ``tol`` of the identity (or ``max_iter`` steps).

    Exact when the code is an affine function of the noises (the mix of two coordinates that a
    stage-1 encoder can stop in: seen as a 2-D rotation of two noises); a first-order correction
    when it is nonlinear. Codes that are already one-sparse give ``T`` = diagonal (a rescaling).

    Parameters
    ----------
    e, e2 : ndarray, shape (N, n)
        Codes of the pairs before and after the intervention.
    targets : ndarray, shape (N,), optional
        The intervened coordinate of each pair when known; otherwise each step takes the largest
        standardised change.

    Returns
    -------
    T : ndarray, shape (n, n)
        ``e @ T`` is standardised (per the pre-intervention codes) and unmixed.
    """
    e, e2 = np.asarray(e, dtype=np.float64), np.asarray(e2, dtype=np.float64)
    if e.shape != e2.shape or e.ndim != 2:
        raise CrlkitError(f"e and e2 must be (N, n) arrays of the same shape; got {e.shape} and {e2.shape}")
    n = e.shape[1]
    t = np.eye(n)
    for _ in range(max_iter):
        u, u2 = e @ t, e2 @ t
        sd = u.std(0) + 1e-12
        t = t / sd[None, :]
        d = (u2 - u) / sd
        tg = np.abs(d).argmax(1) if targets is None else targets
        m = np.eye(n)
        for k in range(n):
            sel = tg == k
            if sel.sum() < n + 2:
                continue
            m[:, k] = (d[sel] * d[sel, k:k + 1]).sum(0) / (d[sel, k] ** 2).sum()
        if np.linalg.cond(m) > 1e6:
            break  # degenerate estimate (two targets share a direction): keep the last good map
        t = t @ np.linalg.inv(m).T
        if np.abs(m - np.eye(n)).max() < tol:
            break
    return t / ((e @ t).std(0) + 1e-12)[None, :]


def fit_parents_contribution(e: np.ndarray, y: np.ndarray, *, bound: float = 2.0, iters: int = 3,
                             min_rows_per_coef: int = 20) -> np.ndarray:
    r"""Coefficients of the linear regression of the intervened code on the codes before, fitted
    where the intervened code stays in range.

    :func:`causal_variables` estimates node k's parents' contribution from the pairs
    that intervene on k: ``E[e~_k | e] = const - f_k(pa(e))``. A nearly deterministic node (its
    noise a few % of its variance) has a contribution many times its noise's spread, so the
    intervened code ``e~_k`` reaches far outside the range of ``e_k`` over observational
    samples. Stage 1 never trains coordinate k there: a pair's own target is left out of its
    similarity, so the code's scale on those values is extrapolated (measured 1.6-2.5x too steep
    on 7-node seed 3, which put a node after its child). After a first least-squares fit this
    fits again on the rows whose fitted value lies within ``bound`` of its median, and repeats
    ``iters`` times. The rows are chosen by the regressors ``e`` (through the fit), not by ``y``,
    so for a linear contribution the fit stays unbiased; the rows left still vary freely in the
    other directions. Nodes whose contribution is small keep most rows.

    Parameters
    ----------
    e : ndarray, shape (N, n)
        Standardised codes before the intervention (the regressors).
    y : ndarray, shape (N,)
        The target's code after the intervention, in the same units.
    bound : float
        Half-width of the kept slab of fitted values; 0 fits once on all rows.
    iters : int
        Refits on the slab.
    min_rows_per_coef : int
        A refit needs at least this many rows per coefficient; otherwise the last fit is kept.

    Returns
    -------
    coef : ndarray, shape (n,)
        Slopes of ``y`` on ``e`` (no intercept).
    """
    from sklearn.linear_model import LinearRegression

    e, y = np.asarray(e, dtype=np.float64), np.asarray(y, dtype=np.float64)
    reg = LinearRegression().fit(e, y)
    if bound <= 0:
        return reg.coef_
    for _ in range(iters):
        fit = reg.predict(e)
        keep = np.abs(fit - np.median(fit)) <= bound
        if keep.sum() < min_rows_per_coef * e.shape[1]:
            break
        reg = LinearRegression().fit(e[keep], y[keep])
    return reg.coef_


def ordered_partial_correlation(z: np.ndarray, order) -> np.ndarray:
    r"""Partial correlations along a causal order.

    ``rho[i, j]`` for ``i`` before ``j`` in ``order`` is the partial correlation of ``z_i`` and
    ``z_j`` given the other predecessors of ``j``, read off the precision matrix of the
    predecessors and ``j``: ``rho = -P_ij / sqrt(P_ii P_jj)`` with ``P = Cov(z_S)^{-1}``,
    ``S = pred(j) + {j}``. For a linear SCM whose order is right it is 0 exactly when ``i -> j``
    is not an edge (the statistic behind the Fisher-z test); other entries are 0.

    Parameters
    ----------
    z : ndarray, shape (N, n)
    order : sequence of int
        A permutation of ``range(n)``.

    Returns
    -------
    rho : ndarray, shape (n, n)
    """
    z = np.asarray(z, dtype=np.float64)
    n = z.shape[1]
    order = [int(k) for k in order]
    if sorted(order) != list(range(n)):
        raise CrlkitError(f"order must be a permutation of 0..{n - 1}; got {order}")
    cov = np.cov(z, rowvar=False)
    rho = np.zeros((n, n))
    for pos in range(1, n):
        s = order[:pos + 1]  # predecessors of j, then j
        prec = np.linalg.pinv(cov[np.ix_(s, s)])
        d = np.sqrt(np.clip(np.diag(prec), 1e-300, None))
        rho[s[:-1], s[-1]] = -prec[:-1, -1] / (d[:-1] * d[-1])
    return rho


def ordered_dependence(z: np.ndarray, order, *, alpha: float, indep_test: str) -> np.ndarray:
    """``dep[i, j] = 1`` for each predecessor ``i`` of ``j`` in ``order`` that causal-learn's CI
    test finds dependent on ``j`` given the other predecessors of ``j`` (p-value < alpha)."""
    from causallearn.utils.cit import CIT

    test = CIT(z, indep_test)
    n = z.shape[1]
    dep = np.zeros((n, n), dtype=int)
    for pos, j in enumerate(order):
        before = [int(i) for i in order[:pos]]
        for i in before:
            rest = [p for p in before if p != i]
            if test(i, int(j), rest) < alpha:
                dep[i, j] = 1
    return dep


def causal_order(w: np.ndarray) -> np.ndarray:
    """Greedy topological order from ``w[i, k]`` = how much node i's noise enters node k:
    repeatedly take the remaining node whose incoming weight from the remaining nodes is least."""
    left = list(range(w.shape[0]))
    order = []
    while left:
        incoming = [w[left, k].sum() - w[k, k] for k in left]
        k = left[int(np.argmin(incoming))]
        order.append(k)
        left.remove(k)
    return np.array(order)
