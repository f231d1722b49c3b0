"""Atomic file writes: a result, image or checkpoint is never left half-written.

Every writer goes through :func:`atomic_save`: write to a temporary file beside the target,
then ``os.replace`` it onto the target (atomic on POSIX and Windows).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


def atomic_save(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` and move the result onto ``path``; returns ``path``.

    The temporary file keeps ``path``'s suffix, so writers that pick a format from the
    extension (matplotlib, PIL) still do.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_save(path, lambda tmp: tmp.write_text(text))


def save_figure(fig, path: str | os.PathLike, *, dpi: int = 100, close: bool = True) -> Path:
    """Save a matplotlib figure atomically (format from the suffix) and close it."""
    atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=dpi))
    if close:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return Path(path)


def jsonable(obj):
    """``obj`` with NumPy scalars/arrays, tuples and dataclasses turned into plain JSON types."""
    import dataclasses

    import numpy as np

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def atomic_write_json(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as indented JSON atomically (NumPy values converted by :func:`jsonable`)."""
    import json

    return atomic_write_text(path, json.dumps(jsonable(obj), indent=2) + "\n")
