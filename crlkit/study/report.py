"""The study report, ``DIR/report/index.html``: progress, findings beside Locatello et al.'s,
every run per metric (strip plots), rank correlations between metrics, variance shares,
unsupervised model selection and, for identify grids, MCC against chance. Works on a partial
study (whatever runs are done)."""

from __future__ import annotations

import html
import time
from pathlib import Path

import jinja2
import numpy as np

from crlkit.study import analysis as A

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("crlkit.report", "templates"),
                          autoescape=jinja2.select_autoescape(["html"]))


def _strip_plot(df, metric: str, path: Path) -> None:
    """Every run's value of ``metric`` by method x hyperparameter setting (jittered points)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from crlkit.files import save_figure

    d = df[["model", "setting", metric]].dropna().sort_values(["model", "setting"])
    cells = list(dict.fromkeys(zip(d["model"], d["setting"])))
    models = list(dict.fromkeys(d["model"]))
    colors = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(cells) + 1.5), 3.2))
    rng = np.random.default_rng(0)
    for x, (m, s) in enumerate(cells):
        y = d[(d["model"] == m) & (d["setting"] == s)][metric].to_numpy(dtype=float)
        ax.scatter(x + rng.uniform(-0.15, 0.15, len(y)), y, s=14, color=colors(models.index(m) % 10),
                   label=m if s == next(c[1] for c in cells if c[0] == m) else None, alpha=0.8)
    ax.set_xticks(range(len(cells)))
    ax.set_xticklabels([s for _, s in cells], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel(metric)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    save_figure(fig, path)


def _heatmap(corr, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from crlkit.files import save_figure

    names = list(corr.columns)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(names), 0.8 + 0.5 * len(names)))
    im = ax.imshow(corr.to_numpy(dtype=float), vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=7)
    for i in range(len(names)):
        for j in range(len(names)):
            v = corr.iloc[i, j]
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6)
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    save_figure(fig, path)


def write_report(directory, *, n_boot: int = A.N_BOOT) -> Path:
    """Write ``directory/report/index.html`` (and its figures); returns its path."""
    from crlkit.report.html import figure_html, table_html, write_page

    directory = Path(directory)
    out = directory / "report"
    out.mkdir(parents=True, exist_ok=True)
    df = A.load(directory)
    d = A.done_runs(df)
    planned = df.attrs.get("planned", 0)
    n_failed = int((df["status"] == "failed").sum()) if len(df) else 0
    sections = []
    t = time.perf_counter()
    kind_identify = bool(len(d)) and "kind" in d and bool((d["kind"] == "identify").all())
    intro = (f"{len(d)} of {planned} planned runs are done ({n_failed} failed); "
             f"{d['model'].nunique() if len(d) else 0} methods, {d['seed'].nunique() if len(d) else 0} seeds. "
             "Intervals are 95% percentile bootstrap intervals over runs resampled within their method "
             f"({n_boot} resamples). Each sentence below is generated from the runs; the other column quotes "
             + ("what the identifiability theory of each method guarantees (docs/identify.md)." if kind_identify else
                "shared/REFERENCES.md. Untested here: the total correlation of sampled vs mean representations "
                "(finding 3) and downstream sample efficiency (finding 5)."))
    block = _ENV.get_template("study.html").render(
        intro=intro, findings=A.findings(df, n_boot=n_boot),
        reference="what the theory says" if kind_identify else "Locatello et al. (2019)")
    sections.append({"title": "Findings", "html": block, "seconds": time.perf_counter() - t})

    metrics = A.metrics_of(d)
    if metrics and len(d):
        t = time.perf_counter()
        figs = []
        for m in [m for m in metrics if d[m].nunique() > 1]:
            _strip_plot(d, m, out / f"strip_{m}.png")
            figs.append(figure_html(f"strip_{m}.png", f"{m}: every run, by method and hyperparameter setting"))
        sections.append({"title": "Every run, per metric", "html": "".join(figs), "seconds": time.perf_counter() - t})
        t = time.perf_counter()
        scored = [m for m in metrics if m != "final_loss" and d[m].nunique() > 1]
        if len(scored) >= 2 and len(d) >= 3:
            corr = A.spearman_matrix(d, scored)
            _heatmap(corr, out / "spearman.png")
            sections.append({"title": "Spearman rank correlation between metrics",
                             "html": figure_html("spearman.png", f"Spearman correlation over {len(d)} runs"),
                             "seconds": time.perf_counter() - t})
        t = time.perf_counter()
        sup = A.metrics_of(d, "supervised") or [m for m in scored]
        if d["model"].nunique() >= 1 and len(d) >= 3:
            rows = []
            for r in A.variance_table(d, sup, n_boot=n_boot):
                rows.append({"metric": r["metric"], "runs": r["runs"],
                             **{k: A.ci_text(r[k], pct=True) for k in ("method", "hyperparameter", "seed")}})
            sections.append({"title": "Share of variance: method, hyperparameter within method, seed",
                             "html": "<p>Sums of squares of each metric split between methods, between "
                                     "hyperparameter settings within a method and between seeds within a setting."
                                     "</p>" + table_html(rows), "seconds": time.perf_counter() - t})
        t = time.perf_counter()
        sel = A.selection_table(d, n_boot=n_boot)
        if sel:
            rows = [{"label-free score": r["score"], "supervised metric": r["target"],
                     "P(selection beats a random pick)": A.ci_text(r["p"])} for r in sel]
            sections.append({"title": "Unsupervised model selection",
                             "html": "<p>Within each method the run with the best label-free score is selected "
                                     "(lower is better for the total / Wasserstein correlations and mutual "
                                     "information, higher for UDR); the probability that its supervised score "
                                     "beats a run picked at random from the same method, averaged over methods "
                                     "(chance 0.50).</p>" + table_html(rows), "seconds": time.perf_counter() - t})
        ident = A.identify_table(d, n_boot=n_boot)
        if ident:
            rows = [{"method": r["method"], "setting": r["setting"], "seeds": r["seeds"],
                     "mean MCC": A.ci_text(r["mcc"]), "chance MCC (random rotation)": f"{r['chance']:.2f}",
                     "seeds above chance": f"{r['above_chance']}/{r['seeds']}"} for r in ident]
            sections.append({"title": "Identifiable methods: MCC against chance",
                             "html": "<p>Mean correlation coefficient of each method per setting across seeds, "
                                     "beside the MCC of a random rotation of the true latents (the chance level "
                                     "of an unidentified solution).</p>" + table_html(rows), "seconds": None})
    cols = ["run_id", "model", "setting", "seed", "status", "train_seconds"] + [m for m in metrics if m in df]
    sections.append({"title": "Runs", "html": table_html(df[cols].to_dict("records") if len(df) else []),
                     "seconds": None})
    name = html.escape(directory.name)
    return write_page(out / "index.html", f"Study {name}", sections,
                      subtitle=f"crlkit study report: {len(d)} runs done of {planned}")
