"""Atomic, durable file writes: a result, image or checkpoint is either written whole or not at all.

Every writer goes through :func:`atomic_save`: write to a temporary file beside the target,
``fsync`` it, ``os.replace`` it onto the target (atomic on POSIX and Windows), then ``fsync``
the directory so that the rename itself survives a power cut (SQLite's rule: a write either
happened whole or not at all). :func:`append_durably` is the append-only counterpart for logs.

JSON is strict (``allow_nan=False``): :func:`atomic_write_json` writes non-finite floats as
``null`` and records why under a top-level ``"nonfinite"`` key, e.g.
``{"gaussian_total_correlation": null, "nonfinite": {"gaussian_total_correlation": "inf"}}``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable


def fsync_path(path: str | os.PathLike) -> None:
    """``fsync`` a file or a directory by path (a no-op where the OS cannot open directories)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. directories on Windows
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_save(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` and move the result onto ``path`` durably; returns ``path``.

    The temporary file keeps ``path``'s suffix, so writers that pick a format from the
    extension (matplotlib, PIL) still do.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically and durably."""
    return atomic_save(path, lambda tmp: tmp.write_text(text))


def append_durably(path: str | os.PathLike, text: str) -> None:
    """Append ``text`` to ``path``, flush and ``fsync`` it (the file is created if missing).

    A crash can leave only the last line torn; readers drop a last line without ``\\n``.
    """
    path = Path(path)
    new = not path.exists()
    with open(path, "a", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    if new:
        fsync_path(path.parent)


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


def strict_json(obj) -> tuple[object, dict[str, str]]:
    """``(obj with every non-finite float replaced by None, {dotted.path: "inf" | "-inf" | "nan"})``.

    Runs after :func:`jsonable`; list positions appear as path components (``"curve.3"``).
    """
    reasons: dict[str, str] = {}

    def walk(v, where: str):
        if isinstance(v, dict):
            return {k: walk(x, f"{where}.{k}" if where else k) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x, f"{where}.{i}" if where else str(i)) for i, x in enumerate(v)]
        if isinstance(v, float) and not math.isfinite(v):
            reasons[where] = "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
            return None
        return v

    return walk(jsonable(obj), ""), reasons


def dumps_json(obj, *, sort_keys: bool = False) -> str:
    """Strict, indented JSON text of ``obj`` (see :func:`strict_json`), ending in a newline.

    A dict gets a ``"nonfinite"`` entry naming each value written as ``null`` and why; in any
    other top-level value they are ``null`` without a record.
    """
    import json

    clean, reasons = strict_json(obj)
    if reasons and isinstance(clean, dict):
        clean = {**clean, "nonfinite": {**(clean.get("nonfinite") or {}), **reasons}}
    return json.dumps(clean, indent=2, sort_keys=sort_keys, allow_nan=False) + "\n"


def atomic_write_json(path: str | os.PathLike, obj, *, sort_keys: bool = False) -> Path:
    """Write ``obj`` as strict, indented JSON atomically and durably (see :func:`dumps_json`)."""
    return atomic_write_text(path, dumps_json(obj, sort_keys=sort_keys))
