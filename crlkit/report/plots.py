"""The figures of crlkit's pages, drawn in one style (:mod:`crlkit.report.style`): labelled
axes, units, the Okabe-Ito palette, text no smaller than 10 pt at 100 dpi.

Every function takes arrays (or plain dicts) and a path, writes a PNG atomically and returns
the path; none trains or samples anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from crlkit.files import save_figure
from crlkit.report import style


def _save(fig, path) -> Path:
    return save_figure(fig, path, dpi=style.DPI)


def _to_hwc(img) -> np.ndarray:
    img = np.asarray(img, dtype=np.float32)
    if img.ndim == 3 and img.shape[0] in (1, 3):
        img = img.transpose(1, 2, 0)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    return np.clip(img, 0.0, 1.0)


# --------------------------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------------------------
def image_rows(rows: Sequence[tuple[str, np.ndarray]], path, *, titles: Sequence[Sequence[str]] | None = None,
               title: str = "", cell_in: float = 0.95, label_in: float = 2.0, title_colors=None) -> Path:
    """A grid of images: one row per ``(label, images (n, C, H, W))``, the label on the left;
    ``titles[r][c]`` (optional) above each image, coloured by ``title_colors[r][c]``."""
    plt = style.pyplot()
    n_rows = len(rows)
    n_cols = max(len(imgs) for _, imgs in rows)
    cell_in = min(cell_in, (style.MAX_FIGURE_IN - label_in) / n_cols)
    extra = 0.3 if titles else 0.0
    fig, axes = plt.subplots(n_rows, n_cols, squeeze=False,
                             figsize=(label_in + cell_in * n_cols, (cell_in + extra) * n_rows + (0.45 if title else 0.1)))
    for r, (label, imgs) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():  # a thin frame separates images with white backgrounds
                s.set_visible(c < len(imgs))
                s.set_color("#BBBBBB")
                s.set_linewidth(0.8)
            if c < len(imgs):
                ax.imshow(_to_hwc(imgs[c]), interpolation="nearest", cmap="gray", vmin=0, vmax=1)
                if titles:
                    color = title_colors[r][c] if title_colors else "black"
                    ax.set_title(titles[r][c], fontsize=style.SMALL_PT, color=color, pad=2)
        axes[r][0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=style.SMALL_PT, labelpad=6)
    if title:
        fig.suptitle(title)
    fig.subplots_adjust(left=label_in / (label_in + cell_in * n_cols), right=0.995, bottom=0.01,
                        top=1 - (0.45 if title else 0.1) / fig.get_figheight(), wspace=0.05,
                        hspace=0.35 if titles else 0.08)
    return _save(fig, path)


def image_strip(images: np.ndarray, path, *, upscale: int = 1, pad: int = 2) -> Path:
    """A single row of images (no text): a thumbnail."""
    from crlkit.data.render import image_grid, save_png

    save_png(path, image_grid(np.asarray(images), ncols=len(images), pad=pad), upscale=upscale)
    return Path(path)


# --------------------------------------------------------------------------------------------
# graphs
# --------------------------------------------------------------------------------------------
def layered_positions(adjacency: np.ndarray) -> dict[int, tuple[float, float]]:
    """Nodes on rows by depth (longest path from a root), roots on top, in [0, 1]^2."""
    a = np.asarray(adjacency) != 0
    k = len(a)
    depth = np.zeros(k, int)
    for _ in range(k):
        for i, j in zip(*np.nonzero(a)):
            depth[j] = max(depth[j], depth[i] + 1)
    pos = {}
    for d in range(depth.max() + 1 if k else 0):
        members = np.nonzero(depth == d)[0]
        for r, i in enumerate(members):
            pos[int(i)] = ((r + 0.5) / len(members), 1.0 - d / max(1, depth.max()))
    return pos


def graph_plot(adjacency, names: Sequence[str], path, *, title: str = "", positions=None, node_colors=None,
               edge_labels: dict | None = None, width_in: float | None = None, height_in: float | None = None,
               dashed: Sequence[tuple[int, int]] = (), legend: Sequence[tuple[str, str]] = ()) -> Path:
    """Draw a DAG (``A[i, j] != 0`` iff i -> j): node boxes with their names, arrows between.

    ``positions``: ``{node: (x, y)}`` in [0, 1]^2 (default: layered by depth); ``node_colors``:
    one face colour per node; ``dashed``: edges drawn dashed (e.g. unobserved confounding);
    ``legend``: ``(colour, label)`` pairs explaining the node colours.
    """
    from matplotlib.patches import FancyArrowPatch, Patch

    a = np.asarray(adjacency) != 0
    k = len(names)
    pos = positions or layered_positions(a)
    levels = sorted({round(p[1], 3) for p in pos.values()})
    per_level = max(sum(1 for p in pos.values() if round(p[1], 3) == lv) for lv in levels) if levels else 1
    w = width_in or min(style.MAX_FIGURE_IN, max(4.0, 2.1 * per_level))
    h = height_in or (0.9 + 1.05 * len(levels) + (0.6 if legend else 0))
    plt = style.pyplot()
    fig = plt.figure(figsize=(w, h))
    leg_in = 0.6 if legend else 0.0
    ax = fig.add_axes([0.01, 0.01 + leg_in / h, 0.98, 0.98 - (0.45 / h if title else 0) - leg_in / h])
    ax.set_xlim(-0.08, 1.08)
    ax.set_ylim(-0.22, 1.22)
    ax.axis("off")
    colors = node_colors or ["#DCEBF7"] * k
    for i, j in zip(*np.nonzero(a)):
        same = abs(pos[i][1] - pos[j][1]) < 1e-6
        arrow = FancyArrowPatch(pos[i], pos[j], arrowstyle="-|>", mutation_scale=16, shrinkA=20, shrinkB=20,
                                color="#333333", lw=1.4, linestyle="--" if (i, j) in set(map(tuple, dashed)) else "-",
                                connectionstyle="arc3,rad=0.15" if same else "arc3")
        ax.add_patch(arrow)
        if edge_labels and (i, j) in edge_labels:
            mx, my = (pos[i][0] + pos[j][0]) / 2, (pos[i][1] + pos[j][1]) / 2
            ax.text(mx, my, edge_labels[(i, j)], fontsize=style.SMALL_PT, ha="center", va="center",
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none"))
    for i in range(k):
        ax.annotate(str(names[i]), pos[i], ha="center", va="center", fontsize=style.SMALL_PT,
                    bbox=dict(boxstyle="round,pad=0.35", fc=colors[i], ec="#0072B2", lw=1.2))
    if title:
        fig.suptitle(title, y=1 - 0.08 / h, va="top")
    if legend:
        fig.legend(handles=[Patch(fc=c, ec="#0072B2", label=lab) for c, lab in legend], loc="lower center",
                   ncol=(len(legend) + 1) // 2, frameon=False, fontsize=style.SMALL_PT)
    return _save(fig, path)


# --------------------------------------------------------------------------------------------
# numbers
# --------------------------------------------------------------------------------------------
def grouped_bars(rows: Sequence[dict], keys: Sequence[str], path, *, label_key: str = "method",
                 key_labels: dict | None = None, title: str = "", ylabel: str = "", ylim=(0, 1.05),
                 chance: float | None = None, chance_label: str = "chance") -> Path:
    """Grouped bars: one group per row, one bar per key (a fraction in [0, 1] by default)."""
    keys = [k for k in keys if any(k in r for r in rows)]
    n = len(rows)
    fig, ax = style.figure(min(style.MAX_FIGURE_IN, 3.6 + 1.8 * n), 3.9)  # room for the value labels
    w = 0.8 / max(1, len(keys))
    xs = np.arange(n)
    for i, k in enumerate(keys):
        vals = [float(r.get(k, np.nan)) if r.get(k) is not None else np.nan for r in rows]
        bars = ax.bar(xs + (i - (len(keys) - 1) / 2) * w, vals, w,
                      label=(key_labels or {}).get(k, k.replace("_", " ")), color=style.CYCLE[i % len(style.CYCLE)])
        ax.bar_label(bars, fmt="%.2f", fontsize=style.SMALL_PT, padding=2)  # a zero bar still shows its value
    if chance is not None:
        ax.axhline(chance, color=style.NEUTRAL, lw=1.0, ls=":", label=chance_label)
    ax.set_xticks(xs, [str(r.get(label_key, "")) for r in rows])
    ax.set_ylim(*ylim)
    ax.set_ylabel(ylabel)
    ax.set_xlabel(label_key)
    if title:
        ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return _save(fig, path)


def mcc_against_chance(rows: Sequence[dict], path, *, title: str = "") -> Path:
    """Horizontal bars of MCC per run with the random-rotation chance level as a tick."""
    n = len(rows)
    fig, ax = style.figure(8.6, 0.9 + 0.55 * n)
    ys = np.arange(n)[::-1]
    mcc = [float(r["mcc"]) for r in rows]
    base = [float(r["baseline_mcc"]) for r in rows]
    ax.barh(ys, mcc, height=0.6, color=[style.GOOD if m > b else style.BAD for m, b in zip(mcc, base)],
            label="MCC of the learned latents")
    ax.scatter(base, ys, marker="|", s=500, color="black", linewidths=2.5, zorder=3,
               label="chance: MCC of a random rotation")
    ax.set_yticks(ys, [str(r["label"]) for r in rows])
    ax.set_xlim(0, 1.0)
    ax.set_xlabel("MCC, mean correlation coefficient (held out)")
    if title:
        ax.set_title(title)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0 if not title else 1.12), ncol=2, frameon=False)
    return _save(fig, path)


def misspecify_bars(summary: Sequence[dict], path, *, title: str = "") -> Path:
    """Each identifiable method with its assumption met and with each break, one bar per
    (method, break): mean MCC over seeds with the seed range as a whisker, the random-rotation
    chance level as a tick, and on every break's row a hollow diamond at the same method's "met"
    MCC. The met bars are blue; a break's bar is green if it still beats chance, vermillion if not.
    ``summary`` rows are :func:`crlkit.identify.misspecify.summarize`'s (None or NaN for missing)."""
    def num(v):
        return float("nan") if v is None else float(v)

    n = len(summary)
    fig, ax = style.figure(8.6, 1.2 + 0.36 * n)
    ys = np.arange(n)[::-1]
    mean = np.array([num(r.get("mcc_mean")) for r in summary])
    lo = np.array([num(r.get("mcc_min")) for r in summary])
    hi = np.array([num(r.get("mcc_max")) for r in summary])
    chance = np.array([num(r.get("chance_mean")) for r in summary])
    met = np.array([num(r.get("met_mcc_mean")) for r in summary])
    is_met = np.array([r.get("break") == "met" for r in summary])
    colors = [style.OKABE_ITO["blue"] if m else (style.GOOD if v > c else style.BAD)
              for m, v, c in zip(is_met, mean, chance)]
    ax.barh(ys, np.nan_to_num(mean), height=0.62, color=colors)
    err = np.vstack([np.nan_to_num(mean - lo), np.nan_to_num(hi - mean)])
    ax.errorbar(np.nan_to_num(mean), ys, xerr=err, fmt="none", ecolor="#333333", elinewidth=1, capsize=2)
    ax.scatter(chance, ys, marker="|", s=260, color="black", linewidths=2.2, zorder=3,
               label="chance: MCC of a random rotation")
    ax.scatter(met[~is_met], ys[~is_met], marker="D", s=36, facecolors="none", edgecolors=style.OKABE_ITO["blue"],
               linewidths=1.5, zorder=4, label="same method, assumption met")
    labels = [f"{r.get('method')}: {r.get('break')}" if r.get("break") == "met" else str(r.get("break"))
              for r in summary]
    ax.set_yticks(ys, labels)
    for t, m in zip(ax.get_yticklabels(), is_met):
        if m:
            t.set_fontweight("bold")
    for i in range(1, n):  # a thin line between methods
        if summary[i].get("method") != summary[i - 1].get("method"):
            ax.axhline(ys[i] + 0.5, color="#bbbbbb", lw=0.8)
    ax.set_xlim(0, 1.03)
    ax.set_ylim(-0.6, n - 0.4)
    ax.set_xlabel("MCC, held out (bar: mean over seeds; whisker: seed range)")
    if title:
        ax.set_title(title)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0 if not title else 1.06), ncol=2, frameon=False)
    return _save(fig, path)


def scatter_pairs(values: np.ndarray, names: Sequence[str], path, *, color=None, color_label: str = "",
                  title: str = "", max_dims: int = 4, unit: str = "") -> Path:
    """Pairwise scatter plots of the first ``max_dims`` columns (histograms on the diagonal)."""
    v = np.asarray(values, dtype=np.float64)
    k = min(max_dims, v.shape[1])
    fig, axes = style.figure(min(style.MAX_FIGURE_IN, 1.9 * k + 1.4), 1.75 * k + 0.5, nrows=k, ncols=k,
                             squeeze=False)
    sc = None
    for a in range(k):
        for b in range(k):
            ax = axes[a][b]
            if a == b:
                ax.hist(v[:, a], bins=25, color=style.NEUTRAL)
                ax.set_yticks([])
            else:
                sc = ax.scatter(v[:, b], v[:, a], c=color if color is not None else style.CYCLE[0], s=5,
                                cmap=style.CMAP, linewidths=0)
            ax.locator_params(nbins=3)
            if b == 0 and a != 0:
                ax.set_ylabel(f"{names[a]}{unit}")
            if a == k - 1:
                ax.set_xlabel(f"{names[b]}{unit}")
            if a != k - 1:
                ax.set_xticklabels([])
            if b != 0:
                ax.set_yticklabels([])
    if color is not None and sc is not None:
        fig.colorbar(sc, ax=axes, label=color_label, shrink=0.8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def impossibility_figure(z: np.ndarray, z_rot: np.ndarray, path, *, mcc: tuple[float, float, float],
                         elbo: tuple[float, float, float]) -> Path:
    """Latents before / after the measure-preserving map f, their marginals, and the MCCs."""
    fig, ax = style.figure(10.4, 3.5, ncols=4)
    colour = z[:, 0]
    for axis, data, t in ((ax[0], z, "true latents z"), (ax[1], z_rot, "entangled latents f(z)")):
        axis.scatter(data[:, 0], data[:, 1], c=colour, s=3, cmap=style.CMAP, linewidths=0)
        axis.set_xlabel("latent 1")
        axis.set_ylabel("latent 2")
        axis.set_title(t)
        axis.locator_params(nbins=4)
    bins = np.linspace(min(z[:, 0].min(), z_rot[:, 0].min()), max(z[:, 0].max(), z_rot[:, 0].max()), 40)
    ax[2].hist(z[:, 0], bins=bins, alpha=0.6, density=True, label="z, latent 1", color=style.CYCLE[0])
    ax[2].hist(z_rot[:, 0], bins=bins, alpha=0.6, density=True, label="f(z), latent 1", color=style.CYCLE[1])
    ax[2].set_xlabel("value")
    ax[2].set_ylabel("density")
    ax[2].set_title("same marginals")
    ax[2].set_ylim(0, ax[2].get_ylim()[1] * 1.45)  # room for the legend above the bars
    ax[2].legend(loc="upper center", frameon=False)
    names = ["true", "entangled", "chance"]
    ax[3].bar(names, mcc, color=[style.GOOD, style.BAD, style.NEUTRAL])
    ax[3].set_ylim(0, 1.05)
    ax[3].set_ylabel("MCC")
    ax[3].set_title(f"ELBO {elbo[0]:.2f} vs {elbo[1]:.2f}\n(s.e. {elbo[2]:.2f} nats)")
    return _save(fig, path)


def loss_curves(df, terms: Sequence[str], path, *, xlabel: str = "training step", ylabel: str = "nats per image"
                ) -> Path:
    """One panel per loss term: the raw values (faint) and a 25-step running mean."""
    terms = [t for t in terms if t in df]
    fig, axes = style.figure(4.0 * len(terms) + 0.6, 3.0, ncols=len(terms), squeeze=False)
    for ax, term in zip(axes[0], terms):
        ax.plot(df["step"], df[term], alpha=0.3, lw=0.8, color=style.CYCLE[0])
        ax.plot(df["step"], df[term].rolling(25, min_periods=1).mean(), lw=1.8, color=style.CYCLE[0])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{term} ({ylabel})")
    return _save(fig, path)
