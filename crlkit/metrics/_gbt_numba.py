"""Compiled (numba) exact split search for :mod:`crlkit.metrics._gbt`.

One pass over each latent's value order per tree and level: the samples of every node are
visited in increasing value (the feature's presorted order, filtered by node), with running
left sums per node, and each boundary between two distinct values (gap above
scikit-learn's ``FEATURE_THRESHOLD``) is a candidate threshold, as in scikit-learn's
``BestSplitter``. It returns the same per-(feature, tree, node) best gains and thresholds as
the NumPy scan of ``_grow_stage_exact`` (up to floating-point summation order), so the rest
of the stage (tie-breaking between latents, leaf values) is shared code.

Importing this module needs numba; ``_gbt`` falls back to the NumPy scan without it.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def scan_features(f_lo, f_hi, o_rank, xs, grp, has_ties, grad_nt, tn, tot, cnt, out_gain, out_thr):
    """Best split of every node of every tree for features ``f_lo <= f < f_hi``.

    o_rank, xs, grp : (p, n) sample at each rank, its value, its value-group id;
    has_ties : (p,) whether a feature has values closer than the threshold (shared groups)
    grad_nt : (n, T) negative gradient; tn : (n, T) flat node ``t * M + node`` of each sample
    tot : (T*M,) gradient sum per node; cnt : (T*M,) int sample count per node
    out_gain, out_thr : (p, T*M) filled for the features scanned: the largest
        ``S_L^2/n_L + S_R^2/n_R`` (-inf when the node has no valid split) and its threshold
        (first best position in value order; midpoint with scikit-learn's rounding guard).

    The samples are visited once per feature in value order; the inner loop runs over the
    trees, whose running sums are independent (and whose rows of ``grad_nt``/``tn`` are
    contiguous).
    """
    n, t_cols = tn.shape
    nodes = tot.shape[0]
    inv = np.empty(n + 1)  # 1/c as the NumPy engine computes it (same rounding)
    inv[0] = np.inf
    for c in range(1, n + 1):
        inv[c] = 1.0 / c
    s_left = np.empty(nodes)
    n_left = np.empty(nodes, dtype=np.int64)
    last_grp = np.empty(nodes, dtype=np.int64)
    best = np.empty(nodes)
    hi_rank = np.empty(nodes, dtype=np.int64)
    for f in range(f_lo, f_hi):
        for j in range(nodes):
            s_left[j] = 0.0
            n_left[j] = 0
            last_grp[j] = -1
            best[j] = -np.inf
            hi_rank[j] = -1
        if has_ties[f]:  # a threshold only between different value groups
            for r in range(n):
                i = o_rank[f, r]
                g = grp[f, r]
                for t in range(t_cols):
                    j = tn[i, t]
                    nl = n_left[j]
                    if nl > 0 and g != last_grp[j]:
                        sl = s_left[j]
                        d = sl - tot[j]
                        gain = sl * sl * inv[nl] + d * d * inv[cnt[j] - nl]
                        if gain > best[j]:
                            best[j] = gain
                            hi_rank[j] = r
                    s_left[j] += grad_nt[i, t]
                    n_left[j] = nl + 1
                    last_grp[j] = g
        else:
            for r in range(n):
                i = o_rank[f, r]
                for t in range(t_cols):
                    j = tn[i, t]
                    nl = n_left[j]
                    sl = s_left[j]
                    if nl > 0:
                        d = sl - tot[j]
                        gain = sl * sl * inv[nl] + d * d * inv[cnt[j] - nl]
                        if gain > best[j]:
                            best[j] = gain
                            hi_rank[j] = r
                    s_left[j] = sl + grad_nt[i, t]
                    n_left[j] = nl + 1
        for j in range(nodes):
            out_gain[f, j] = best[j]
            r = hi_rank[j]
            if r < 0:
                out_thr[f, j] = 0.0
                continue
            t = j // (nodes // t_cols)
            q = r - 1  # the previous sample of the same node in value order
            while tn[o_rank[f, q], t] != j:
                q -= 1
            lo = xs[f, q]
            hi = xs[f, r]
            mid = lo / 2.0 + hi / 2.0
            if mid == hi or not np.isfinite(mid):
                mid = lo
            out_thr[f, j] = mid


@numba.njit(cache=True, nogil=True)
def node_stats(node, grad, m):
    """Per (tree, node): sample count, gradient sum and squared-gradient sum (as ``np.bincount``
    over the flat (n, T) arrays sums them: ascending samples)."""
    n, t_cols = node.shape
    cnt = np.zeros((t_cols, m), dtype=np.int64)
    tot = np.zeros((t_cols, m))
    tot2 = np.zeros((t_cols, m))
    tn = np.empty((n, t_cols), dtype=np.int32)
    for i in range(n):
        for t in range(t_cols):
            k = node[i, t]
            g = grad[i, t]
            cnt[t, k] += 1
            tot[t, k] += g
            tot2[t, k] += g * g
            tn[i, t] = t * m + k
    return cnt, tot, tot2, tn


@numba.njit(cache=True, nogil=True)
def route_level(x, feat, thr, node):
    """Children of one level: ``2 * node + (x[i, feat[t, node]] > thr[t, node])``, in place."""
    n, t_cols = node.shape
    for i in range(n):
        for t in range(t_cols):
            k = node[i, t]
            node[i, t] = 2 * k + (1 if x[i, feat[t, k]] > thr[t, k] else 0)


@numba.njit(cache=True, nogil=True)
def leaf_update(grad, prob, leaf, newton, n_leaves, learning_rate, raw):
    """One Newton step per leaf (scikit-learn's multinomial / binomial deviance update) and
    ``raw += learning_rate * value[leaf]``; returns the (T, n_leaves) leaf values."""
    n, t_cols = leaf.shape
    num = np.zeros((t_cols, n_leaves))
    den = np.zeros((t_cols, n_leaves))
    cnt = np.zeros((t_cols, n_leaves), dtype=np.int64)
    for i in range(n):
        for t in range(t_cols):
            k = leaf[i, t]
            p = prob[i, t]
            num[t, k] += grad[i, t]
            den[t, k] += p * (1 - p)
            cnt[t, k] += 1
    value = np.zeros((t_cols, n_leaves))
    for t in range(t_cols):
        for k in range(n_leaves):
            c = cnt[t, k]
            if c > 0 and np.abs(den[t, k]) >= 1e-150:
                value[t, k] = (num[t, k] / c) / (den[t, k] / c) * newton[t]
            else:
                value[t, k] = 0.0 * newton[t]
    for i in range(n):
        for t in range(t_cols):
            raw[i, t] += learning_rate * value[t, leaf[i, t]]
    return value


@numba.njit(cache=True, nogil=True)
def apply_stage(x, feats, thrs, value, learning_rate, raw):
    """Route every sample through one stage's trees (levels ``feats[l]``, ``thrs[l]``) and add
    ``learning_rate * value[t, leaf]`` to ``raw``."""
    n, t_cols = raw.shape
    depth = len(feats)
    for i in range(n):
        for t in range(t_cols):
            k = 0
            for level in range(depth):
                k = 2 * k + (1 if x[i, feats[level][t, k]] > thrs[level][t, k] else 0)
            raw[i, t] += learning_rate * value[t, k]
