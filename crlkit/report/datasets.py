"""Pages of the datasets: one page per dataset (samples, traversals, causal graph, factors)
and the compact gallery of the demo (one row per dataset, linking to its page).

:func:`write_dataset_page` is what ``crlkit data show NAME --out DIR`` writes as
``DIR/index.html``; the demo calls it for every registered dataset.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Callable

import numpy as np

from crlkit.data.show import traversal_factors
from crlkit.files import atomic_write_json
from crlkit.report import plots, style
from crlkit.report.html import figure_html, table_html, write_page


def is_image(ds) -> bool:
    return len(ds.observation_shape) == 3 and ds.observation_shape[0] in (1, 3)


def _edges_only(ds):
    """The graph restricted to nodes with an edge (isolated factors are listed, not drawn)."""
    a = np.asarray(ds.graph) != 0
    keep = np.nonzero(a.any(0) | a.any(1))[0]
    return a[np.ix_(keep, keep)], [ds.factor_names[i] for i in keep], len(a) - len(keep)


def dataset_figures(ds, out: Path, *, n: int = 32, seed: int = 0, steps: int = 8) -> dict[str, Path]:
    """Write ``samples.png``, ``traversals.png`` (when the dataset can be traversed), ``graph.png``
    (when it has a causal graph) and ``info.json`` under ``out``; returns their paths by key."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    factors, x = ds.sample(n, rng)
    written: dict[str, Path] = {}
    if is_image(ds):
        from crlkit.data.render import image_grid, save_png

        save_png(out / "samples.png", image_grid(np.asarray(x), ncols=min(8, n)), upscale=2)
        written["samples"] = out / "samples.png"
        if ds.factor_sizes is not None:
            base = ds.sample_factors(1, rng)[0]
            rows = [(name.replace("_", " "), ds.observations_from_factors(f, np.random.default_rng(0)))
                    for name, f in traversal_factors(ds, base, steps)]
            written["traversals"] = plots.image_rows(rows, out / "traversals.png", label_in=1.9, cell_in=0.8)
    else:
        xs = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        z = np.asarray(factors, dtype=np.float64).reshape(len(factors), -1)
        written["samples"] = plots.scatter_pairs(xs, [f"x{i + 1}" for i in range(xs.shape[1])], out / "samples.png",
                                                 color=z[:, 0], color_label=f"{ds.factor_names[0]} (first latent)",
                                                 max_dims=3)
        written["traversals"] = _vector_traversals(ds, z, out / "traversals.png", steps=steps)
    if getattr(ds, "graph", None) is not None and np.asarray(ds.graph).any():
        a, names, _ = _edges_only(ds)
        written["graph"] = plots.graph_plot(a, [str(s).replace("_", " ") for s in names], out / "graph.png")
    atomic_write_json(out / "info.json", ds.info())
    written["info"] = out / "info.json"
    return {k: v for k, v in written.items() if v is not None}


def _vector_traversals(ds, z: np.ndarray, path: Path, *, steps: int, dims: int = 4, max_latents: int = 5):
    """Each latent stepped between its 5% and 95% quantiles (others at their medians): the first
    observed coordinates along it. None when the dataset cannot render chosen latents."""
    lo, hi, med = np.quantile(z, 0.05, 0), np.quantile(z, 0.95, 0), np.median(z, 0)
    d = min(z.shape[1], max_latents)
    fig, axes = style.figure(2.1 * d + 0.6, 2.6, ncols=d, squeeze=False, sharey=True)
    for j in range(d):
        zz = np.repeat(med[None], max(steps, 5), axis=0)
        zz[:, j] = np.linspace(lo[j], hi[j], len(zz))
        try:
            x = np.asarray(ds.observations_from_factors(zz, np.random.default_rng(0)), dtype=np.float64)
        except Exception:  # noqa: BLE001 - a dataset that cannot render given latents: no traversal
            import matplotlib.pyplot as plt

            plt.close(fig)
            return None
        ax = axes[0][j]
        for k in range(min(dims, x.shape[1])):
            ax.plot(zz[:, j], x[:, k], marker=".", label=f"x{k + 1}")
        ax.set_xlabel(str(ds.factor_names[j]))
        ax.locator_params(nbins=3)
    axes[0][0].set_ylabel("observed value")
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    from crlkit.files import save_figure

    return save_figure(fig, path, dpi=style.DPI)


def _factor_rows(ds) -> list[dict]:
    sizes = ds.factor_sizes or [None] * len(ds.factor_names)
    graph = np.asarray(ds.graph) != 0 if getattr(ds, "graph", None) is not None else None
    rows = []
    for j, (name, size) in enumerate(zip(ds.factor_names, sizes)):
        parents = [ds.factor_names[i] for i in np.nonzero(graph[:, j])[0]] if graph is not None else []
        rows.append({"factor": str(name), "values": "continuous" if size is None else str(size),
                     "parents": ", ".join(map(str, parents)) or "none"})
    return rows


def _describe(ds) -> str:
    doc = " ".join((type(ds).__doc__ or "").split()).replace("``", "")
    return doc.split(". ")[0].rstrip(".") + "." if doc else ""


def write_dataset_page(ds, out, *, n: int = 32, seed: int = 0, steps: int = 8, home: str = "") -> dict[str, Path]:
    """Write ``out/index.html`` (with the figures of :func:`dataset_figures`) for dataset ``ds``;
    ``home`` links back to an overview page. Returns the paths written by key (``page`` too)."""
    out = Path(out)
    written = dataset_figures(ds, out, n=n, seed=seed, steps=steps)
    rel = {k: v.relative_to(out).as_posix() for k, v in written.items()}
    kind = "images" if is_image(ds) else "vectors"
    parts = [f"<p>{html.escape(_describe(ds))} Observations: {kind} of shape "
             f"{html.escape(str(tuple(ds.observation_shape)))}.</p>", table_html(_factor_rows(ds))]
    if "samples" in rel:
        parts.append(figure_html(rel["samples"], f"{n} samples" + ("" if is_image(ds) else
                                 " (observed coordinates; colour: the first latent)"), pixels=is_image(ds)))
    if "traversals" in rel:
        parts.append(figure_html(rel["traversals"], "Traversals: one factor varied per row, the others fixed"
                                 + (" (by intervention: its descendants follow)" if hasattr(ds, "intervene_factors")
                                    else "") if is_image(ds) else
                                 "Observed coordinates along each latent, the others at their medians.",
                                 pixels=is_image(ds)))
    if "graph" in rel:
        parts.append(figure_html(rel["graph"], "Causal graph over the factors (factors without an edge are "
                                               "independent and not drawn)."))
    parts.append(f'<p>Dataset info: <a href="{rel["info"]}">info.json</a>.</p>')
    name = getattr(ds, "name", type(ds).__name__)
    write_page(out / "index.html", f"Dataset: {name}", [{"id": "dataset", "title": name, "html": "\n".join(parts)}],
               subtitle=f"seed {seed}", home=home)
    written["page"] = out / "index.html"
    return written


def _thumbnail(ds, path: Path, *, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    factors, x = ds.sample(4 if is_image(ds) else 400, rng)
    if is_image(ds):
        return plots.image_strip(np.asarray(x), path)
    xs = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    fig, ax = style.figure(2.4, 1.6)
    ax.scatter(xs[:, 0], xs[:, 1], s=4, c=np.asarray(factors, dtype=np.float64).reshape(len(x), -1)[:, 0],
               cmap=style.CMAP, linewidths=0)
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.locator_params(nbins=3)
    from crlkit.files import save_figure

    return save_figure(fig, path, dpi=style.DPI)


def gallery(out, *, seed: int = 0, n: int = 16, steps: int = 6, log: Callable[[str], None] = print) -> str:
    """Write a page per registered dataset under ``out/data/<name>/`` and return the gallery's
    HTML: one row per dataset (name linking to its page, observations, factors, samples, graph)."""
    import time

    from crlkit.data import list_datasets, make_dataset

    out = Path(out)
    rows = []
    for name in list_datasets():
        t0 = time.perf_counter()
        try:
            ds = make_dataset(name)
        except Exception as e:  # noqa: BLE001 - a dataset that needs options is listed with why
            rows.append({"dataset": html.escape(name), "factors": html.escape(f"needs options: {e}"),
                         "samples": "", "graph": ""})
            continue
        d = out / "data" / name
        written = write_dataset_page(ds, d, n=n, seed=seed, steps=steps, home="../../index.html#datasets")
        thumb = _thumbnail(ds, d / "thumbnail.png", seed=seed)
        graph = ""
        if "graph" in written:
            a, names, isolated = _edges_only(ds)
            g = plots.graph_plot(a, [str(s).replace("_", " ") for s in names], d / "graph_small.png",
                                 width_in=2.9, height_in=2.0)
            graph = (f'<img src="{g.relative_to(out).as_posix()}" alt="{html.escape(name)} causal graph">'
                     + (f"<small>+ {isolated} independent factors</small>" if isolated else ""))
        sizes = ds.factor_sizes or [None] * len(ds.factor_names)
        factors = ", ".join(f"{f}" + (f" ({s})" if s else "") for f, s in zip(ds.factor_names, sizes))
        shape = " x ".join(map(str, ds.observation_shape))
        rows.append({"dataset": f'<a href="data/{name}/index.html">{html.escape(name)}</a><br>'
                                f'<small>{"image" if is_image(ds) else "vector"} {shape}</small>',
                     "factors": f'<div style="max-width:220px">{html.escape(factors)}</div>',
                     "samples": f'<img src="{thumb.relative_to(out).as_posix()}" alt="{html.escape(name)} samples">',
                     "graph": graph or "independent factors"})
        log(f"datasets: {name} in {time.perf_counter() - t0:.1f} s")
    cols = ["dataset", "factors", "samples", "graph"]
    return table_html(rows, columns=cols, raw=tuple(cols))
