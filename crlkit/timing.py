"""Durations as people read them, for progress lines (training, slow metrics, the demo)."""

from __future__ import annotations

import math


def format_seconds(s: float) -> str:
    """``"42 s"``, ``"3 min 5 s"``, ``"2 h 10 min"`` (``"?"`` when not finite)."""
    if not math.isfinite(s):
        return "?"
    s = int(round(s))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"
