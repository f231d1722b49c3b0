"""Discretisation and discrete information quantities (natural-log units, as scikit-learn's
``mutual_info_score`` which disentanglement_lib uses)."""

from __future__ import annotations

import numpy as np

from crlkit.metrics._checks import as_matrix, positive_int


def discretize(codes, *, n_bins: int = 20) -> np.ndarray:
    """Histogram-discretise each column into ``n_bins`` equal-width bins (disentanglement_lib's
    ``histogram_discretize``): bin edges span the column's min..max; values are bin indices
    1..n_bins (``np.digitize`` against the left edges). Invariant to any increasing affine map
    of a column; a constant column falls in one bin.
    """
    codes = as_matrix("codes", codes, min_rows=1)
    n_bins = positive_int("n_bins", n_bins)
    out = np.empty(codes.shape, dtype=np.int64)
    for j in range(codes.shape[1]):
        edges = np.histogram(codes[:, j], n_bins)[1]
        out[:, j] = np.digitize(codes[:, j], edges[:-1])
    return out


def _dense_labels(a: np.ndarray) -> tuple[np.ndarray, int]:
    uniq, inv = np.unique(a, return_inverse=True)
    return inv.ravel(), len(uniq)


def entropy(labels: np.ndarray) -> float:
    """Shannon entropy (nats) of the empirical distribution of ``labels`` (1-D)."""
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    """Mutual information (nats) between two discrete label vectors (plug-in estimate)."""
    ia, na = _dense_labels(a)
    ib, nb = _dense_labels(b)
    joint = np.bincount(ia * nb + ib, minlength=na * nb).reshape(na, nb).astype(np.float64)
    n = joint.sum()
    pa = joint.sum(axis=1, keepdims=True)
    pb = joint.sum(axis=0, keepdims=True)
    nz = joint > 0
    return float(max((joint[nz] / n * np.log(joint[nz] * n / (pa @ pb)[nz])).sum(), 0.0))


def mutual_info_matrix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``M[i, j] = I(x[:, i]; y[:, j])`` for discrete columns."""
    return np.array([[mutual_info(x[:, i], y[:, j]) for j in range(y.shape[1])] for i in range(x.shape[1])])
