"""What happens when an identifiable method's assumptions break, one at a time.

Each identifiable method runs on its own setting (:func:`crlkit.identify.benchmark.make_setting`)
with the assumption met, and then on data that breaks exactly one of the assumptions its
contract names (:mod:`crlkit.contracts`):

=============== ===================================================================================
break           what changes in the data (everything else as in the method's setting)
=============== ===================================================================================
met             nothing: the contract holds
few_segments    u takes n values, fewer than the 2n + 1 iVAE / iFlow need
gaussian_pairs  contrastive pairs from a Gaussian conditional; the model keeps its L1 (Laplace) similarity
not_injective   ``synthetic_folded``: the first latent enters the mixing only through |z0|
obs_noise       Gaussian noise on x of std 0.5 x the mean per-dimension std of the noise-free x
dependent       latents on an Erdos-Renyi graph (linear mechanisms, standardised), expected degree 2
soft            single-node shift interventions (the mechanism is kept) instead of perfect ones
=============== ===================================================================================

Every run goes through :func:`~crlkit.identify.benchmark.run_identify` with
``allow_mismatch=True``, so its results carry the contract check that names the broken
requirement. The table reports MCC and the random-rotation chance level per (method, break, seed),
and each break beside the same method's "met" row on the same seeds.

>>> from crlkit.identify.misspecify import run_misspecify
>>> table = run_misspecify("runs/misspecify", methods=["ivae"], seeds=[0], steps_scale=0.1)
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from crlkit.errors import CrlkitError
from crlkit.files import atomic_write_text
from crlkit.registry import unknown_choice

#: The identifiable methods and the breaks their contracts name (see the module docstring).
BREAKS: dict[str, tuple[str, ...]] = {
    "ivae": ("met", "few_segments", "not_injective", "obs_noise", "dependent"),
    "iflow": ("met", "few_segments", "not_injective", "obs_noise", "dependent"),
    "contrastive": ("met", "gaussian_pairs", "not_injective", "obs_noise", "dependent"),
    "content_style": ("met", "not_injective", "obs_noise"),
    "interventional": ("met", "soft", "not_injective", "obs_noise"),
}

#: Observation noise, as a share of the mean per-dimension std of the noise-free observations.
OBS_NOISE_SHARE = 0.5


def _noise_std(method: str, seed: int, setting_kwargs: dict) -> float:
    """``OBS_NOISE_SHARE`` x the mean per-dimension std of noise-free x in ``method``'s setting."""
    from crlkit.data import make_dataset
    from crlkit.identify.benchmark import make_setting

    s = make_setting(method, seed=seed, **setting_kwargs)
    ds = make_dataset("synthetic", **s.data)
    _, x = ds.sample(4000, np.random.default_rng(seed))
    return float(OBS_NOISE_SHARE * np.asarray(x).std(axis=0).mean())


def break_options(method: str, brk: str, *, seed: int, setting_kwargs: dict | None = None) -> dict[str, Any]:
    """The :func:`run_identify` keyword arguments that apply break ``brk`` to ``method``'s setting."""
    setting_kwargs = dict(setting_kwargs or {})
    if brk not in BREAKS.get(method, ()):
        raise CrlkitError(unknown_choice(f"break for {method}", brk, BREAKS.get(method, ())))
    data = dict(setting_kwargs.pop("data_options", None) or {})
    out: dict[str, Any] = {}
    if brk == "few_segments":
        out["segments"] = int(setting_kwargs.get("latents") or 5)
    elif brk == "gaussian_pairs":
        out["sampler_options"] = {"conditional": "gaussian"}
    elif brk == "not_injective":
        out["dataset"] = "synthetic_folded"
    elif brk == "obs_noise":
        data["obs_noise"] = _noise_std(method, seed, {**setting_kwargs, "data_options": data})
    elif brk == "dependent":
        data.update(graph="er", expected_degree=2.0, mechanism="linear", standardize=True)
    elif brk == "soft":
        out["sampler_options"] = {"intervention": "shift"}
    if data:
        out["data_options"] = data
    return out


def run_misspecify(out_dir, *, methods=None, seeds=(0, 1, 2), steps: dict | None = None,
                   steps_scale: float | None = None, batch_size: int | None = None,
                   latents: int | None = None, mixing_layers: int | None = None,
                   eval_samples: int = 2000, nonlinear_max_train: int = 300, threads: int = 1,
                   log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Run every (method, break, seed) and write ``OUT/misspecify.{csv,md,png}``.

    Parameters
    ----------
    methods : list of str, optional
        Methods of :data:`BREAKS` (default: all).
    seeds : sequence of int
        Seeds of data, mixing and training; each break and the "met" row share them.
    steps : dict, optional
        Training steps per method (default: the method's setting, times ``steps_scale``).
    steps_scale : float, optional
        Multiplies each method's default steps (for CPU-sized runs).
    batch_size : int, optional
        Replaces every method's batch size.
    latents, mixing_layers : int, optional
        Replace every method's number of latents / mixing layers.

    Returns
    -------
    list of dict
        One row per run: method, break, seed, mcc, baseline_mcc, mcc_minus_baseline, the contract's
        mismatch (empty for "met"), steps, train_seconds, and for content_style the nonlinear R² of
        the content and style blocks from the code (``r2_content`` high and ``r2_style`` low is its
        guarantee; its MCC is against the content block only). Runs that fail (diverge) are kept with
        ``mcc`` NaN and the error.
    """
    from crlkit.identify.benchmark import make_setting, run_identify

    methods = list(methods or BREAKS)
    for m in methods:
        if m not in BREAKS:
            raise CrlkitError(unknown_choice("method", m, BREAKS))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for m in methods:
        n_steps = (steps or {}).get(m)
        if n_steps is None and steps_scale is not None:
            n_steps = max(50, int(round(make_setting(m).steps * steps_scale)))
        for brk in BREAKS[m]:
            for seed in seeds:
                base = {"latents": latents, "mixing_layers": mixing_layers}
                kw: dict[str, Any] = {"steps": n_steps, "batch_size": batch_size, **base}
                kw.update(break_options(m, brk, seed=seed, setting_kwargs=base))
                run_dir = out / "runs" / f"{m}_{brk}_s{seed}"
                row = {"method": m, "break": brk, "seed": seed}
                try:
                    res = run_identify(m, out_dir=run_dir, seed=seed, restarts=1, eval_samples=eval_samples,
                                       nonlinear_max_train=nonlinear_max_train, threads=threads,
                                       allow_mismatch=True, progress=False, **kw)
                    mism = res["contract"]["mismatches"]
                    row.update(mcc=res["mcc"], baseline_mcc=res["baseline_mcc"],
                               mcc_minus_baseline=res["mcc"] - res["baseline_mcc"],
                               mismatch=mism[0]["requirement"] if mism else "", steps=res["steps"],
                               train_seconds=res["train_seconds"], error="",
                               r2_content=res.get("r2_content", float("nan")), r2_style=res.get("r2_style", float("nan")))
                except CrlkitError as e:  # a diverged run is a result too
                    row.update(mcc=float("nan"), baseline_mcc=float("nan"), mcc_minus_baseline=float("nan"),
                               mismatch="", steps=n_steps, train_seconds=float("nan"), error=str(e)[:200],
                               r2_content=float("nan"), r2_style=float("nan"))
                rows.append(row)
                if log:
                    log(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}))
                write_outputs(rows, out)
    return rows


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and spread over seeds per (method, break), with the same method's "met" mean beside it."""
    keys = list(dict.fromkeys((r["method"], r["break"]) for r in rows))
    met = {}
    out = []
    for m, b in keys:
        rs = [r for r in rows if r["method"] == m and r["break"] == b]
        mcc = np.array([r["mcc"] for r in rs], dtype=float)
        base = np.array([r["baseline_mcc"] for r in rs], dtype=float)
        row = {"method": m, "break": b, "seeds": len(rs), "mcc_mean": float(np.nanmean(mcc)) if np.isfinite(mcc).any() else float("nan"),
               "mcc_min": float(np.nanmin(mcc)) if np.isfinite(mcc).any() else float("nan"),
               "mcc_max": float(np.nanmax(mcc)) if np.isfinite(mcc).any() else float("nan"),
               "chance_mean": float(np.nanmean(base)) if np.isfinite(base).any() else float("nan"),
               "failed": int((~np.isfinite(mcc)).sum()),
               "mismatch": next((r["mismatch"] for r in rs if r["mismatch"]), "")}
        r2c = np.array([r.get("r2_content", np.nan) for r in rs], dtype=float)
        r2s = np.array([r.get("r2_style", np.nan) for r in rs], dtype=float)
        row["r2_content_mean"] = float(np.nanmean(r2c)) if np.isfinite(r2c).any() else float("nan")
        row["r2_style_mean"] = float(np.nanmean(r2s)) if np.isfinite(r2s).any() else float("nan")
        if b == "met":
            met[m] = row["mcc_mean"]
        row["met_mcc_mean"] = met.get(m, float("nan"))
        out.append(row)
    return out


def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def write_outputs(rows: list[dict[str, Any]], out: Path) -> None:
    """``misspecify.csv`` (every run), ``misspecify.md`` (the summary) and ``misspecify.png``."""
    if not rows:
        return
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / "misspecify.csv", buf.getvalue())
    summ = summarize(rows)
    cols = ["method", "break", "mcc_mean", "mcc_min", "mcc_max", "met_mcc_mean", "chance_mean", "seeds", "failed",
            "mismatch"]
    if any(np.isfinite(r["r2_content_mean"]) for r in summ):  # content/style's guarantee is about the block
        cols[7:7] = ["r2_content_mean", "r2_style_mean"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r[c]) for c in cols) + " |" for r in summ]
    atomic_write_text(out / "misspecify.md", "\n".join(lines) + "\n")
    plot_misspecify(summ, out / "misspecify.png")


def plot_misspecify(summary: list[dict[str, Any]], path: Path) -> None:
    """Grouped bars: mean MCC per break (seed range as error bars), chance as ticks, per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from crlkit.files import save_figure

    methods = list(dict.fromkeys(r["method"] for r in summary))
    fig, axes = plt.subplots(1, len(methods), figsize=(3.2 * len(methods), 3.4), squeeze=False, sharey=True)
    for ax, m in zip(axes[0], methods):
        rs = [r for r in summary if r["method"] == m]
        xs = np.arange(len(rs))
        means = np.array([r["mcc_mean"] for r in rs])
        lo = means - np.array([r["mcc_min"] for r in rs])
        hi = np.array([r["mcc_max"] for r in rs]) - means
        colors = ["tab:green" if r["break"] == "met" else "tab:red" for r in rs]
        ax.bar(xs, np.nan_to_num(means), yerr=[np.nan_to_num(lo), np.nan_to_num(hi)], color=colors, alpha=0.8,
               capsize=3)
        ax.scatter(xs, [r["chance_mean"] for r in rs], marker="_", s=300, color="k", zorder=3, label="chance")
        ax.set_xticks(xs)
        ax.set_xticklabels([r["break"] for r in rs], rotation=45, ha="right", fontsize=8)
        ax.set_title(m, fontsize=10)
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("MCC (mean, seed range)")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def misspecify_command(args, out: Path, options: dict[str, str] | None = None) -> int:
    """``crlkit identify --misspecify``: run the table (``--method`` for one method, ``--steps``
    for every method's steps, ``--seed`` the first of 3 seeds, ``--set batch_size=B`` /
    ``eval_samples=N`` for every run), print it, write the files."""
    from crlkit.config import coerce
    from crlkit.registry import unknown_choice

    opts = dict(options or {})
    for key in opts:
        if key not in ("batch_size", "eval_samples"):
            raise CrlkitError(unknown_choice("--set key for --misspecify", key, ["batch_size", "eval_samples"]))
    batch_size = coerce(opts["batch_size"], int, key="batch_size") if "batch_size" in opts else None
    eval_samples = coerce(opts.get("eval_samples", 2000), int, key="eval_samples")
    if (batch_size is not None and batch_size < 1) or eval_samples < 100:
        raise CrlkitError(f"batch_size must be >= 1 and eval_samples >= 100; got {batch_size}, {eval_samples}")
    methods = [args.method] if args.method else None
    steps = None if args.steps is None else {m: int(args.steps) for m in BREAKS}
    run_misspecify(out, methods=methods, seeds=(args.seed, args.seed + 1, args.seed + 2), steps=steps,
                   batch_size=batch_size, latents=args.latents, mixing_layers=args.mixing_layers,
                   eval_samples=min(eval_samples, 2000), threads=args.threads or 1, log=print)
    print((out / "misspecify.md").read_text())
    print(f"wrote {out / 'misspecify.csv'}, {out / 'misspecify.md'}, {out / 'misspecify.png'}")
    return 0
