"""What ``crlkit data show NAME --out DIR`` writes: ``DIR/samples.png`` (a grid of samples; for
vector datasets a scatter matrix of the first observed dimensions coloured by the first latent),
``DIR/traversals.png`` (one factor varied per row across its range, the others fixed; a dataset
with an ``intervene_factors`` method is traversed by intervention, so descendants follow the
varied factor), ``DIR/graph.png`` when the dataset has a causal graph, and ``DIR/info.json`` =
``GroundTruthData.info()``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from crlkit.errors import CrlkitError
from crlkit.files import atomic_write_json, save_figure

TRAVERSAL_STEPS = 10  # values per traversal row


def dataset_from_assignments(name: str, assignments: list[str] | None, *, flag: str = "--data-set"):
    """``make_dataset(name, **options)`` from ``key=value`` strings, coerced to the option types."""
    from crlkit.config import parse_assignments
    from crlkit.data import dataset_from_options

    return dataset_from_options(name, parse_assignments(assignments, flag=flag))[0]


def show_dataset(ds, out: Path, *, n: int = 64, seed: int = 0, steps: int = TRAVERSAL_STEPS) -> dict:
    """Write the sample grid, traversals, graph (if any) and info.json of ``ds`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    factors, x = ds.sample(n, rng)
    written: dict[str, Any] = {"notes": []}
    if is_image(ds):
        save_sample_grid(x, out / "samples.png")
        written["samples"] = out / "samples.png"
        if ds.factor_sizes is not None:  # image worlds over continuous latents have no factor grid to step
            save_traversals(ds, out / "traversals.png", rng=rng, steps=steps)
            written["traversals"] = out / "traversals.png"
    else:
        save_scatter_matrix(factors, x, out / "samples.png", title=title(ds))
        written["samples"] = out / "samples.png"
        path = save_vector_traversals(ds, factors, out / "traversals.png", rng=rng, steps=steps)
        if path is None:
            written["notes"].append(f"{ds.name}: traversals skipped (needs continuous latents "
                                    "rendered by observations_from_factors)")
        else:
            written["traversals"] = path
    if getattr(ds, "graph", None) is not None:
        save_graph(ds.graph, ds.factor_names, out / "graph.png", title=f"{ds.name}: causal graph")
        written["graph"] = out / "graph.png"
    atomic_write_json(out / "info.json", ds.info())
    written["info"] = out / "info.json"
    return written


def is_image(ds) -> bool:
    return len(ds.observation_shape) == 3 and ds.observation_shape[0] in (1, 3)


def title(ds) -> str:
    if ds.factor_sizes is None:
        return f"{ds.name}: latents " + ", ".join(ds.factor_names)
    return f"{ds.name}: " + ", ".join(f"{a} ({b})" for a, b in zip(ds.factor_names, ds.factor_sizes))


def _figure(w: float, h: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.figure(figsize=(w, h))


def save_sample_grid(x, path: Path, *, ncols: int | None = None) -> None:
    """A grid of ``(n, C, H, W)`` images in [0, 1], written as PNG (upscaled 2x)."""
    from crlkit.data.render import image_grid, save_png

    save_png(path, image_grid(np.asarray(x), ncols=ncols), upscale=2)


def traversal_factors(ds, base: np.ndarray, steps: int) -> list[tuple[str, np.ndarray]]:
    """Per factor, ``steps`` factor rows varying that factor across its range from ``base``.

    A dataset with ``intervene_factors(factors, {name: indices})`` is traversed by
    intervention, so the varied factor's descendants follow it; otherwise only the varied
    column changes.
    """
    rows = []
    for j, (name, size) in enumerate(zip(ds.factor_names, ds.factor_sizes)):
        values = np.unique(np.linspace(0, size - 1, min(steps, size)).round().astype(np.int64))
        f = np.repeat(base[None], len(values), axis=0)
        if hasattr(ds, "intervene_factors"):
            f = ds.intervene_factors(f, {name: values})
        else:
            f[:, j] = values
        rows.append((name, f))
    return rows


def save_traversals(ds, path: Path, *, rng, steps: int = TRAVERSAL_STEPS) -> None:
    """One row per factor: images with that factor stepped across its range, others fixed."""
    from crlkit.data.render import image_grid

    base = ds.sample_factors(1, rng)[0]
    rows = traversal_factors(ds, base, steps)
    fig = _figure(1.0 + 0.8 * steps, 0.85 * len(rows) + 0.4)
    for i, (name, f) in enumerate(rows):
        x = ds.observations_from_factors(f, np.random.default_rng(0))
        ax = fig.add_subplot(len(rows), 1, i + 1)
        ax.imshow(image_grid(x, ncols=steps, pad=1), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(f"{ds.name}: traversals (one factor per row; others fixed at {base.tolist()})", fontsize=9)
    save_figure(fig, path, dpi=90)


def save_scatter_matrix(z, x, path: Path, *, title: str = "", dims: int = 3) -> None:
    """Pairwise scatter plots of the first ``dims`` observed dimensions, coloured by z_0."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    k = min(dims, x.shape[1])
    color = np.asarray(z, dtype=np.float64).reshape(len(z), -1)[:, 0] if z is not None else None
    fig = _figure(2.0 * k, 2.0 * k)
    for a in range(k):
        for b in range(k):
            ax = fig.add_subplot(k, k, a * k + b + 1)
            if a == b:
                ax.hist(x[:, a], bins=20, color="0.5")
            else:
                ax.scatter(x[:, b], x[:, a], c=color, s=4, cmap="viridis")
            ax.set_xticks([])
            ax.set_yticks([])
            if b == 0:
                ax.set_ylabel(f"x{a}", fontsize=8)
            if a == k - 1:
                ax.set_xlabel(f"x{b}", fontsize=8)
    if title:
        fig.suptitle(title + " (colour: first latent)", fontsize=9)
    save_figure(fig, path, dpi=90)


def save_vector_traversals(ds, z, path: Path, *, rng, steps: int = TRAVERSAL_STEPS, dims: int = 4,
                           max_latents: int = 6):
    """For continuous latents: each latent (the first ``max_latents``) stepped between its 5%
    and 95% sample quantiles, others at their medians; plots the first observed dimensions."""
    if ds.factor_sizes is not None:
        return None
    z = np.asarray(z, dtype=np.float64)
    lo, hi = np.quantile(z, 0.05, axis=0), np.quantile(z, 0.95, axis=0)
    med = np.median(z, axis=0)
    d = min(z.shape[1], max_latents)
    fig = _figure(2.2 * d, 2.2)
    for j in range(d):
        zz = np.repeat(med[None], steps, axis=0)
        zz[:, j] = np.linspace(lo[j], hi[j], steps)
        try:
            x = np.asarray(ds.observations_from_factors(zz, np.random.default_rng(0)))
        except (NotImplementedError, CrlkitError):
            return None
        ax = fig.add_subplot(1, d, j + 1)
        for k in range(min(dims, x.shape[1])):
            ax.plot(zz[:, j], x[:, k], marker=".", label=f"x{k}")
        ax.set_xlabel(ds.factor_names[j], fontsize=8)
        ax.tick_params(labelsize=6)
    fig.axes[0].legend(fontsize=6)
    fig.suptitle(f"{ds.name}: observed dims along each latent (others at their medians)", fontsize=9)
    save_figure(fig, path, dpi=90)
    return path


def save_graph(adjacency, names, path: Path, *, title: str = "") -> None:
    """Draw a DAG (``A[i, j] != 0`` iff i -> j) with nodes on a circle, roots on top."""
    from matplotlib.patches import FancyArrowPatch

    a = np.asarray(adjacency) != 0
    k = len(names)
    # depth = longest path from a root; nodes of one depth on one row
    depth = np.zeros(k, int)
    for _ in range(k):
        for i, j in zip(*np.nonzero(a)):
            depth[j] = max(depth[j], depth[i] + 1)
    pos = {}
    for dpt in range(depth.max() + 1):
        members = np.nonzero(depth == dpt)[0]
        for r, i in enumerate(members):
            pos[i] = ((r + 0.5) / len(members), 1.0 - dpt / max(1, depth.max()))
    fig = _figure(max(3.0, 1.6 * max(np.bincount(depth))), 1.0 + 1.0 * (depth.max() + 1))
    ax = fig.add_axes([0.02, 0.02, 0.96, 0.86])
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.25, 1.25)
    ax.axis("off")
    for i, j in zip(*np.nonzero(a)):
        ax.add_patch(FancyArrowPatch(pos[i], pos[j], arrowstyle="-|>", mutation_scale=12,
                                     shrinkA=14, shrinkB=14, color="0.3",
                                     connectionstyle="arc3,rad=0.08" if depth[j] == depth[i] else "arc3"))
    for i in range(k):
        ax.annotate(str(names[i]), pos[i], ha="center", va="center", fontsize=8,
                    bbox=dict(boxstyle="round,pad=0.3", fc="#e8f0fe", ec="#4a6fa5"))
    if title:
        ax.set_title(title, fontsize=9)
    save_figure(fig, path, dpi=90)
