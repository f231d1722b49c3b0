"""``crlkit shortcut``: train classifiers on cows and camels, select them honestly, measure shortcut reliance.

    crlkit shortcut --method groupdro --seed 2 --out runs/gdro
    crlkit shortcut --compare --selection all --seed 2 --out runs/compare
    crlkit shortcut --method irm --data-set rhos=0.9,0.8 --data-set test_rho=0.1 --data-set shape_noise=0.25 \\
        --set penalty_weight=1e4 --out runs/irm

One method writes ``OUT/results.json`` (test measures of the selected model, ``selection``,
``selected`` hyperparameters and step, its ``validation`` scores, the ``labels`` the method and
the selection used; with ``--selection all`` one such record per rule, keyed by rule) and
``OUT/details.json`` (group accuracies, config, time). ``--compare`` runs every method (or
``--methods``) on the same data and writes ``OUT/comparison.{csv,md,png}`` and one
``OUT/<method>/results.json`` each. The work lives in :mod:`crlkit.robust`.
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import json
import time
from pathlib import Path

from crlkit.commands._options import (add_data_set, add_device, add_out, add_seed, add_set, add_steps, add_threads,
                                      examples, torch_threads)
from crlkit.errors import CrlkitError
from crlkit.files import atomic_save, atomic_write_text, save_figure
from crlkit.registry import unknown_choice

TABLE_COLUMNS = ("method", "selection", "id_accuracy", "ood_accuracy", "reversed_accuracy", "worst_group_accuracy",
                 "mean_group_accuracy", "background_flip_rate")
STORY = ("erm", "groupdro", "irm", "jtt", "dfr", "causal")


def register(sub) -> None:
    p = sub.add_parser(
        "shortcut", help="shortcut learning on cows and camels: ERM vs robust methods, selected on validation",
        description="Train classifiers on the confounded cows_camels data; every method searches its "
                    "hyperparameters with validation checkpoints and a selection rule picks the model "
                    "(worst_group: validation worst-group accuracy; worst_class: validation worst-class "
                    "accuracy, no group labels; average: validation accuracy; oracle: test worst-group, an "
                    "upper bound only). The chosen model is evaluated once on the test splits.",
        epilog=examples("crlkit shortcut --method groupdro --seed 2 --out runs/gdro",
                        "crlkit shortcut --compare --selection all --out runs/compare",
                        "crlkit shortcut --method irm --data-set rhos=0.9,0.8 --data-set test_rho=0.1 "
                        "--data-set shape_noise=0.25 --set penalty_weight=1e4 --out runs/irm"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", default=None, metavar="NAME",
                   help="one method: erm, groupdro, irm, jtt, dfr or causal")
    p.add_argument("--compare", action="store_true", help="run all methods (or --methods) and write a table and plot")
    p.add_argument("--methods", default=None, metavar="A,B", help="comma-separated methods for --compare (default: all)")
    p.add_argument("--selection", default="worst_group", metavar="RULE",
                   help="model selection rule: worst_group (default), worst_class, average, oracle (upper bound), "
                        "or all (side by side)")
    add_set(p, help="a method's hyperparameter (fixes it in the search, e.g. --set step_size=0.1, or "
                    "--set groupdro.step_size=0.1 with --compare) or a training option (steps, batch_size, lr, "
                    "width, evals) (repeatable)")
    p.add_argument("--data-set", dest="data_options", action="append", default=[], metavar="KEY=VALUE",
                   help="dataset option: rho, env_spread, rhos (e.g. rhos=0.9,0.8), test_rho, eta (label noise), "
                        "shape_noise, test_shape_noise, contrast, animal_scale, image_size, n_train, n_val, n_test "
                        "(repeatable)")
    add_steps(p, help="training steps of every run (default: the library's, 800)")
    add_seed(p)
    add_threads(p)
    add_device(p)
    p.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    add_out(p)
    p.set_defaults(func=run)


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for kv in items:
        key, eq, value = kv.partition("=")
        if not eq or not key.strip():
            raise CrlkitError(f"{flag} expects KEY=VALUE; got {kv!r}")
        out[key.strip()] = value.strip()
    return out


def _methods(args) -> list[str]:
    from crlkit.robust import list_methods

    valid = list_methods()
    if args.compare:
        default = [m for m in STORY if m in valid] + [m for m in valid if m not in STORY]
        names = [m.strip() for m in args.methods.split(",")] if args.methods else default
    else:
        if args.method is None:
            raise CrlkitError("give --method (" + ", ".join(valid) + ") or --compare")
        names = [args.method]
    for m in names:
        if m not in valid:
            raise CrlkitError(unknown_choice("method", m, valid))
    return names


def _settings(args, names):
    """(ShortcutConfig, {method: options}, rules) from the flags, all validated before any work."""
    from crlkit.config import build_config, config_fields
    from crlkit.robust import DATA_FIELDS, METHODS, TRAIN_FIELDS, ShortcutConfig, check_rules

    rules = check_rules(args.selection)
    data_opts = _pairs(args.data_options, "--data-set")
    for k in data_opts:
        if k not in DATA_FIELDS:
            raise CrlkitError(unknown_choice("--data-set key", k, DATA_FIELDS))
    sets = _pairs(args.overrides, "--set")
    train_opts = {k: v for k, v in sets.items() if k in TRAIN_FIELDS}
    if args.steps is not None:
        train_opts["steps"] = args.steps
    per_method: dict[str, dict] = {m: {} for m in names}
    for key, value in sets.items():
        if key in TRAIN_FIELDS:  # a training option; it also fixes a method's field of that name (erm's lr)
            for m in names:
                if key in config_fields(METHODS.get(m).Config):
                    per_method[m][key] = value
            continue
        prefix, dot, bare = key.partition(".")
        targets = [prefix] if dot else names
        if dot and prefix not in names:
            raise CrlkitError(unknown_choice("method prefix in --set", prefix, names))
        field = bare if dot else key
        owners = [m for m in targets if field in config_fields(METHODS.get(m).Config)]
        if not owners:
            valid = sorted({f for m in names for f in config_fields(METHODS.get(m).Config)} | set(TRAIN_FIELDS))
            raise CrlkitError(unknown_choice("--set key", key, valid))
        for m in owners:
            per_method[m][field] = value
    config = build_config(ShortcutConfig, {**data_opts, **train_opts}, what="shortcut data/training")
    from crlkit.robust import make_method

    for m, opts in per_method.items():
        per_method[m] = make_method(m, **opts).fixed  # validated and coerced
    return config, per_method, rules


def write_json(path: Path, obj) -> None:
    from crlkit.files import jsonable

    atomic_write_text(path, json.dumps(jsonable(obj), indent=2) + "\n")


def _record(res: dict) -> dict:
    from crlkit.robust import RESULT_KEYS

    keep = ("selection", "selected", "validation", "labels", "candidates")
    return {**{k: res[k] for k in RESULT_KEYS}, **{k: res[k] for k in keep}}


def write_result(out: Path, results: dict[str, dict], config) -> None:
    """``results.json`` (one record, or one per rule keyed by rule) and ``details.json``."""
    records = {r: _record(res) for r, res in results.items()}
    write_json(out / "results.json", next(iter(records.values())) if len(records) == 1 else records)
    write_json(out / "details.json", {"results": results, "config": dataclasses.asdict(config)})


def run(args) -> int:
    names = _methods(args)
    config, per_method, rules = _settings(args, names)
    out = Path(args.out)
    if (out / "results.json").exists() and not args.overwrite:
        raise CrlkitError(f"{out} already holds results; pass --overwrite to replace them")
    with torch_threads(args.threads):
        return _run(args, names, config, per_method, rules, out)


def _run(args, names, config, per_method, rules, out) -> int:
    from crlkit.robust import make_shortcut_data, run_search

    t0 = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t0:6.0f} s] {msg}", flush=True)

    log(f"rendering cows_camels (n_train={config.n_train}, n_val={config.n_val}, training rhos="
        f"{', '.join(f'{r:.2f}' for r in config.train_rhos)}, test_rho={config.reversed_rho:.2f}, seed={args.seed})")
    data = make_shortcut_data(config, args.seed, device=args.device)
    rows = []
    for name in names:
        results = run_search(name, data, args.seed, rules=rules, log=log, **per_method[name])
        write_result(out / name if args.compare else out, results, config)
        for rule, res in results.items():
            rows.append({"method": name, **res})
            log(f"{name} [{rule}] step {res['selected']['step']} {res['selected']['params']}: "
                + "  ".join(f"{k}={res[k]:.3f}" for k in TABLE_COLUMNS[2:]))
    if args.compare:
        title = (f"cows_camels, training rhos {', '.join(f'{r:.2f}' for r in config.train_rhos)}, "
                 f"seed {args.seed}, selection {args.selection}")
        write_comparison(out, rows, title=title)
        log(f"wrote {out / 'comparison.md'}, comparison.csv, comparison.png")
    else:
        log(f"wrote {out / 'results.json'}")
    return 0


def comparison_markdown(rows: list[dict]) -> str:
    head = "| " + " | ".join(TABLE_COLUMNS) + " |\n|" + "---|" * len(TABLE_COLUMNS) + "\n"
    body = "".join("| " + " | ".join(str(r[c]) if c in ("method", "selection") else f"{r[c]:.3f}"
                                     for c in TABLE_COLUMNS) + " |\n" for r in rows)
    return head + body


def write_comparison(out: Path, rows: list[dict], *, title: str) -> None:
    """``comparison.csv``, ``comparison.md`` and the bar plot ``comparison.png`` (atomic writes)."""
    csv = ",".join(TABLE_COLUMNS) + "\n" + "".join(
        ",".join(str(r[c]) if c in ("method", "selection") else f"{r[c]:.4f}" for c in TABLE_COLUMNS) + "\n"
        for r in rows)
    atomic_write_text(out / "comparison.csv", csv)
    atomic_write_text(out / "comparison.md", f"{title}\n\n" + comparison_markdown(rows))
    bar_plot(out / "comparison.png", rows, title=title)


def bar_plot(path: Path, rows: list[dict], *, title: str) -> None:
    """Worst-group accuracy per method, one bar per selection rule (side by side), and ID accuracy."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    methods = list(dict.fromkeys(r["method"] for r in rows))
    rules = list(dict.fromkeys(r["selection"] for r in rows))
    series = [(f"worst-group [{rule}]", rule, "worst_group_accuracy") for rule in rules]
    series.append((f"ID accuracy [{rules[0]}]", rules[0], "id_accuracy"))
    fig, ax = plt.subplots(figsize=(8, 3.6))
    w = 0.8 / len(series)
    xs = np.arange(len(methods))
    for i, (label, rule, key) in enumerate(series):
        vals = [next((r[key] for r in rows if r["method"] == m and r["selection"] == rule), np.nan) for m in methods]
        ax.bar(xs + (i - (len(series) - 1) / 2) * w, vals, w, label=label)
    ax.set_xticks(xs, methods)
    ax.set_ylim(0, 1.05)
    ax.axhline(0.5, color="grey", lw=0.6, ls=":")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.12))
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def counterfactual_grid(path: Path, *, seed: int, n: int = 8) -> None:
    """A PNG grid: rows = original, background swapped, animal swapped, foreground only, background only."""
    import numpy as np
    from PIL import Image

    from crlkit.data.cows_camels import CowsCamels

    ds = CowsCamels((0.5,), image_size=64)
    f = ds.sample_factors(n, np.random.default_rng(seed))
    rows = [ds.observations_from_factors(f), ds.observations_from_factors(ds.swap_background(f)),
            ds.observations_from_factors(ds.swap_animal(f)),
            ds.observations_from_factors(f, part="foreground"), ds.observations_from_factors(f, part="background")]
    pad = 2
    H = 64 + pad
    canvas = np.ones((len(rows) * H, n * H, 3), dtype=np.float32)
    for i, imgs in enumerate(rows):
        for j in range(n):
            canvas[i * H:i * H + 64, j * H:j * H + 64] = imgs[j].transpose(1, 2, 0)
    img = Image.fromarray((canvas * 255).round().astype(np.uint8)).resize((n * H * 2, len(rows) * H * 2),
                                                                           Image.NEAREST)
    atomic_save(path, img.save)


# The demo trains the cheap methods live with one fixed configuration each (the bench's search
# is too long for the demo's time budget) and early stopping on validation worst-group accuracy;
# the multi-seed table comes from the bench's JSON (bench/results/shortcut.json) when present.
DEMO_OPTIONS = dict(n_train=2000, n_val=1000, n_test=500, steps=400, evals=4)
DEMO_METHODS = (("erm", {"lr": 1e-3}), ("groupdro", {"step_size": 0.01, "weight_decay": 1e-3}),
                ("jtt", {"first_fraction": 0.3, "upweight": 20.0}))
BENCH_JSON = Path(__file__).resolve().parents[2] / "bench" / "results" / "shortcut.json"


def demo_section(ctx) -> str:
    from crlkit.report.html import figure_html, table_html
    from crlkit.robust import ShortcutConfig, make_shortcut_data, run_method
    from crlkit.robust.report import bench_summary

    with torch_threads(1):
        out = Path(ctx.out_dir) / "shortcut"
        out.mkdir(parents=True, exist_ok=True)
        counterfactual_grid(out / "counterfactuals.png", seed=ctx.seed)
        config = ShortcutConfig(**DEMO_OPTIONS)
        data = make_shortcut_data(config, ctx.seed)
        rows = []
        for name, options in DEMO_METHODS:
            res = run_method(name, data, ctx.seed, **options)
            ctx.log(f"{name}: worst-group {res['worst_group_accuracy']:.3f}, flip rate "
                    f"{res['background_flip_rate']:.3f} ({res['seconds']:.0f} s)")
            rows.append({"method": name, **res})
    title = f"{config.n_train} training images, {config.steps} steps, seed {ctx.seed}"
    write_comparison(out, rows, title=title)
    table_rows = [{**{c: r[c] for c in TABLE_COLUMNS}, "step": r["selected"]["step"], "uses": r["labels"]["method"]}
                  for r in rows]
    page = (
        "<p>A classifier sees cows mostly on grass and camels mostly on sand (training environments "
        f"rho = {', '.join(f'{r:.2f}' for r in config.train_rhos)}; {config.shape_noise:.0%} of training "
        "animals drawn with the other class's silhouette, so the background is the more reliable cue). "
        "Rows of the grid: images; the same animals on the other background; the other animal in the same "
        "pose; the animal alone; the background alone.</p>"
        + figure_html("shortcut/counterfactuals.png", "counterfactual renderings (64x64)", width=600)
        + f"<p>Trained now, reduced ({html.escape(title)}): ERM and two reweighting fixes, one configuration "
          "each, the checkpoint chosen by validation worst-group accuracy. Worst-/mean-group accuracy over "
          "(animal, background) on a balanced test set (rho' = 0.5); flip rate = share of predictions that "
          "change when only the background is swapped.</p>"
        + table_html(table_rows)
        + figure_html("shortcut/comparison.png", "worst-group accuracy per method", width=700))
    if BENCH_JSON.exists():
        doc = json.loads(BENCH_JSON.read_text())
        page += (f"<p>Bench ({html.escape(doc['command'])}; {html.escape(doc['machine'])}): mean over seeds "
                 f"{html.escape(str(sorted({r['seed'] for r in doc['rows']})))}; oracle rows are upper bounds, "
                 "not results.</p>" + table_html(bench_summary(doc)))
    return page
