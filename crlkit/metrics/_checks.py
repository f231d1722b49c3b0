"""Input validation shared by every metric: one place that turns bad arrays into a
:class:`crlkit.CrlkitError` naming the argument and the problem."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from crlkit.errors import CrlkitError
from crlkit.registry import unknown_choice


def as_matrix(name: str, a: Any, *, min_rows: int = 2, dtype=np.float64) -> np.ndarray:
    """``a`` as a finite 2-D float array ``(n, d)``; a 1-D array is one column.

    Raises CrlkitError naming ``name`` for a wrong rank, NaN/inf, or fewer than ``min_rows`` rows.
    """
    if hasattr(a, "detach"):  # torch.Tensor
        a = a.detach().cpu().numpy()
    arr = np.asarray(a)
    if arr.dtype == object:
        raise CrlkitError(f"{name} must be a numeric array; got dtype object")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise CrlkitError(f"{name} must have shape (n_samples, n_dims); got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise CrlkitError(f"{name} has no columns (shape {arr.shape})")
    arr = arr.astype(dtype, copy=False)
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise CrlkitError(f"{name} contains NaN or inf (first at row {bad[0]}, column {bad[1]})")
    if arr.shape[0] < min_rows:
        raise CrlkitError(f"{name} has {arr.shape[0]} samples; at least {min_rows} are needed")
    return arr


def as_factors(name: str, a: Any, *, min_rows: int = 2, min_values: int = 2) -> np.ndarray:
    """Discrete factors as an int64 ``(n, k)`` array.

    Float arrays holding whole numbers are accepted. Each factor must take at least
    ``min_values`` distinct values in the sample (a factor with one value carries no
    information and makes every normalised score undefined).
    """
    arr = as_matrix(name, a, min_rows=min_rows)
    if not np.all(np.equal(np.mod(arr, 1), 0)):
        raise CrlkitError(f"{name} must hold integer factor values (discrete factors); "
                          "discretise continuous factors first (e.g. crlkit.metrics.discretize)")
    arr = arr.astype(np.int64)
    for j in range(arr.shape[1]):
        n_values = np.unique(arr[:, j]).size
        if n_values < min_values:
            raise CrlkitError(f"{name} column {j} takes {n_values} distinct value(s) in the sample; "
                              f"at least {min_values} are needed")
    return arr


def same_length(**arrays: np.ndarray) -> None:
    """Raise CrlkitError if the named arrays do not have the same number of rows."""
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k} has {n}" for k, n in lengths.items())
        raise CrlkitError(f"mismatched number of samples: {desc}")


def choice(field: str, value: Any, choices: Iterable[str]) -> Any:
    choices = list(choices)
    if value not in choices:
        raise CrlkitError(unknown_choice(field, value, choices))
    return value


def positive_int(field: str, value: Any, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise CrlkitError(f"{field} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def fraction(field: str, value: Any, *, low: float = 0.0, high: float = 1.0) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise CrlkitError(f"{field} must be a number in ({low}, {high}); got {value!r}") from None
    if not (low < v < high):
        raise CrlkitError(f"{field} must be in ({low}, {high}); got {value!r}")
    return v


def rng_from(seed: Any) -> np.random.Generator:
    """A Generator from an int seed or a Generator (no global RNG)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise CrlkitError(f"seed must be an int or numpy.random.Generator; got {seed!r}")
    return np.random.default_rng(int(seed))
