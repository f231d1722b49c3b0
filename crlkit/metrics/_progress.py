"""Progress of a slow score (BetaVAE, FactorVAE, DCI at full size) with the time left: a tqdm
bar on a terminal, else one line every :data:`INTERVAL` seconds and one at the end, on stderr.
Metrics take ``progress: bool = False``; ``crlkit evaluate`` turns it on unless ``--no-progress``.
"""

from __future__ import annotations

import sys
import time

from crlkit.timing import format_seconds

#: seconds between progress lines when stderr is not a terminal
INTERVAL = 30.0


class Progress:
    """``update(n)`` as work is done out of ``total`` ``unit``; ``close()`` at the end.

    ``enabled=False`` makes every call a no-op. ``mode``: ``"bar"``, ``"lines"`` or ``None``
    (a bar when ``stream`` is a terminal, lines otherwise). Lines read
    ``factor_vae: 1200/15000 votes (8%), 35 s elapsed, 6 min 42 s left``.
    """

    def __init__(self, desc: str, total: int, *, unit: str = "it", enabled: bool = True, mode: str | None = None,
                 interval: float | None = None, stream=None):
        self.desc, self.total, self.unit = desc, max(int(total), 1), unit
        self.enabled = bool(enabled)
        self.stream = stream if stream is not None else sys.stderr
        if mode is None:
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "lines"
        self.mode, self.interval = mode, float(INTERVAL if interval is None else interval)
        self.done = 0
        self.t0 = self.last = time.perf_counter()
        self.bar = None
        if self.enabled and self.mode == "bar":
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc=desc, unit=unit, dynamic_ncols=True, file=self.stream, leave=False)

    def update(self, n: int = 1) -> None:
        if not self.enabled:
            return
        self.done += int(n)
        if self.bar is not None:
            self.bar.update(int(n))
            return
        now = time.perf_counter()
        if now - self.last >= self.interval and self.done < self.total:
            self.last = now
            print(self.line(now), file=self.stream, flush=True)

    def line(self, now: float) -> str:
        spent = now - self.t0
        rate = self.done / spent if spent > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        return (f"{self.desc}: {self.done}/{self.total} {self.unit} ({100 * self.done / self.total:.0f}%), "
                f"{format_seconds(spent)} elapsed, {format_seconds(left)} left")

    def close(self) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.mode == "lines":
            print(f"{self.desc}: done in {format_seconds(time.perf_counter() - self.t0)}", file=self.stream, flush=True)
        self.enabled = False

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
