"""Gradient-boosted trees for DCI, vectorised over every class of every factor at once.

This re-implements, in NumPy, exactly the model that disentanglement_lib's DCI fits:
``sklearn.ensemble.GradientBoostingClassifier()`` with its defaults (log-loss, 100 stages,
learning rate 0.1, regression trees of depth 3 on the negative gradient with the squared-error
criterion, ``min_samples_leaf=1``, a prior-probability initial model, one Newton step per
leaf with Friedman's ``(K-1)/K`` factor for multi-class, one tree per stage for a binary
factor) and its ``feature_importances_`` (total squared-error reduction per feature, summed
over all trees of a factor, normalised to sum 1).

scikit-learn fits those trees one at a time in a Python loop: 100 x 113 = 11,300 trees for
the five dSprites factors. Here all trees of one boosting stage (every class of every
factor) are grown together, level by level, with cumulative sums over pre-sorted features,
so the cost is a few hundred array operations per stage. With numba installed the exact split
search (the hot loop) runs as a compiled kernel instead (``engine="numba"``,
:mod:`crlkit.metrics._gbt_numba`): one pass per latent over its value order, every tree's
running sums in the inner loop; it returns the same gains and thresholds, and everything else
(tie-breaking, leaf values, routing) is the shared NumPy code below.

With every distinct value a candidate threshold (``max_bins=None``) this is the same model
up to floating-point summation order; exact ties between features (frequent in the small
nodes of an over-fitting ensemble) are broken uniformly at random as scikit-learn's random
feature order does, with a seeded generator. With ``max_bins`` thresholds are restricted to
quantile bins (LightGBM-style), which is much faster and close (bench/RESULTS_metrics.md).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.sparse

_EPS = np.finfo(np.float64).eps
_FEATURE_THRESHOLD = 1e-7  # scikit-learn's minimum gap between two values to split between


class _Groups:
    """Column layout of the tree ensemble: one column (tree per stage) per class of a
    multi-class factor, one column for a binary factor."""

    def __init__(self, y_train: np.ndarray):
        self.classes: list[np.ndarray] = []
        self.slices: list[slice] = []
        self.binary: list[bool] = []
        start = 0
        for j in range(y_train.shape[1]):
            cls = np.unique(y_train[:, j])
            self.classes.append(cls)
            width = 1 if len(cls) == 2 else len(cls)
            self.slices.append(slice(start, start + width))
            self.binary.append(len(cls) == 2)
            start += width
        self.n_columns = start

    def encode(self, y: np.ndarray) -> np.ndarray:
        """Class indices per factor; labels unseen in training map to -1."""
        out = np.full(y.shape, -1, dtype=np.int64)
        for j, cls in enumerate(self.classes):
            pos = np.clip(np.searchsorted(cls, y[:, j]), 0, len(cls) - 1)
            out[:, j] = np.where(cls[pos] == y[:, j], pos, -1)
        return out

    def targets(self, codes: np.ndarray) -> np.ndarray:
        n = codes.shape[0]
        target = np.zeros((n, self.n_columns))
        for j, sl in enumerate(self.slices):
            if self.binary[j]:
                target[:, sl.start] = codes[:, j] == 1
            else:
                target[np.arange(n), sl.start + codes[:, j]] = 1.0
        return target

    def init_raw(self, target: np.ndarray) -> np.ndarray:
        """Raw scores of the prior model (DummyClassifier(strategy="prior") + link)."""
        prior = np.clip(target.mean(axis=0), _EPS, 1 - _EPS)
        raw = np.empty_like(prior)
        for j, sl in enumerate(self.slices):
            p = prior[sl]
            raw[sl] = np.log(p / (1 - p)) if self.binary[j] else np.log(p) - np.log(p).mean()
        return raw

    def proba(self, raw: np.ndarray) -> np.ndarray:
        """Per-column probability: sigmoid (binary) or softmax within the factor's columns."""
        p = np.empty_like(raw)
        for j, sl in enumerate(self.slices):
            r = raw[:, sl]
            if self.binary[j]:
                p[:, sl] = 1.0 / (1.0 + np.exp(-r))
            else:
                e = np.exp(r - r.max(axis=1, keepdims=True))
                p[:, sl] = e / e.sum(axis=1, keepdims=True)
        return p

    def newton_factor(self) -> np.ndarray:
        f = np.empty(self.n_columns)
        for j, sl in enumerate(self.slices):
            k = len(self.classes[j])
            f[sl] = 1.0 if self.binary[j] else (k - 1) / k
        return f

    def predict(self, raw: np.ndarray) -> np.ndarray:
        out = np.empty((raw.shape[0], len(self.slices)), dtype=np.int64)
        for j, sl in enumerate(self.slices):
            out[:, j] = (raw[:, sl.start] > 0).astype(np.int64) if self.binary[j] else raw[:, sl].argmax(axis=1)
        return out


def _bin_features(x: np.ndarray, max_bins: int | None):
    """Bin each feature by value.

    Returns ``bins`` (n, p) int, ``lo``/``hi`` (p, B) the smallest/largest training value in
    each bin, and ``B``. With ``max_bins=None`` (or at most ``max_bins`` distinct values)
    every distinct value is its own bin (values closer than scikit-learn's
    ``FEATURE_THRESHOLD`` share one), so every threshold scikit-learn could pick is a
    candidate; otherwise bins hold equal numbers of samples (quantile cut points).
    """
    n, p = x.shape
    per_feature = []
    for f in range(p):
        u = np.unique(x[:, f])
        # start a new group where the gap to the previous value exceeds the threshold
        new_group = np.concatenate([[True], np.diff(u) > _FEATURE_THRESHOLD])
        upper = u[np.append(np.flatnonzero(new_group[1:]), len(u) - 1)]      # last value of each group
        if max_bins is not None and len(upper) > max_bins:
            q = np.quantile(x[:, f], np.linspace(0, 1, max_bins + 1)[1:-1], method="inverted_cdf")
            idx = np.unique(np.searchsorted(upper, q, side="left"))
            upper = np.append(upper[idx[idx < len(upper) - 1]], upper[-1])
        per_feature.append(upper)
    n_bins = max(2, max(len(c) for c in per_feature))  # >= 2: one (possibly empty) boundary
    lo = np.full((p, n_bins), np.inf)
    hi = np.full((p, n_bins), -np.inf)
    bins = np.empty((n, p), dtype=np.int64)
    for f, upper in enumerate(per_feature):
        b = np.searchsorted(upper[:-1], x[:, f], side="left")
        bins[:, f] = b
        np.minimum.at(lo[f], b, x[:, f])
        np.maximum.at(hi[f], b, x[:, f])
    return bins, lo, hi, n_bins


def _grow_stage(x: np.ndarray, bin_matrix, root_counts: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                grad: np.ndarray, max_depth: int, importance: np.ndarray, rng: np.random.Generator):
    """Grow one depth-``max_depth`` regression tree per column of ``grad`` (all at once).

    Splits maximise the squared-error reduction ``S_L^2/n_L + S_R^2/n_R - S^2/n`` over every
    (feature, bin boundary), as scikit-learn's ``DecisionTreeRegressor`` does over sorted
    values. Histograms of gradient sums and counts per (tree, node, feature, bin) come from
    one sparse-dense product per level with ``bin_matrix`` (p*B, n), the one-hot bin of each
    sample per feature; only left children are histogrammed, right ones are parent minus left. Adds each split's
    reduction / n to ``importance`` (T, p). Returns the leaf index (n, T) in
    [0, 2**max_depth) and the splits per level.
    """
    n, p = x.shape
    n_bins = lo.shape[1]
    t_cols = grad.shape[1]
    cols = np.arange(t_cols)
    node = np.zeros((n, t_cols), dtype=np.int64)
    is_open = np.ones((t_cols, 1), dtype=bool)  # node may still be split
    levels = []
    grad2 = grad * grad
    parent_s = parent_c = None
    x_flat = x.ravel()
    row_base = np.arange(n)[:, None] * p
    for level in range(max_depth):
        m = 2 ** level
        if level == 0:
            h_s = bin_matrix @ grad                                          # (p*B, T)
            hist = h_s.T.reshape(t_cols, 1, p, n_bins)
            cnt_h = np.broadcast_to(root_counts.reshape(1, 1, p, n_bins), hist.shape)
        else:  # histogram the left children only; right child = parent - left child
            half = m // 2
            ind = (node[:, :, None] == 2 * np.arange(half)).astype(np.float64)  # (n, T, M/2)
            stacked = np.concatenate([(grad[:, :, None] * ind).reshape(n, -1), ind.reshape(n, -1)], axis=1)
            h = (bin_matrix @ stacked).T.reshape(2, t_cols, half, p, n_bins)
            hist = np.empty((t_cols, m, p, n_bins))
            cnt_h = np.empty((t_cols, m, p, n_bins))
            hist[:, 0::2], cnt_h[:, 0::2] = h[0], h[1]
            hist[:, 1::2] = parent_s - h[0]
            cnt_h[:, 1::2] = parent_c - h[1]
        parent_s, parent_c = hist, cnt_h
        s_left = np.cumsum(hist, axis=3)[..., :-1]                            # (T, M, p, B-1)
        n_left = np.cumsum(cnt_h, axis=3)[..., :-1]
        tot = hist[:, :, 0, :].sum(axis=2)                                    # (T, M)
        cnt = cnt_h[:, :, 0, :].sum(axis=2)
        tn = cols[None, :] * m + node
        tot2 = np.bincount(tn.ravel(), weights=grad2.ravel(), minlength=t_cols * m).reshape(t_cols, m)
        with np.errstate(invalid="ignore", divide="ignore"):
            impurity = tot2 / cnt - (tot / cnt) ** 2
            t_ = tot[:, :, None, None]
            c_ = cnt[:, :, None, None]
            n_right = c_ - n_left
            gain = s_left * s_left / n_left + (t_ - s_left) ** 2 / n_right - t_ * t_ / c_
        # counts are sums of 0/1 products: exact integers in float64
        gain = np.where((n_left > 0.5) & (n_right > 0.5), gain, -np.inf)      # (T, M, p, B-1)
        pos = gain.argmax(axis=3)                                             # best bin per feature
        feat_gain = np.take_along_axis(gain, pos[..., None], axis=3)[..., 0]  # (T, M, p)
        best_gain = feat_gain.max(axis=2)
        # scikit-learn visits features in a random order and keeps the first strictly better
        # split, so exact ties (common in small nodes) go to a uniformly random feature
        tied = feat_gain >= best_gain[..., None] - 1e-12 * np.maximum(1.0, np.abs(best_gain[..., None]))
        best_feat = np.where(tied, rng.random(tied.shape), -1.0).argmax(axis=2)
        best_bin = np.take_along_axis(pos, best_feat[..., None], axis=2)[..., 0]
        do_split = is_open & (cnt >= 2) & (impurity > _EPS) & np.isfinite(best_gain)
        # threshold: midpoint between the largest value left and the smallest value right in
        # the node (scikit-learn's rule), from the nearest non-empty bins of the node
        c_row = np.take_along_axis(cnt_h, best_feat[:, :, None, None], axis=2)[:, :, 0, :]  # (T, M, B)
        idx = np.arange(n_bins)
        left_bin = np.where((c_row > 0.5) & (idx <= best_bin[..., None]), idx, -1).max(axis=2)
        right_bin = np.where((c_row > 0.5) & (idx > best_bin[..., None]), idx, n_bins).min(axis=2)
        left_bin = np.clip(left_bin, 0, n_bins - 1)
        right_bin = np.clip(right_bin, 0, n_bins - 1)
        thr = np.where(do_split, hi[best_feat, left_bin] / 2.0 + lo[best_feat, right_bin] / 2.0, np.inf)
        gains = np.where(do_split, best_gain, 0.0) / n
        np.add.at(importance, (np.repeat(cols, m), best_feat.ravel()), gains.ravel())
        # route samples: right child iff x[feature] > threshold of their node
        xv = np.take(x_flat, row_base + np.take(best_feat, tn))                # (n, T)
        node = 2 * node + (xv > np.take(thr, tn))
        is_open = np.repeat(do_split, 2, axis=1)
        levels.append((best_feat, thr))
    return node, levels


class _SortedFeatures:
    """Stage-invariant tables of the exact search: each feature's value order and value groups."""

    def __init__(self, x: np.ndarray, n_trees: int, tree_index: bool = True):
        n, p = x.shape
        order = np.argsort(x, axis=0, kind="stable")
        self.xs = np.ascontiguousarray(np.take_along_axis(x, order, axis=0).T)      # (p, n) sorted values
        self.o_rank = np.ascontiguousarray(order.T)                                  # (p, n) sample at rank
        # value-group id by rank (values closer than FEATURE_THRESHOLD share one): a threshold
        # may only fall between samples of different groups
        gaps = np.diff(self.xs, axis=1) > _FEATURE_THRESHOLD
        self.grp_sorted = np.concatenate([np.zeros((p, 1), np.int32), np.cumsum(gaps, axis=1, dtype=np.int32)], axis=1)
        self.has_ties = self.grp_sorted[:, -1] < n - 1                               # (p,)
        # flat index into the (T, n) gradient array of the sample at each rank, per tree (NumPy
        # scan only; the compiled scan does without this (p, T, n) table)
        self.o_tree = self.o_rank[:, None, :] + (np.arange(n_trees) * n)[None, :, None] if tree_index else None


def _grow_stage_exact(x: np.ndarray, sf: _SortedFeatures, grad: np.ndarray, max_depth: int,
                      importance: np.ndarray, rng: np.random.Generator, chunk_elems: int = 1 << 22,
                      pool=None, n_chunks: int = 1, nb=None):
    """As :func:`_grow_stage`, searching every threshold between consecutive distinct values
    of each node's samples, as scikit-learn's ``BestSplitter`` does.

    Per level, the samples of every tree are stably re-sorted by node within each feature's
    value order (a radix sort of small node ids), so each node's samples form a contiguous,
    value-sorted segment; prefix sums over segments give every candidate split's gain, and
    ``reduceat`` the best one per node. Cost per level ~ n_features x n_trees x n_samples.
    """
    n, p = x.shape
    t_cols = grad.shape[1]
    cols = np.arange(t_cols)
    node = np.zeros((n, t_cols), dtype=np.int64)
    is_open = np.ones((t_cols, 1), dtype=bool)
    levels = []
    grad_tn = np.ascontiguousarray(grad.T)                                    # (T, n) tree-major
    grad_flat = grad_tn.ravel()
    xs, o_rank, o_tree, grp_sorted, has_ties = sf.xs, sf.o_rank, sf.o_tree, sf.grp_sorted, sf.has_ties
    grad2 = grad * grad
    x_flat = x.ravel()
    row_base = np.arange(n)[:, None] * p
    positions = np.arange(n)
    f_chunk = max(1, min(-(-p // n_chunks), chunk_elems // max(1, t_cols * n)))
    for level in range(max_depth):
        m = 2 ** level
        if nb is not None:  # compiled (crlkit.metrics._gbt_numba): same sums, gains, thresholds
            cnt, tot, tot2, tn32 = nb.node_stats(node, grad, m)
            feat_gain = np.empty((p, t_cols, m))
            feat_thr = np.empty((p, t_cols, m))
            grad_c, tot_f, cnt_f = np.ascontiguousarray(grad), tot.ravel(), cnt.ravel()
            gain_f, thr_f = feat_gain.reshape(p, -1), feat_thr.reshape(p, -1)

            def kscan(fs):
                nb.scan_features(int(fs[0]), int(fs[-1]) + 1, o_rank, xs, grp_sorted, has_ties, grad_c, tn32,
                                 tot_f, cnt_f, gain_f, thr_f)

            f_chunks = [np.arange(f0, min(p, f0 + -(-p // n_chunks))) for f0 in range(0, p, -(-p // n_chunks))]
            list(pool.map(kscan, f_chunks) if pool is not None else map(kscan, f_chunks))
            feat_gain -= (tot * tot / np.maximum(cnt, 1))[None]
        else:  # NumPy scan
            tn = cols[None, :] * m + node                                     # (n, T)
            cnt = np.bincount(tn.ravel(), minlength=t_cols * m).reshape(t_cols, m).astype(np.int64)
            tot = np.bincount(tn.ravel(), weights=grad.ravel(), minlength=t_cols * m).reshape(t_cols, m)
            tot2 = np.bincount(tn.ravel(), weights=grad2.ravel(), minlength=t_cols * m).reshape(t_cols, m)
            start = np.cumsum(cnt, axis=1) - cnt                                  # (T, M) segment starts
            marks = np.zeros((t_cols, n + 1), dtype=np.int64)
            np.add.at(marks, (np.repeat(cols, m - 1), start[:, 1:].ravel()), 1)
            seg = np.cumsum(marks[:, :n], axis=1)                                 # (T, n) node of each position
            seg_start = np.take_along_axis(start, seg, axis=1)
            n_left = (positions[None, :] - seg_start + 1).astype(np.float64)      # (T, n)
            n_seg = np.take_along_axis(cnt, seg, axis=1).astype(np.float64)
            s_seg = np.take_along_axis(tot, seg, axis=1)
            last = n_left == n_seg
            inv_left = 1.0 / n_left
            with np.errstate(divide="ignore"):
                inv_right = np.where(last, np.nan, 1.0 / (n_seg - n_left))        # NaN: no sample right
            const = tot * tot / np.maximum(cnt, 1)                                # (T, M) S^2/N per node
            # flat segment starts for reduceat; an empty trailing segment would start at T*n (out of
            # range): clipping it to T*n - 1 only drops a segment's last position, never a valid split
            seg_first = np.minimum((cols[:, None] * n + start).ravel(), t_cols * n - 1)
            # subtracting the previous segment's total at each segment start makes one cumsum
            # restart at every segment: prefix sums within nodes
            reset_t, reset_m = np.nonzero(start[:, 1:] < n)                      # segment m+1 starts inside
            reset_pos = start[reset_t, reset_m + 1]
            reset_val = tot[reset_t, reset_m]                                     # previous segment's total
            node8 = node.T.astype(np.int8 if m <= 127 else np.int16)              # (T, n)
            feat_gain = np.full((p, t_cols, m), -np.inf)
            feat_thr = np.zeros((p, t_cols, m))
            def scan(fs):
                nf = len(fs)
                sl = slice(int(fs[0]), int(fs[-1]) + 1)                           # contiguous: views, no copies
                o = o_rank[sl]                                                    # (F, n) sample at each rank
                if m == 1:
                    perm = None
                    g = np.take(grad_flat, o_tree[sl])                            # value-sorted gradients
                else:
                    perm = np.argsort(np.swapaxes(node8[:, o], 0, 1), axis=2, kind="stable")  # radix sort by node
                    g = np.take(grad_flat, np.take_along_axis(o_tree[sl], perm, axis=2))  # node-sorted
                if m > 1:
                    # within-segment prefix sums: restart the running sum at each node's first sample
                    np.subtract.at(g, (slice(None), reset_t, reset_pos), reset_val)
                s_left = np.cumsum(g, axis=2)
                gain = s_left * s_left
                gain *= inv_left
                s_left -= s_seg
                s_left *= s_left
                s_left *= inv_right
                gain += s_left                                                    # NaN where invalid
                if has_ties[sl].any():  # no threshold between equal values
                    gp = np.broadcast_to(grp_sorted[sl][:, None, :], gain.shape) if perm is None else \
                        np.take_along_axis(grp_sorted[sl][:, None, :], perm, axis=2)
                    gain[..., :-1][gp[..., 1:] == gp[..., :-1]] = np.nan
                gflat = gain.reshape(nf, -1)                                      # (F, T*n)
                segmax = np.fmax.reduceat(gflat, seg_first, axis=1)               # (F, T*M), ignores NaN
                segmax[np.isnan(segmax)] = -np.inf                                # no valid split at all
                segmax[:, (cnt == 0).ravel()] = -np.inf
                # first position of each segment's maximum (sklearn keeps the first best threshold)
                hits = np.flatnonzero(gflat == np.repeat(segmax, cnt.ravel(), axis=1))
                starts = (np.arange(nf)[:, None] * (t_cols * n) + seg_first[None, :]).ravel()
                if len(hits):
                    first = hits[np.minimum(np.searchsorted(hits, starts), len(hits) - 1)]
                else:
                    first = starts
                first = first.reshape(nf, -1) - np.arange(nf)[:, None] * (t_cols * n)
                # position within the tree's row of the chosen sample and of the next one (same
                # node, next larger value); ranks in the feature's value order give the values
                pos = np.clip(first - (cols * n).repeat(m)[None, :], 0, n - 2)     # (F, T*M)
                t_of = np.broadcast_to(np.repeat(cols, m)[None, :], pos.shape)
                f_of = np.broadcast_to(np.arange(nf)[:, None], pos.shape)
                rank_lo = pos if perm is None else perm[f_of, t_of, pos]
                rank_hi = pos + 1 if perm is None else perm[f_of, t_of, pos + 1]
                lo = xs[fs[f_of], rank_lo]
                hi = xs[fs[f_of], rank_hi]
                thr = lo / 2.0 + hi / 2.0
                thr = np.where((thr == hi) | ~np.isfinite(thr), lo, thr)          # scikit-learn's guard
                return fs, segmax.reshape(nf, t_cols, m) - const[None], thr.reshape(nf, t_cols, m)

            chunks = [np.arange(f0, min(p, f0 + f_chunk)) for f0 in range(0, p, f_chunk)]
            results = pool.map(scan, chunks) if pool is not None else map(scan, chunks)
            for fs, fg, ft in results:
                feat_gain[fs] = fg
                feat_thr[fs] = ft
        best_gain = feat_gain.max(axis=0)                                     # (T, M)
        tied = feat_gain >= best_gain[None] - 1e-12 * np.maximum(1.0, np.abs(best_gain[None]))
        best_feat = np.where(tied, rng.random(tied.shape), -1.0).argmax(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            impurity = tot2 / cnt - (tot / cnt) ** 2
        do_split = is_open & (cnt >= 2) & (impurity > _EPS) & np.isfinite(best_gain)
        thr = np.where(do_split, np.take_along_axis(feat_thr, best_feat[None], axis=0)[0], np.inf)
        gains = np.where(do_split, best_gain, 0.0) / n
        np.add.at(importance, (np.repeat(cols, m), best_feat.ravel()), gains.ravel())
        if nb is not None:
            nb.route_level(x, best_feat, thr, node)                          # in place
        else:
            xv = np.take(x_flat, row_base + np.take(best_feat, tn))
            node = 2 * node + (xv > np.take(thr, tn))
        is_open = np.repeat(do_split, 2, axis=1)
        levels.append((best_feat, thr))
    return node, levels


def _route(x: np.ndarray, levels) -> np.ndarray:
    """Leaf index (n, T) of each sample in each tree of one stage."""
    n, p = x.shape
    t_cols = levels[0][0].shape[0]
    cols = np.arange(t_cols)
    node = np.zeros((n, t_cols), dtype=np.int64)
    x_flat = x.ravel()
    row_base = np.arange(n)[:, None] * p
    for feat, thr in levels:
        tn = cols * feat.shape[1] + node
        node = 2 * node + (np.take(x_flat, row_base + np.take(feat, tn)) > np.take(thr, tn))
    return node


def boosted_tree_importances(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                             y_test: np.ndarray, *, n_estimators: int = 100, max_depth: int = 3,
                             learning_rate: float = 0.1, max_bins: int | None = None, seed=0,
                             n_jobs: int = 1, engine: str = "numpy", on_stage: Callable[[], None] | None = None):
    """Fit one gradient-boosted classifier per factor (scikit-learn defaults) on all factors
    at once.

    ``engine="numba"`` runs the exact split search (``max_bins=None``) as a compiled kernel
    (:mod:`crlkit.metrics._gbt_numba`; same gains and thresholds, same seeded tie-breaking);
    ``"numpy"`` as vectorised NumPy. The binned search is NumPy in both. ``on_stage`` is called
    after each of the ``n_estimators`` boosting stages (progress).

    Returns
    -------
    importance : (n_latents, n_factors) array, each column sums to 1 (or is 0 if no split)
    train_accuracy, test_accuracy : (n_factors,) arrays
    """
    # scikit-learn's trees work on float32 features
    x_train = np.asarray(x_train, dtype=np.float32).astype(np.float64)
    x_test = np.asarray(x_test, dtype=np.float32).astype(np.float64)
    n, p = x_train.shape
    groups = _Groups(y_train)
    codes_train = groups.encode(y_train)
    codes_test = groups.encode(y_test)
    target = groups.targets(codes_train)
    rng = np.random.default_rng(seed)                                         # tie-breaking only
    exact = max_bins is None
    pool = None
    if n_jobs > 1:  # NumPy releases the GIL in the array kernels: latents are scanned in threads
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(n_jobs)
    nb = None
    if exact and engine == "numba":
        from crlkit.metrics import _gbt_numba as nb
    if exact:
        sorted_features = _SortedFeatures(x_train, groups.n_columns, tree_index=nb is None)
    else:
        bins, lo, hi, n_bins = _bin_features(x_train, max_bins)
        # sparse (p*B, n) one-hot of each sample's bin per feature: histograms are products with it
        bin_matrix = scipy.sparse.csr_matrix(
            (np.ones(n * p), ((np.arange(p)[None, :] * n_bins + bins).ravel(), np.repeat(np.arange(n), p))),
            shape=(p * n_bins, n))
        root_counts = np.asarray(bin_matrix.sum(axis=1)).ravel()
    newton = groups.newton_factor()
    t_cols = groups.n_columns
    n_leaves = 2 ** max_depth
    raw = np.tile(groups.init_raw(target), (n, 1))
    raw_test = np.tile(groups.init_raw(target), (x_test.shape[0], 1))
    importance = np.zeros((t_cols, p))
    flat_base = np.arange(t_cols)[None, :] * n_leaves
    for _ in range(n_estimators):
        prob = groups.proba(raw)
        grad = target - prob                                                  # negative gradient
        if exact:
            leaf, levels = _grow_stage_exact(x_train, sorted_features, grad, max_depth, importance, rng,
                                             pool=pool, n_chunks=n_jobs, nb=nb)
        else:
            leaf, levels = _grow_stage(x_train, bin_matrix, root_counts, lo, hi, grad, max_depth, importance, rng)
        if on_stage is not None:
            on_stage()
        if nb is not None:
            value = nb.leaf_update(grad, prob, leaf, newton, n_leaves, learning_rate, raw)
            nb.apply_stage(x_test, tuple(f for f, _ in levels), tuple(t for _, t in levels), value,
                           learning_rate, raw_test)
            continue
        idx = (flat_base + leaf).ravel()
        size = t_cols * n_leaves
        num = np.bincount(idx, weights=grad.ravel(), minlength=size)
        den = np.bincount(idx, weights=(prob * (1 - prob)).ravel(), minlength=size)
        cnt = np.bincount(idx, minlength=size)
        with np.errstate(invalid="ignore", divide="ignore"):
            value = np.where((np.abs(den) >= 1e-150) & (cnt > 0), (num / cnt) / (den / cnt), 0.0)
        value = value.reshape(t_cols, n_leaves) * newton[:, None]
        cols = np.arange(t_cols)
        raw += learning_rate * value[cols, leaf]
        raw_test += learning_rate * value[cols, _route(x_test, levels)]
    imp = np.zeros((p, len(groups.slices)))
    for j, sl in enumerate(groups.slices):
        s = importance[sl].sum(axis=0)
        total = s.sum()
        imp[:, j] = s / total if total > 0 else 0.0
    train_acc = (groups.predict(raw) == codes_train).mean(axis=0)
    test_acc = (groups.predict(raw_test) == codes_test).mean(axis=0)
    return imp, train_acc, test_acc
