"""Summaries of the shortcut bench's results file (``bench/results/shortcut.json``).

The file holds one row per (setting, method, selection rule, seed); see docs/shortcut.md for the
schema. Tables shown to a user (the demo page, bench/RESULTS_shortcut.md) are computed from it.
"""

from __future__ import annotations

import numpy as np


def bench_summary(doc: dict) -> list[dict]:
    """One row per (setting, method, selection rule): mean and minimum over seeds of the test
    worst-group accuracy, mean ``average`` (accuracy on the training distribution) and mean
    reversed accuracy, and the number of seeds."""
    rows = doc["rows"]
    keys = list(dict.fromkeys((r["setting"], r["method"], r["selection"]) for r in rows))
    out = []
    for setting, method, rule in keys:
        rr = [r for r in rows if (r["setting"], r["method"], r["selection"]) == (setting, method, rule)]
        wg = [r["worst_group"] for r in rr]
        out.append({"setting": setting, "method": method,
                    "selection": rule + (" (upper bound)" if rule == "oracle" else ""),
                    "worst-group (mean)": round(float(np.mean(wg)), 3),
                    "worst-group (min)": round(float(np.min(wg)), 3),
                    "average (mean)": round(float(np.mean([r["average"] for r in rr])), 3),
                    "reversed (mean)": round(float(np.mean([r["reversed_accuracy"] for r in rr])), 3),
                    "seeds": len(rr)})
    return out
