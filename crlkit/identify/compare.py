"""Side-by-side comparison of identifiable methods and VAE baselines (``crlkit identify --compare``).

Each row is one :func:`crlkit.identify.run_identify` run; the table (CSV and Markdown) puts every
score next to its random-rotation chance level, and a bar plot shows MCC against that level.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from crlkit.files import atomic_write_text, save_figure
from crlkit.identify.benchmark import make_setting, run_identify

#: columns of the comparison table, in order
COLUMNS = ("setting", "method", "latents", "segments", "mixing_layers", "steps", "seed", "mcc", "baseline_mcc",
           "mcc_minus_baseline", "r2_linear", "r2_nonlinear", "r2_content", "r2_style", "shd", "shd_empty_graph",
           "train_seconds")


@dataclass(frozen=True)
class CompareRow:
    """One run of the comparison: a label for its setting and the keywords of run_identify."""

    setting: str                                   # label shared by rows on the same data
    method: str                                    # registered model name
    options: dict = field(default_factory=dict)    # keyword arguments of run_identify


def default_rows(*, steps: int | None = None, latents: int | None = None, segments: int | None = None,
                 mixing_layers: int | None = None, quick: bool = False) -> list[CompareRow]:
    """The comparison of issue 6: iVAE and iFlow vs VAE vs beta-VAE on the segment data, contrastive with
    Laplace/L1 and Gaussian/L2 pairs, content/style, and the interventional method.

    ``quick`` shrinks every setting (fewer latents, layers and steps) for a demo-sized run.
    """
    seg = dict(latents=latents, segments=segments, mixing_layers=mixing_layers, steps=steps)
    if quick:
        seg = dict(latents=latents or 4, segments=segments or 20, mixing_layers=mixing_layers or 1,
                   steps=steps or 1500)
        pairs = dict(latents=5, mixing_layers=2, steps=steps or 1500, batch_size=256)
        views = dict(latents=6, mixing_layers=2, steps=steps or 1000, batch_size=256)
        inter = dict(latents=4, mixing_layers=1, steps=steps or 1000, batch_size=256)
    else:
        pairs = dict(steps=steps)
        views = dict(steps=steps)
        inter = dict(steps=steps)
    label = "segments"
    return [
        CompareRow(label, "ivae", seg),
        CompareRow(label, "iflow", seg),
        CompareRow(label, "vae", seg),
        CompareRow(label, "beta_vae", {**seg, "model_options": {"beta": 4.0}}),
        CompareRow("pairs (Laplace, L1)", "contrastive", {**pairs, "conditional": "laplace"}),
        CompareRow("pairs (Gaussian, L2)", "contrastive", {**pairs, "conditional": "gaussian"}),
        CompareRow("views (content/style)", "content_style", views),
        CompareRow("interventions", "interventional", inter),
    ]


def run_compare(out_dir, *, seed: int = 0, rows: list[CompareRow] | None = None, device: str = "cpu",
                log: Callable[[str], None] | None = None, **run_options) -> list[dict[str, Any]]:
    """Run every row (each in ``out_dir/runs/<i>_<method>``) and write ``comparison.csv``,
    ``comparison.md`` and ``comparison.png`` into ``out_dir``. Returns the table rows."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = rows if rows is not None else default_rows()
    table = []
    opts_of = [{k: v for k, v in {**row.options, **run_options}.items() if v is not None} for row in rows]
    steps_of = [_steps(row.method, opts) for row, opts in zip(rows, opts_of)]
    t0 = time.perf_counter()
    for i, (row, opts) in enumerate(zip(rows, opts_of)):
        if log:
            log(f"[{i + 1}/{len(rows)}] {row.setting}: {row.method}, {steps_of[i]} steps"
                + _time_left(time.perf_counter() - t0, sum(steps_of[:i]), sum(steps_of[i:])))
        res = run_identify(row.method, out_dir=out / "runs" / f"{i}_{row.method}", seed=seed, device=device, **opts)
        entry = {c: res.get(c) for c in COLUMNS if c not in ("setting", "mcc_minus_baseline")}
        entry["setting"] = row.setting
        if row.method == "contrastive":
            entry["method"] = f"contrastive ({res.get('conditional')})"
        entry["mcc_minus_baseline"] = res["mcc"] - res["baseline_mcc"]
        table.append({c: entry.get(c) for c in COLUMNS})
        if log:
            log(f"  mcc {res['mcc']:.3f} (rotation baseline {res['baseline_mcc']:.3f}), "
                f"r2_linear {res['r2_linear']:.3f}, {res['train_seconds']:.0f} s")
    write_table(table, out)
    plot_comparison(table, out / "comparison.png")
    return table


def _steps(method: str, options: dict[str, Any]) -> int:
    """Training steps of a row (its setting's default when not given)."""
    keys = ("latents", "segments", "mixing_layers", "steps")
    return make_setting(method, **{k: options.get(k) for k in keys}).steps


def _time_left(elapsed: float, steps_done: int, steps_left: int) -> str:
    """``", 3 min elapsed, about 5 min left"`` from the mean time per training step so far (rows
    differ in cost per step, so this is a rough guide); empty before the first row ends."""
    if steps_done <= 0:
        return ""
    left = elapsed / steps_done * steps_left
    return f"; {elapsed / 60:.1f} min elapsed, about {left / 60:.1f} min left"


def write_table(table: list[dict[str, Any]], out: Path) -> None:
    """``comparison.csv`` (pandas) and ``comparison.md`` (atomic writes); empty cells for n/a."""
    import pandas as pd

    df = pd.DataFrame(table, columns=list(COLUMNS))
    buf = io.StringIO()
    df.to_csv(buf, index=False, float_format="%.4f")
    atomic_write_text(out / "comparison.csv", buf.getvalue())
    atomic_write_text(out / "comparison.md", markdown_table(table) + "\n")


def markdown_table(table: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> str:
    """A GitHub Markdown table; columns that are empty in every row are dropped."""
    cols = [c for c in columns if any(r.get(c) is not None for r in table)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in table:
        cells = []
        for c in cols:
            v = r.get(c)
            cells.append("" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_comparison(table: list[dict[str, Any]], path: Path) -> Path:
    """Bars: MCC per run; black ticks: the random-rotation chance level of that run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['method']}\n{r['setting']}" for r in table]
    mcc = np.array([r["mcc"] for r in table], dtype=float)
    base = np.array([r["baseline_mcc"] for r in table], dtype=float)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(table)), 4.0))
    xs = np.arange(len(table))
    ax.bar(xs, mcc, color="tab:blue", label="MCC")
    ax.scatter(xs, base, marker="_", s=900, color="k", linewidths=2.5, label="random-rotation baseline", zorder=3)
    ax.set_xticks(xs, labels, fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("MCC (held out)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Identifiability: MCC against the chance level of an entangled (rotated) solution", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)
