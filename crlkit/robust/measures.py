"""Measures of shortcut reliance.

Accuracy, per-group, worst-group and mean-group accuracy come from
:mod:`crlkit.metrics.robustness` (groups = (label, attribute) pairs; here the attribute is the
background, so the groups are cow/grass, cow/sand, camel/grass, camel/sand). The mean-group
accuracy is the unweighted mean over the groups present (= accuracy on a group-balanced test
set), not the training-count-weighted "average accuracy" of Sagawa et al. (2020).

This module adds :func:`worst_class_accuracy` (the selection score that needs no group labels)
and the counterfactual measure :func:`background_flip_rate`.
"""

from __future__ import annotations

import numpy as np

from crlkit.errors import CrlkitError
from crlkit.metrics.robustness import accuracy_score, group_accuracies, mean_group_accuracy, worst_group_accuracy


def worst_class_accuracy(y_true, y_pred) -> float:
    """Minimum over the classes present of the accuracy on that class's examples,
    ``min_c mean(pred[y == c] == c)`` (the worst-class accuracy that SubpopBench, Yang et al.
    2023, recommends for model selection without group labels). Invariant to the class
    proportions; 1 only for a perfect classifier, 0 when one class is never predicted right."""
    yt = np.asarray(y_true.detach().cpu() if hasattr(y_true, "detach") else y_true).astype(np.int64)
    yp = np.asarray(y_pred.detach().cpu() if hasattr(y_pred, "detach") else y_pred).astype(np.int64)
    if yt.shape != yp.shape or yt.ndim != 1 or not yt.size:
        raise CrlkitError(f"y_true and y_pred must be non-empty 1-d and of equal shape; got {yt.shape}, {yp.shape}")
    return float(min(np.mean(yp[yt == c] == c) for c in np.unique(yt)))


def background_flip_rate(pred, pred_swapped) -> float:
    """Fraction of predictions that change when only the background is swapped
    (the same animal, pose, colour and position rendered on the other background).

    0 for a classifier that ignores the background, 1 for one that reads only the background."""
    a, b = (np.asarray(p.detach().cpu() if hasattr(p, "detach") else p).astype(np.int64)
            for p in (pred, pred_swapped))
    if a.shape != b.shape or a.ndim != 1 or not a.size:
        raise CrlkitError(f"pred and pred_swapped must be non-empty 1-d and of equal shape; got {a.shape}, {b.shape}")
    return float(np.mean(a != b))


__all__ = ["accuracy_score", "group_accuracies", "mean_group_accuracy", "worst_group_accuracy",
           "worst_class_accuracy", "background_flip_rate"]
