"""Robustness to shortcuts: accuracy overall and per group, where a group is a
(label, attribute) pair — e.g. (cow, desert) in cows/camels, (landbird, water) in Waterbirds.

Worst-group accuracy (Sagawa et al. 2020, GroupDRO) is the headline number of the
shortcut-learning literature; "average accuracy" there usually weights groups by their
*training* counts — pass ``group_weights`` to get that one, and say which average you report.
"""

from __future__ import annotations

import numpy as np

from crlkit.errors import CrlkitError
from crlkit.metrics._checks import same_length


def _labels(name: str, a) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    arr = np.asarray(a)
    if arr.ndim == 2 and name == "y_pred":   # scores/logits/probabilities -> predicted class
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise CrlkitError("y_pred contains NaN or inf")
        arr = arr.argmax(axis=1)
    if arr.ndim != 1:
        raise CrlkitError(f"{name} must be 1-D labels (or 2-D class scores for y_pred); got shape {arr.shape}")
    if arr.size == 0:
        raise CrlkitError(f"{name} is empty")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise CrlkitError(f"{name} contains NaN or inf")
    return arr


def accuracy_score(y_true, y_pred) -> float:
    """Fraction of correct predictions. ``y_pred`` may be labels or (n, classes) scores."""
    yt, yp = _labels("y_true", y_true), _labels("y_pred", y_pred)
    same_length(y_true=yt, y_pred=yp)
    return float(np.mean(yt == yp))


def group_accuracies(y_true, y_pred, attribute) -> dict:
    """Accuracy of each (label, attribute) group present: ``{(label, attr): (accuracy, count)}``."""
    yt, yp, at = _labels("y_true", y_true), _labels("y_pred", y_pred), _labels("attribute", attribute)
    same_length(y_true=yt, y_pred=yp, attribute=at)
    out = {}
    pairs = np.stack([yt, at], axis=1)
    for key in np.unique(pairs, axis=0):
        mask = (yt == key[0]) & (at == key[1])
        out[(key[0].item(), key[1].item())] = (float(np.mean(yt[mask] == yp[mask])), int(mask.sum()))
    return out


def worst_group_accuracy(y_true, y_pred, attribute) -> float:
    """Minimum accuracy over the (label, attribute) groups present in the data."""
    return min(acc for acc, _ in group_accuracies(y_true, y_pred, attribute).values())


def mean_group_accuracy(y_true, y_pred, attribute) -> float:
    """Unweighted mean of the group accuracies (each group counts once, whatever its size)."""
    return float(np.mean([acc for acc, _ in group_accuracies(y_true, y_pred, attribute).values()]))


def robustness_scores(y_true, y_pred, attribute, *, group_weights: dict | None = None) -> dict:
    """``{"accuracy", "worst_group_accuracy", "mean_group_accuracy", "groups"}`` and, with
    ``group_weights`` ({(label, attr): weight}, e.g. training counts), ``"weighted_accuracy"`` —
    the group accuracies averaged with those weights (the Waterbirds papers' "average
    accuracy"). ``groups`` maps ``"label=<y>,attribute=<a>"`` to ``{"accuracy", "count"}``."""
    groups = group_accuracies(y_true, y_pred, attribute)
    accs = [a for a, _ in groups.values()]
    out = {"accuracy": accuracy_score(y_true, y_pred),
           "worst_group_accuracy": float(min(accs)),
           "mean_group_accuracy": float(np.mean(accs)),
           "groups": {f"label={k[0]},attribute={k[1]}": {"accuracy": a, "count": c} for k, (a, c) in groups.items()}}
    if group_weights is not None:
        missing = [k for k in groups if k not in group_weights]
        if missing:
            raise CrlkitError(f"group_weights has no weight for group(s) {missing}; "
                              f"keys must be (label, attribute) pairs like {next(iter(groups))}")
        w = np.array([float(group_weights[k]) for k in groups])
        if np.any(w < 0) or w.sum() <= 0:
            raise CrlkitError("group_weights must be non-negative with a positive sum")
        out["weighted_accuracy"] = float(np.dot(w, accs) / w.sum())
    return out
