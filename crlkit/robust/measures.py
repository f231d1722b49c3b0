"""Measures of shortcut reliance: accuracies per (animal, background) group and background flips.

Plain functions of arrays (NumPy or torch, converted). Groups are integers ``2 * animal +
background``; with 2 x 2 groups the *mean-group* accuracy is the unweighted mean over the groups
present (it equals accuracy on a group-balanced test set), not the training-count-weighted
"average accuracy" of Sagawa et al. (2020).
"""

from __future__ import annotations

import numpy as np

from crlkit.errors import CrlkitError


def _np(a) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def accuracy_score(pred, y) -> float:
    """Fraction of ``pred == y`` (hard 0/1 predictions)."""
    pred, y = _np(pred).astype(np.int64), _np(y).astype(np.int64)
    if pred.shape != y.shape or pred.ndim != 1:
        raise CrlkitError(f"pred and y must be 1-d of equal length; got {pred.shape} and {y.shape}")
    if not len(y):
        raise CrlkitError("accuracy of an empty set is undefined")
    return float(np.mean(pred == y))


def group_accuracies(pred, y, groups) -> dict[int, float]:
    """Accuracy within each group present: ``{g: mean(pred[groups == g] == y[groups == g])}``."""
    pred, y, groups = _np(pred).astype(np.int64), _np(y).astype(np.int64), _np(groups).astype(np.int64)
    if not (pred.shape == y.shape == groups.shape):
        raise CrlkitError(f"pred, y and groups must have equal shapes; got {pred.shape}, {y.shape}, {groups.shape}")
    return {int(g): float(np.mean(pred[groups == g] == y[groups == g])) for g in np.unique(groups)}


def worst_group_accuracy(pred, y, groups) -> float:
    """``min_g acc_g`` over the groups present (Sagawa et al. 2020)."""
    return min(group_accuracies(pred, y, groups).values())


def mean_group_accuracy(pred, y, groups) -> float:
    """Unweighted mean of the per-group accuracies (= balanced-test-set accuracy)."""
    return float(np.mean(list(group_accuracies(pred, y, groups).values())))


def background_flip_rate(pred, pred_swapped) -> float:
    """Fraction of predictions that change when only the background is swapped
    (same animal, pose, colour and position rendered on the other background).
    0 for a classifier that ignores the background, 1 for one that reads only the background."""
    a, b = _np(pred).astype(np.int64), _np(pred_swapped).astype(np.int64)
    if a.shape != b.shape or not a.size:
        raise CrlkitError(f"pred and pred_swapped must be non-empty and of equal shape; got {a.shape}, {b.shape}")
    return float(np.mean(a != b))
