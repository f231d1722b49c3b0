"""``crlkit demo``: crlkit's story on one page, ``OUT/index.html``.

The page reads top to bottom as the field's argument: deep models fail by learning shortcuts
(1); the causal view says why (2); a latent causal model rendered by a mixing function is the
model of the world (3); disentanglement methods try to recover its factors (4); without
supervision they cannot (5); structure beyond i.i.d. data makes the latents identifiable (6).
A compact gallery of the datasets closes it, with a page per dataset behind a link.

Each section is a function ``section(ctx) -> str`` (an HTML fragment) that writes its images
under ``ctx.out`` and links them relatively; :data:`SECTIONS` gives its id, title and the two
or three sentences of why that open it. Sizes come from :class:`DemoSizes` (``QUICK`` for
``crlkit demo --quick`` and the browser test, ``FULL`` for ``make demo``).
"""

from __future__ import annotations

import dataclasses
import html
import json
import os
import re
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np

from crlkit.report import plots, style
from crlkit.report.html import command_html, figure_html, table_html, write_page


@dataclasses.dataclass(frozen=True)
class DemoSizes:
    """How much the demo computes. Every number is a size or a budget, never a result."""

    shortcut_train: int          # cows_camels training images of the live comparison
    shortcut_test: int           # images per test distribution
    shortcut_steps: int          # optimisation steps per method
    shortcut_methods: tuple      # methods trained live (the cheap ones)
    vae_steps: int               # first leg of the beta-VAE preview
    vae_max_steps: int           # resume by 100 steps while KL < 1 nat, up to this many
    vae_batch: int               # images per beta-VAE step
    eval_train: int              # samples the metrics are fitted on
    eval_test: int               # samples the metrics are tested on
    impossibility_samples: int   # samples of the impossibility construction
    impossibility_settings: tuple  # (latents, noise) rows of its table
    identify_steps: tuple        # training steps of (ivae, vae, contrastive)
    identify_eval: int           # held-out samples scored
    gallery_samples: int         # samples per dataset page
    traversal_steps: int         # values per traversal row


FULL = DemoSizes(shortcut_train=2000, shortcut_test=500, shortcut_steps=400,
                 shortcut_methods=("erm", "groupdro", "jtt"), vae_steps=250, vae_max_steps=650, vae_batch=64,
                 eval_train=1000, eval_test=500, impossibility_samples=3000,
                 impossibility_settings=((2, "uniform"), (5, "laplace"), (10, "gaussian")),
                 identify_steps=(1000, 1000, 800), identify_eval=2000, gallery_samples=32, traversal_steps=8)
QUICK = DemoSizes(shortcut_train=300, shortcut_test=100, shortcut_steps=30,
                  shortcut_methods=("erm", "groupdro"), vae_steps=20, vae_max_steps=20, vae_batch=16,
                  eval_train=200, eval_test=100, impossibility_samples=800,
                  impossibility_settings=((2, "uniform"), (5, "laplace")),
                  identify_steps=(100, 100, 60), identify_eval=300, gallery_samples=8, traversal_steps=4)


@dataclasses.dataclass
class DemoContext:
    out: Path                     # where the page and its images go
    seed: int                     # one seed for every section
    sizes: DemoSizes
    quick: bool = False
    study_dir: Path | None = None  # a study to summarise in section 5 (None: look under runs/)
    shared: dict = dataclasses.field(default_factory=dict)  # results handed to later sections
    log: Callable[[str], None] = print

    def path(self, *parts: str) -> Path:
        p = self.out.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def rel(self, p: Path) -> str:
        return Path(p).relative_to(self.out).as_posix()


def _fig(ctx, p: Path, caption: str, **kw) -> str:
    return figure_html(ctx.rel(p), caption, **kw)


def _note(text: str) -> str:
    return f'<p class="note">{text}</p>'


# ============================================================================================
# 1  How deep models fail
# ============================================================================================
def _shortcut_bench_json(ctx, name: str = "shortcut.json") -> Path | None:
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        p = root / "bench" / "results" / name
        if p.is_file():
            return p
    return None


def _rows_from_json(obj: Any) -> list[dict]:
    """Result rows from the bench's JSON, whatever its nesting: a list of rows, a dict holding
    one (``rows``/``results``/``table``/``summary``), or a dict of method -> row."""
    if isinstance(obj, list):
        return [r for r in obj if isinstance(r, dict)]
    if isinstance(obj, dict):
        for key in ("summary", "rows", "results", "table", "methods"):
            if key in obj:
                rows = _rows_from_json(obj[key])
                if rows:
                    return rows
        if obj and all(isinstance(v, dict) for v in obj.values()):
            return [{"method": k, **v} for k, v in obj.items()]
    return []


def _bench_table(path: Path) -> str:
    """Render bench/results/shortcut.json defensively: the scalar columns it has, its command."""
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return _note(f"{html.escape(str(path))} could not be read: {html.escape(str(e))}")
    if isinstance(obj, dict) and obj.get("rows") and all("setting" in r for r in obj["rows"]):
        from crlkit.robust.report import bench_summary  # the bench's own schema: one row per seed

        rows = bench_summary(obj)
    else:
        rows = _rows_from_json(obj)
    if not rows:
        return _note(f"{html.escape(str(path))} holds no result rows this page can read.")
    scalar = [k for k in dict.fromkeys(k for r in rows for k in r)
              if all(isinstance(r.get(k), (int, float, str, type(None))) for r in rows)]
    first = [k for k in ("setting", "method", "selection", "seeds", "seed") if k in scalar]
    cols = first + [k for k in scalar if k not in first]
    cmd = obj.get("command") if isinstance(obj, dict) else None
    meta = ""
    if isinstance(obj, dict):
        bits = [f"{k}: {obj[k]}" for k in ("machine", "date", "seeds", "config") if k in obj
                and isinstance(obj[k], (str, int, float, list))]
        meta = _note(html.escape("; ".join(str(b) for b in bits))) if bits else ""
    return (table_html(rows, columns=cols)
            + command_html(str(cmd) if cmd else "python bench/bench_shortcut.py   # (the file names no command)")
            + meta)


def section_fail(ctx) -> str:
    import torch

    from crlkit.data.cows_camels import CowsCamels
    from crlkit.robust import ShortcutConfig, make_shortcut_data
    from crlkit.robust.classifier import predict_logits
    from crlkit.robust.methods import make_method
    from crlkit.robust.selection import run_method

    s = ctx.sizes
    # the counterfactual grid: the simulator renders any image again with one cause changed
    ds = CowsCamels((0.5,), image_size=64)
    f = ds.sample_factors(8, np.random.default_rng(ctx.seed))
    rows = [("image", ds.observations_from_factors(f)),
            ("other background", ds.observations_from_factors(ds.swap_background(f))),
            ("other animal", ds.observations_from_factors(ds.swap_animal(f))),
            ("animal only", ds.observations_from_factors(f, part="foreground")),
            ("background only", ds.observations_from_factors(f, part="background"))]
    grid = plots.image_rows(rows, ctx.path("fail", "counterfactuals.png"), label_in=1.9)

    config = ShortcutConfig(n_train=s.shortcut_train, n_val=max(200, s.shortcut_test), n_test=s.shortcut_test,
                            steps=s.shortcut_steps)
    data = make_shortcut_data(config, ctx.seed)
    results, predictors = [], {}
    for name in s.shortcut_methods:
        t0 = time.perf_counter()
        res = run_method(name, data, ctx.seed, selection="worst_group", keep_models=True)
        predictor = res.pop("predictor")
        res.update(seconds=time.perf_counter() - t0, uses=make_method(name).uses)
        ctx.log(f"shortcut: {name} worst-group {res['worst_group_accuracy']:.2f}, flip rate "
                f"{res['background_flip_rate']:.2f} ({res['seconds']:.0f} s)")
        results.append(res)
        predictors[name] = predictor
    keys = ("id_accuracy", "worst_group_accuracy", "background_flip_rate")
    labels = {"id_accuracy": "accuracy, training distribution", "worst_group_accuracy": "worst-group accuracy",
              "background_flip_rate": "background flip rate"}
    bars = plots.grouped_bars(results, keys, ctx.path("fail", "methods.png"), key_labels=labels,
                              ylabel="fraction of test images")

    # flipped predictions of ERM: the same animal, only the background swapped
    ood = data.test_ood
    with torch.no_grad():
        before = (predict_logits(predictors[s.shortcut_methods[0]], ood.x) > 0).long().cpu().numpy()
        after = (predict_logits(predictors[s.shortcut_methods[0]], data.ood_swapped_x) > 0).long().cpu().numpy()
    flipped = np.nonzero(before != after)[0][:7]
    flips_html = ""
    if len(flipped):
        names = ("cow", "camel")
        y = ood.y.long().cpu().numpy()
        imgs = [("test image", ood.x[flipped].cpu().numpy()), ("background swapped", data.ood_swapped_x[flipped].cpu().numpy())]
        titles = [[f"says {names[before[i]]}" for i in flipped], [f"says {names[after[i]]}" for i in flipped]]
        colours = [[style.GOOD if before[i] == y[i] else style.BAD for i in flipped],
                   [style.GOOD if after[i] == y[i] else style.BAD for i in flipped]]
        p = plots.image_rows(imgs, ctx.path("fail", "flips.png"), titles=titles, title_colors=colours,
                             label_in=2.0, cell_in=1.05)
        flips_html = _fig(ctx, p, f"{s.shortcut_methods[0].upper()}: test images whose prediction changes when "
                          "only the background is swapped (green: right, vermillion: wrong). The animal did not "
                          "change; the answer did.", pixels=True)
    table_rows = [{"method": r["method"], **{labels[k]: r[k] for k in keys},
                   "worst-group / mean-group": f"{r['worst_group_accuracy']:.2f} / {r['mean_group_accuracy']:.2f}",
                   "seconds": int(round(r["seconds"])), "labels used": r["uses"]} for r in results]
    bench = _shortcut_bench_json(ctx)
    full = (f"<h3>Full results</h3><p>From <code>{html.escape(os.path.relpath(bench))}</code>:</p>"
            + _bench_table(bench)) if bench else (
        "<h3>Full results</h3>" + _note("No bench results were found (bench/results/shortcut.json). Run "
                                        "<code>python bench/bench_shortcut.py</code>, which writes it, and the "
                                        "demo shows them here."))
    return (
        _fig(ctx, grid, "The simulator renders each image again with one cause changed: rows are the image, "
                        "the same animal on the other background, the other animal in the same pose, the "
                        "animal alone, the background alone (64 x 64 px).", pixels=True)
        + f"<h3>Trained now, at reduced size</h3><p>{config.n_train} training images from two environments "
          f"(background agrees with the animal in {config.train_rhos[0]:.0%} / {config.train_rhos[1]:.0%} of "
          f"them), {config.steps} steps per run, each method's hyperparameters and checkpoint chosen on "
          f"{config.n_val} validation images by worst-group accuracy, seed {ctx.seed}. Tested on a balanced set (background "
          "independent of the animal): worst-group accuracy is the lowest accuracy over the four (animal, "
          "background) groups; the flip rate is the share of predictions that change when only the "
          "background is swapped.</p>"
        + table_html(table_rows, floatfmt="{:.2f}")
        + _fig(ctx, bars, "Accuracy where training and test agree, worst-group accuracy and background flip "
                          "rate per method (higher is better for the first two, lower for the flip rate).")
        + flips_html
        + command_html(f"crlkit shortcut --compare --seed {ctx.seed} --out runs/shortcut")
        + full
    )


# ============================================================================================
# 2  The causal view
# ============================================================================================
def section_causal(ctx) -> str:
    from crlkit.robust import list_methods
    from crlkit.robust.methods import make_method

    # nodes: the factors of cows_camels' graph that matter for the label, plus the image
    names = ["environment", "place (hidden)", "animal = label", "background", "shape", "image x"]
    a = np.zeros((6, 6), int)
    for i, j in ((0, 2), (0, 3), (1, 2), (1, 3), (2, 4), (4, 5), (3, 5)):
        a[i, j] = 1
    pos = {0: (0.2, 1.0), 1: (0.8, 1.0), 2: (0.2, 0.5), 3: (0.8, 0.5), 4: (0.2, 0.0), 5: (0.8, 0.0)}
    c_label, c_spur, c_env, c_obs = "#B7DDF2", "#F7D1B5", "#E8E8E8", "#C9EBDD"
    colors = [c_env, c_env, c_label, c_spur, c_label, c_obs]
    g = plots.graph_plot(a, names, ctx.path("causal", "cows_camels_graph.png"), positions=pos, node_colors=colors,
                         width_in=6.0, height_in=4.2, dashed=[(1, 2), (1, 3)],
                         legend=[(c_label, "cause of the label"), (c_spur, "spurious cue"),
                                 (c_env, "environment / confounder"), (c_obs, "observed")])
    needs = {
        "erm": "image and label only: it cannot tell the animal's path from the background's",
        "groupdro": "the (animal, background) group of every training image: reweights the rare groups",
        "irm": "the environment node: asks for a predictor that is optimal in every environment",
        "jtt": "nothing beyond labels: treats the first model's errors as the rare groups",
        "dfr": "a small group-balanced set: refits the last layer where background and animal are independent",
        "causal": "interventions on the simulator: do(background) must not change the answer, do(animal) must",
    }
    rows = []
    for m in list_methods():
        try:
            uses = make_method(m).uses
        except Exception:  # noqa: BLE001 - a method that cannot be built still gets its row
            uses = ""
        rows.append({"method": m, "labels it sees": uses, "what it uses of the graph": needs.get(m, "")})
    return (
        "<p>Both the animal's shape and the background reach the image, and the hidden place makes the "
        "background predict the label. A classifier that sees only images and labels finds the background as "
        "useful as the shape. Every fix brings in information about the graph: which group an image belongs "
        "to, which environment it came from, or what happens under an intervention.</p>"
        + _fig(ctx, g, "cows_camels: a hidden place puts cows on grass and camels on sand; the environment sets "
                       "how strongly (dashed: through the hidden node).")
        + table_html(rows)
    )


# ============================================================================================
# 3  The model of the world
# ============================================================================================
def section_world(ctx) -> str:
    from crlkit.data import make_dataset

    n = 1500 if not ctx.quick else 600
    ds = make_dataset("synthetic", latents=4, graph="chain", mechanism="nonlinear", noise="gaussian",
                      mixing="mlp", mixing_layers=3, standardize=True, seed=ctx.seed)
    names = [f"z{i + 1}" for i in range(4)]
    g = plots.graph_plot(ds.graph, names, ctx.path("world", "scm_graph.png"), positions={
        0: (0.1, 0.5), 1: (0.37, 0.5), 2: (0.63, 0.5), 3: (0.9, 0.5)}, width_in=6.0, height_in=1.5)
    rng_seed = ctx.seed + 1
    obs = ds.sample_latents(n, np.random.default_rng(rng_seed)).z
    do = ds.intervene({1: 2.0}).sample_latents(n, np.random.default_rng(rng_seed)).z
    z_plot = plots.scatter_pairs(obs, names, ctx.path("world", "scm_samples.png"), color=obs[:, 0],
                                 color_label="z1", max_dims=4)
    fig, axes = style.figure(10.4, 2.6, ncols=4)
    for j, ax in enumerate(axes):
        bins = np.linspace(min(obs[:, j].min(), do[:, j].min()), max(obs[:, j].max(), do[:, j].max()), 30)
        ax.hist(obs[:, j], bins=bins, alpha=0.6, color=style.CYCLE[0], label="observed")
        ax.hist(do[:, j], bins=bins, alpha=0.6, color=style.CYCLE[1], label="do(z2 = 2)")
        ax.set_xlabel(f"{names[j]} (standardised units)")
        ax.set_yticks([])
    axes[0].set_ylabel("count")
    axes[0].legend(loc="upper left", frameon=False)
    from crlkit.files import save_figure
    inter = save_figure(fig, ctx.path("world", "scm_intervention.png"), dpi=style.DPI)
    x = np.asarray(ds.observations_from_factors(obs))
    mix = plots.scatter_pairs(x, [f"x{i + 1}" for i in range(x.shape[1])], ctx.path("world", "mixing.png"),
                              color=obs[:, 0], color_label="z1 (the first latent)", max_dims=4)

    pend = make_dataset("pendulum")
    base = pend.sample_factors(1, np.random.default_rng(ctx.seed))
    k = 6
    samples = pend.observations_from_factors(pend.sample_factors(k, np.random.default_rng(ctx.seed + 2)))
    lights = np.linspace(8, pend.factor_sizes[1] - 8, k).round().astype(int)
    cf = pend.intervene_factors(np.repeat(base, k, 0), {"light_angle": lights})
    shadow = np.linspace(10, pend.factor_sizes[3] - 10, k).round().astype(int)
    iv = pend.intervene_factors(np.repeat(base, k, 0), {"shadow_position": shadow})
    pp = plots.image_rows([("samples", samples), ("had the light\nbeen elsewhere", pend.observations_from_factors(cf)),
                           ("do(shadow\nposition)", pend.observations_from_factors(iv))],
                          ctx.path("world", "pendulum.png"), label_in=1.9, cell_in=1.1)
    pg = plots.graph_plot(pend.graph, [n.replace("_", " ") for n in pend.factor_names],
                          ctx.path("world", "pendulum_graph.png"), width_in=5.0, height_in=2.4)
    return (
        "<h3>A latent causal model</h3>"
        '<div class="row">' + _fig(ctx, g, "A chain z1 -> z2 -> z3 -> z4 with nonlinear additive-noise mechanisms.")
        + "</div>"
        + _fig(ctx, z_plot, f"{n} samples of the latents (colour: z1). Each depends on its parent.")
        + _fig(ctx, inter, "The intervention do(z2 = 2) with the same exogenous noise: z1, upstream, is "
                           "untouched; z2 is fixed; z3 and z4, downstream, follow it.")
        + "<h3>The mixing</h3>"
        + _fig(ctx, mix, "The same samples after a 3-layer invertible MLP: every observed coordinate mixes all "
                         "latents (colour still z1). The learner sees only these.")
        + command_html(f"crlkit data show synthetic --out runs/synthetic --set graph=chain --set latents=4")
        + "<h3>Interventions and counterfactuals on pendulum</h3>"
        + '<div class="row">' + _fig(ctx, pg, "Pendulum's graph: the pendulum and the light cast the shadow.")
        + "</div>"
        + _fig(ctx, pp, "Top: samples. Middle: one scene again with the light moved (a counterfactual: the "
                        "pendulum stays, its shadow follows the light). Bottom: do(shadow position) on the same "
                        "scene: the shadow moves, the pendulum and the light do not, since the shadow causes "
                        "neither.", pixels=True)
    )


# ============================================================================================
# 4  Disentanglement
# ============================================================================================
_PAPER = re.compile(r"\(([A-Z][^()]*?\d{4}[a-z]?)")
_SENTENCE_END = re.compile(r"(?<!\bal)(?<!e\.g)(?<!i\.e)\.(\s|$)")


def _first_sentence(text: str) -> str:
    m = _SENTENCE_END.search(text)
    return text[:m.start()] if m else text


def model_zoo() -> list[dict]:
    """The VAE family as rows (method, objective in one line, paper), read from each registered
    model's docstring (the paper from its module's docstring when the class does not cite one)."""
    import sys

    from crlkit.models import get_model_class, list_models

    rows = []
    for name in list_models():
        cls = get_model_class(name)
        if not cls.__module__.endswith((".vae", ".weak")):
            continue
        doc = re.sub(r":\w+:`([^`]*)`", r"\1", " ".join((cls.__doc__ or "").split()).replace("``", ""))
        first = _first_sentence(doc)
        head, _, rest = first.partition(":")
        if rest.strip().startswith("regularizer ="):
            objective = "reconstruction + " + rest.split("=", 1)[1].strip()
        else:
            objective = rest.strip() or first
        paper = _PAPER.search(head) or _PAPER.search(" ".join((sys.modules[cls.__module__].__doc__ or "").split()))
        rows.append({"method": name, "objective": objective.rstrip(","), "paper": paper.group(1).strip(" ,") if paper else ""})
    return rows


def score_arrays(codes: np.ndarray, factors: np.ndarray, n_train: int, seed: int) -> dict:
    """The default metric suite on given codes (the identity and noise reference rows)."""
    from crlkit.metrics.evaluate import DEFAULT_METRICS, _ARRAY_METRICS, _Split

    split = _Split(codes, factors, n_train)
    out: dict = {}
    for m in DEFAULT_METRICS:
        out.update(_ARRAY_METRICS[m](split, {"dci_max_bins": None, "seed": seed, "n_train": n_train,
                                             "n_test": len(codes) - n_train}))
    return out


def traversal_rows(model, x, *, steps: int, limit: float = 2.0, top: int = 6):
    """Rows of decoded images, one per latent (sorted by KL to the prior, largest first):
    the code of ``x[0]`` with that latent set to ``linspace(-limit, limit, steps)``."""
    import torch

    with torch.no_grad():
        mean, logvar = model.encode_dist(x)
        kl = (0.5 * (mean.square() + logvar.exp() - logvar - 1)).mean(0).cpu().numpy()
        order = np.argsort(-kl)[:top]
        base = mean[:1]
        values = torch.linspace(-limit, limit, steps)
        rows = []
        for j in order:
            codes = base.repeat(steps, 1)
            codes[:, j] = values
            rows.append((f"z{j} (KL {kl[j]:.2f})", model.decode(codes).float().cpu().numpy()))
    return rows, kl


def section_disentangle(ctx) -> str:
    import pandas as pd
    import torch

    from crlkit.data import make_dataset
    from crlkit.metrics.evaluate import evaluate
    from crlkit.train import load_model, train

    s = ctx.sizes
    zoo = table_html(model_zoo())
    run_dir = ctx.out / "runs" / "beta_vae"
    overrides = {"beta": 4.0, "lr": 1e-3, "log_every": 10, "checkpoint_every": 50, "batch_size": s.vae_batch}
    steps = s.vae_steps
    ctx.log(f"disentanglement: beta_vae on dsprites, {steps} steps")
    summary = train("beta_vae", "dsprites", steps=steps, seed=ctx.seed, out_dir=run_dir, overrides=overrides,
                    progress=False)
    # A VAE on dSprites first ignores its latents (KL ~ 0) for a seed-dependent number of
    # steps; the preview resumes (same weights as one run) until it stops doing so.
    while summary["terms"]["kl"] < 1.0 and steps < s.vae_max_steps:
        steps = min(steps + 100, s.vae_max_steps)
        ctx.log(f"disentanglement: KL {summary['terms']['kl']:.2f} nats, resuming to {steps} steps")
        summary = train("beta_vae", "dsprites", steps=steps, seed=ctx.seed, out_dir=run_dir,
                        overrides=overrides, progress=False, resume=True)
    model = load_model(run_dir)
    dataset = make_dataset("dsprites")
    _, x = dataset.sample(4, np.random.default_rng(ctx.seed))
    x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    rows, kl = traversal_rows(model, x, steps=s.traversal_steps)
    trav = plots.image_rows(rows, ctx.path("disentangle", "traversals.png"), label_in=1.9, cell_in=0.85)
    loss = plots.loss_curves(pd.read_csv(run_dir / "log.csv"), ("reconstruction", "kl"),
                             ctx.path("disentangle", "loss.png"))
    scores = evaluate(model, dataset, seed=ctx.seed, n_train=s.eval_train, n_test=s.eval_test)
    ctx.shared["model_dir"] = run_dir
    rng = np.random.default_rng(ctx.seed)
    factors = dataset.sample_factors(s.eval_train + s.eval_test, rng)
    ident = score_arrays(factors.astype(np.float64), factors, s.eval_train, ctx.seed)
    noise = score_arrays(rng.standard_normal((len(factors), factors.shape[1])), factors, s.eval_train, ctx.seed)
    shown = ("mig", "dci_disentanglement", "dci_completeness", "dci_informativeness", "sap", "modularity",
             "explicitness", "irs", "gaussian_total_correlation")
    table = [{"metric": m.replace("_", " "), f"beta-VAE ({steps} steps)": scores.get(m),
              "identity (true factors)": ident.get(m), "Gaussian noise": noise.get(m)} for m in shown if m in scores]
    active = int((kl > 0.1).sum())
    return (
        "<h3>The zoo</h3>" + zoo
        + _note("Each objective is the ELBO's reconstruction term plus the regulariser shown; Ada-GVAE / "
                "Ada-ML-VAE train on pairs of images that share some factors (weak supervision).")
        + f"<h3>A trained model</h3><p>beta-VAE (beta = 4) on dSprites, {steps} steps at lr 1e-3, batch {s.vae_batch} "
          f"(the study trains 300,000 steps); final KL {summary['terms']['kl']:.2f} nats, {active} of "
          f"{len(kl)} latents with KL above 0.1 nats. Each row below varies one latent from -2 to 2 with the "
          "others fixed at the code of one image; a disentangled latent changes one factor only.</p>"
        + _fig(ctx, trav, "Latent traversals, latents sorted by their KL to the prior (the six largest).",
               pixels=True)
        + _fig(ctx, loss, "Training loss terms per step (line: 25-step running mean).")
        + f"<h3>Its scores, between the ceiling and chance</h3><p>On {s.eval_train} + {s.eval_test} samples "
          "(disentanglement_lib uses 10,000 + 5,000): the identity row is the best a representation can do "
          "under each metric's definition; Gaussian noise shows its chance level. Total correlation is "
          "lower-is-better.</p>"
        + table_html(table)
        + command_html(f"crlkit train --model beta_vae --dataset dsprites --steps {steps} --seed {ctx.seed} "
                       f"--out runs/bvae --set beta=4 --set lr=1e-3 --set batch_size={s.vae_batch}",
                       "crlkit evaluate runs/bvae --out runs/bvae/metrics.json")
    )


# ============================================================================================
# 5  Fundamental constraints
# ============================================================================================
def _find_study(ctx) -> Path | None:
    if ctx.study_dir is not None:
        return Path(ctx.study_dir)
    for root in (Path("runs"), Path("bench")):  # a study of the user's, else the one committed with bench/
        found = sorted(p.parent for p in root.glob("*/study.sqlite")) if root.is_dir() else []
        if found:
            return found[-1]
    return None


def study_findings(ctx) -> str:
    """The study's results in brief, or a line saying how to run one."""
    how = ("<code>crlkit study run --grid locatello --out runs/study</code>, then "
           "<code>crlkit demo --study runs/study</code>")
    study = _find_study(ctx)
    try:
        from crlkit.study import load  # noqa: F401
    except ImportError:
        return "<h3>A study</h3>" + _note(f"This install has no study runner (<code>crlkit.study.load</code>). "
                                          f"With it, run a study: {how}.")
    if study is None:
        return "<h3>A study</h3>" + _note(f"No study directory was given or found under runs/. Run one: {how}.")
    from crlkit.study import load

    try:
        df = load(study)
    except Exception as e:  # noqa: BLE001 - a partial or foreign directory: say so, keep the page
        return "<h3>A study</h3>" + _note(f"Could not load the study in <code>{html.escape(str(study))}</code>: "
                                          f"{html.escape(str(e))}")
    parts = [f"<h3>A study: {html.escape(str(study))}</h3>",
             f"<p>{len(df)} recorded runs; each finding below is written from them (crlkit.study).</p>"]
    try:
        from crlkit.study.analysis import findings

        rows = [{"finding": f.get("topic", ""), "this study": f.get("ours", ""), "expected": f.get("paper", ""),
                 "verdict": f.get("verdict", "")} for f in findings(df, n_boot=200)]
    except Exception as e:  # noqa: BLE001 - an older or newer study layout: say so, keep the page
        rows = []
        parts.append(_note(f"Its findings could not be computed here: {html.escape(str(e))}"))
    if rows:
        parts.append(table_html(rows))
    group = next((c for c in ("method", "model") if c in df.columns), None)
    numeric = [c for c in df.attrs.get("metrics", []) if c in df.columns][:6]
    if not rows and group and numeric:
        med = df.groupby(group)[numeric].median().reset_index()
        parts.append(_note("Median over runs per method:"))
        parts.append(table_html(med.to_dict("records")))
    report = study / "report" / "index.html"
    if report.is_file():
        parts.append(f'<p><a href="{html.escape(os.path.relpath(report, ctx.out))}">The study\'s report</a>, '
                     "with its findings and their confidence intervals.</p>")
    else:
        parts.append(_note(f"<code>crlkit study report {html.escape(str(study))}</code> writes its full report."))
    return "\n".join(parts)


def section_limits(ctx) -> str:
    from crlkit.data import make_dataset
    from crlkit.identify.impossibility import impossibility_experiment

    rows, first = [], None
    for latents, noise in ctx.sizes.impossibility_settings:
        ds = make_dataset("synthetic", latents=latents, noise=noise, mixing="mlp", mixing_layers=3, seed=ctx.seed)
        res = impossibility_experiment(ds, n=ctx.sizes.impossibility_samples, seed=ctx.seed, n_mc=8)
        ctx.log(f"constraints: d={latents} {noise}: MCC {res['mcc_original']:.2f} -> {res['mcc_rotated']:.2f}")
        first = first or res
        rows.append({"latents": latents, "p(z)": noise, "log p(x), true": res["loglik_original"],
                     "log p(x), entangled": res["loglik_rotated"], "ELBO, true": res["elbo_original"],
                     "ELBO, entangled": res["elbo_rotated"], "ELBO s.e.": res["elbo_se"],
                     "MCC, true": res["mcc_original"], "MCC, entangled": res["mcc_rotated"],
                     "MCC, chance": res["mcc_chance"]})
    fig = plots.impossibility_figure(first["_arrays"]["z"], first["_arrays"]["z_rotated"],
                                     ctx.path("limits", "impossibility.png"),
                                     mcc=(first["mcc_original"], first["mcc_rotated"], first["mcc_chance"]),
                                     elbo=(first["elbo_original"], first["elbo_rotated"], first["elbo_se"]))
    return (
        "<p>The construction (Locatello et al. 2019, Theorem 1): for independent latents, "
        "<code>f = F<sup>-1</sup> &#8728; &Phi; &#8728; R &#8728; &Phi;<sup>-1</sup> &#8728; F</code> (marginal CDFs "
        "F, the Gaussian CDF &Phi;, a rotation R) keeps p(z) exactly. The true generator g and the entangled "
        "g &#8728; f<sup>-1</sup> then give the same p(x), while f mixes every latent into every coordinate.</p>"
        + _fig(ctx, fig, f"d = 2 uniform latents, {ctx.sizes.impossibility_samples} samples (colour: the first "
                         "true latent). Same distribution, same ELBO, a much lower MCC.")
        + table_html(rows)
        + command_html(f"crlkit impossibility --seed {ctx.seed} --samples {ctx.sizes.impossibility_samples} "
                       "--out runs/impossibility")
        + study_findings(ctx)
    )


# ============================================================================================
# 6  Causal representation learning
# ============================================================================================
ASSUMES = {
    "ivae": ("an auxiliary variable u (e.g. a segment label)", "latents conditionally independent given u, "
             "with enough variation of their distribution across u (Khemakhem et al. 2020)"),
    "iflow": ("an auxiliary variable u", "iVAE's model fitted by exact likelihood with a flow (Li et al. 2019)"),
    "contrastive": ("positive pairs (x, x~) with nearby latents", "a known conditional p(z~|z), here Laplace; "
                    "mixing injective (Zimmermann et al. 2021)"),
    "content_style": ("two views sharing content", "content is invariant across views, style changes "
                      "(von Kugelgen et al. 2021); content identified as a block"),
    "interventional": ("pairs before/after an intervention on one latent", "single-node interventions with "
                       "unknown targets (Brehmer et al. 2022)"),
    "vae": ("i.i.d. samples only", "none beyond the data: the impossibility result applies"),
    "beta_vae": ("i.i.d. samples only", "none beyond the data: the impossibility result applies"),
}


#: What each break of crlkit.identify.misspecify.BREAKS does to the data, and the assumption it breaks.
BREAK_EXPLAINED = {
    "few_segments": "u takes only n values (n latents), fewer than the 2n + 1 segments iVAE's and iFlow's "
                    "theorem needs for enough variation of p(z | u).",
    "gaussian_pairs": "positive pairs come from a Gaussian conditional while the model's L1 similarity assumes "
                      "a Laplace one: the conditional is no longer the one the loss is matched to.",
    "not_injective": "the first latent enters the mixing only through |z0|, so its sign is lost: the mixing is "
                     "no longer injective, and no encoder can invert it.",
    "obs_noise": "Gaussian noise of half the observations' mean per-dimension std is added to x: the "
                 "noise-free x = g(z) the proofs assume no longer holds.",
    "dependent": "the latents are linked by a random graph (expected degree 2): they are no longer independent "
                 "(given u), which iVAE, iFlow and contrastive learning's uniform box all assume.",
    "soft": "interventions shift a latent but keep its mechanism (soft) instead of setting it (perfect): "
            "the perfect single-node interventions the interventional method assumes are gone.",
}


def _fnum(v, digits: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{float(v):.{digits}f}"


def misspecify_findings(ctx) -> str:
    """The misspecification table of bench/results/misspecify.json (bench/bench_misspecify.py) and its
    figure, each break beside the same method with its assumption met; a line saying how to make it
    when the file is missing. Every number on it is read from the file."""
    head = "<h3>When an assumption breaks</h3>"
    how = ("<code>python bench/bench_misspecify.py --out runs/bench_misspecify</code> (or "
           "<code>crlkit identify --misspecify --out runs/misspecify</code>), then "
           "<code>python bench/bench_misspecify.py --combine runs/bench_misspecify --out runs/misspecify_table "
           "--json bench/results/misspecify.json</code>")
    path = _shortcut_bench_json(ctx, "misspecify.json")
    if path is None:
        return head + _note(f"No misspecification results were found (bench/results/misspecify.json). Make them: "
                            f"{how}.")
    try:
        obj = json.loads(path.read_text())
        summary = [r for r in obj["summary"] if isinstance(r, dict) and "method" in r and "break" in r]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return head + _note(f"{html.escape(str(path))} could not be read: {html.escape(str(e))}. Remake it: {how}.")
    if not summary:
        return head + _note(f"{html.escape(str(path))} holds no rows. Remake it: {how}.")
    def num(v):
        return None if v is None else float(v)

    r2 = any(r.get("r2_content_mean") is not None for r in summary)
    rows = []
    for r in summary:
        mean, chance = num(r.get("mcc_mean")), num(r.get("chance_mean"))
        row = {"method": r["method"], "break": r["break"], "MCC (mean)": mean,
               "seed range": f"{_fnum(r.get('mcc_min'))} - {_fnum(r.get('mcc_max'))}",
               "MCC, assumption met": num(r.get("met_mcc_mean")), "chance": chance,
               "beats chance": "n/a" if mean is None or chance is None else ("yes" if mean > chance else "no")}
        if r2:
            c, st = r.get("r2_content_mean"), r.get("r2_style_mean")
            row["content R\u00b2 / style R\u00b2"] = "" if c is None else f"{_fnum(c)} / {_fnum(st)}"
        row["seeds"] = r.get("seeds", "")
        row["unmet requirement"] = r.get("mismatch") or "(none: the contract holds)"
        rows.append(row)
    cols = list(rows[0])
    below = [r["method"] for r in summary if r["break"] == "met" and r.get("mcc_mean") is not None
             and r.get("chance_mean") is not None and r["mcc_mean"] <= r["chance_mean"]]
    caveat = (_note(f"With its assumption met, {', '.join(html.escape(m) for m in below)} did not beat chance at "
                    "this budget, so its breaks measure nothing here.") if below else "")
    fig = plots.misspecify_bars(summary, ctx.path("crl", "misspecify.png"))
    breaks = list(dict.fromkeys(r["break"] for r in summary if r["break"] != "met"))
    explained = "".join(f"<li><b>{html.escape(b)}</b>: "
                        f"{html.escape(BREAK_EXPLAINED.get(b, 'see crlkit.identify.misspecify'))}</li>" for b in breaks)
    meta = "; ".join(f"{k}: {obj[k]}" for k in ("date", "combined_on") if isinstance(obj.get(k), str))
    return (
        head
        + "<p>Each identifiable method on its own setting with its contract met, then on data that breaks exactly "
          "one of the assumptions its contract names (<code>crlkit.identify.misspecify</code>); every break runs "
          "on the same seeds as the method's met row. Read each break against the chance level and against the "
          "same method with its assumption met. The breaks:</p>"
        + f"<ul>{explained}</ul>"
        + _fig(ctx, fig, "Blue: the assumption met. A break's bar is green if it still beats the chance tick, "
                         "vermillion if not; the hollow diamond is the same method with its assumption met. "
                         "For content_style the MCC is over the content block only; its guarantee is about the "
                         "block, so read its R\u00b2 columns in the table (content high, style low).")
        + table_html(rows, columns=cols)
        + caveat
        + _note(f"Read from <code>{html.escape(os.path.relpath(path))}</code>, not computed on this page (CPU-sized "
                "runs; bench/RESULTS_identify.md gives their sizes and how the budgets were chosen). "
                + html.escape(meta))
        + command_html(str(obj.get("command") or "python bench/bench_misspecify.py   # (the file names no command)"))
        + _note("The runs it combines: <code>python bench/bench_misspecify.py --out runs/bench_misspecify</code> "
                "(add <code>--full</code> for each method's paper setting and steps, GPU-sized). One method's "
                "rows alone: <code>crlkit identify --misspecify --method contrastive --out runs/misspecify</code>.")
    )


def section_crl(ctx) -> str:
    from crlkit.identify.benchmark import run_identify

    ivae_s, vae_s, con_s = ctx.sizes.identify_steps
    seg = dict(latents=4, segments=20, mixing_layers=1)
    runs = [("ivae", "iVAE, 20 segments, linear mixing", {**seg, "steps": ivae_s}),
            ("vae", "VAE, the same data without u", {**seg, "steps": vae_s}),
            ("contrastive", "contrastive, Laplace pairs, 2-layer MLP", dict(latents=5, mixing_layers=2,
                                                                           steps=con_s, batch_size=256))]
    table = []
    for i, (method, label, opts) in enumerate(runs):
        ctx.log(f"identifiability: {label}")
        res = run_identify(method, out_dir=ctx.out / "runs" / f"identify_{i}_{method}", seed=ctx.seed,
                           eval_samples=ctx.sizes.identify_eval, nonlinear_max_train=300, restarts=1, **opts)
        table.append({"label": label, "method": method, "mcc": res["mcc"], "baseline_mcc": res["baseline_mcc"],
                      "steps": res["steps"], "latents": res["latents"], "seconds": res["train_seconds"]})
    fig = plots.mcc_against_chance(table, ctx.path("crl", "mcc.png"))
    methods = [{"method": m, "needs": n, "assumes": a} for m, (n, a) in ASSUMES.items()]
    shown = [{"run": r["label"], "MCC": r["mcc"], "chance (random rotation)": r["baseline_mcc"],
              "latents": r["latents"], "steps": r["steps"], "seconds": int(round(r["seconds"]))} for r in table]
    return (
        "<h3>The methods and what each assumes</h3>" + table_html(methods)
        + f"<h3>MCC against chance</h3><p>Trained now at reduced size (seed {ctx.seed}). MCC is the mean "
          "absolute correlation of matched true and learned latents; chance is the MCC of a random rotation of "
          "the true latents, an entangled solution with the same distribution.</p>"
        + _fig(ctx, fig, "MCC is 1 when the latents are recovered up to permutation and scaling. Green bars beat "
                         "the chance tick; vermillion bars do not.")
        + table_html(shown)
        + command_html("crlkit identify --compare --out runs/identify   # the full comparison")
        + misspecify_findings(ctx)
    )


# ============================================================================================
# the dataset gallery
# ============================================================================================
def section_datasets(ctx) -> str:
    from crlkit.report.datasets import gallery

    return gallery(ctx.out, seed=ctx.seed, n=ctx.sizes.gallery_samples, steps=ctx.sizes.traversal_steps,
                   log=ctx.log)


# (id, title, why, function) in page order
SECTIONS: tuple[tuple[str, str, str, Callable], ...] = (
    ("fail", "1. How deep models fail",
     "A classifier trained where cows stand on grass and camels on sand can be right 95% of the time by "
     "looking at the ground. Nothing in its training accuracy shows that it learned the background instead "
     "of the animal; it fails as soon as the two come apart. Below, the failure and the fixes, measured.",
     section_fail),
    ("causal", "2. The causal view",
     "The failure has a cause that a graph makes plain: the label and the background share a hidden common "
     "cause. A method escapes only by using information about that graph, and each fix uses a different "
     "piece of it.",
     section_causal),
    ("world", "3. The model of the world",
     "crlkit models every dataset the same way: latent causes drawn from a causal model, then rendered by a "
     "mixing function into what we observe. Because the ground truth is kept, we can intervene, ask "
     "counterfactuals, and score any learned representation against the true causes.",
     section_world),
    ("disentangle", "4. Disentanglement",
     "If the causes were recovered, one latent per factor, shortcuts could be named and removed. "
     "Disentanglement methods try to do this without labels, by shaping the latent space of a VAE.",
     section_disentangle),
    ("limits", "5. Fundamental constraints",
     "Without supervision, this cannot work in general: for any generator there is another with the same "
     "distribution of data and entangled latents, so no likelihood can prefer the disentangled one. Here "
     "the construction is built and measured.",
     section_limits),
    ("crl", "6. Causal representation learning",
     "Identifiability returns when the data carry more structure than i.i.d. samples: an auxiliary variable, "
     "paired observations, interventions. Each method states what it needs; given it, the learned latents "
     "match the true ones up to simple transformations, well above the chance of an entangled solution.",
     section_crl),
    ("datasets", "The datasets",
     "Every dataset is a latent causal model rendered to observations, with its factors and graph kept. One "
     "row each; the name opens its page.",
     section_datasets),
)
SECTION_IDS = tuple(s[0] for s in SECTIONS)


# Sections that depend on no other section's results and run in a second process while the
# first runs the rest (the demo's models train single-threaded, so two cores give two streams).
INDEPENDENT = ("crl", "datasets")


def _run_section(sid: str, ctx: DemoContext) -> tuple[str, bool, float, float]:
    """Build one section: ``(html, failed, wall seconds, cpu seconds)``; a section that raises
    becomes its traceback, so one broken section never loses the rest of the page."""
    import torch

    fn = {s[0]: s[3] for s in SECTIONS}[sid]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the demo's small models train fastest single-threaded
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        with style.quiet():
            frag, failed = fn(ctx), False
    except Exception:  # noqa: BLE001
        frag, failed = f'<pre class="err">{html.escape(traceback.format_exc())}</pre>', True
        ctx.log(traceback.format_exc())
    finally:
        torch.set_num_threads(threads)
    return frag, failed, time.perf_counter() - t0, time.process_time() - c0


def _print_log(msg: str) -> None:
    print(f"  {msg}", flush=True)


def _run_in_child(sids: tuple, out: str, seed: int, quick: bool, study_dir) -> dict:
    """The independent sections, in a worker process (its progress lines print directly)."""
    ctx = DemoContext(out=Path(out), seed=seed, sizes=QUICK if quick else FULL, quick=quick,
                      study_dir=Path(study_dir) if study_dir else None, log=_print_log)
    return {sid: _run_section(sid, ctx) for sid in sids}


def build_demo(out, *, seed: int = 0, quick: bool = False, only=None, study_dir=None, log=print,
               parallel: bool = True) -> dict:
    """Write the demo page ``out/index.html``; returns ``{"path", "failed", "seconds", "sections"}``.

    A section that raises is shown with its traceback and counted in ``failed``; the others are
    kept. The page is rewritten after every section, so a long run can be watched. With
    ``parallel``, the ``INDEPENDENT`` sections run in a second process meanwhile.
    """
    from crlkit.errors import CrlkitError

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if only:
        unknown = [s for s in only if s not in SECTION_IDS]
        if unknown:
            raise CrlkitError(f"--only: unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTION_IDS)}")
    ctx = DemoContext(out=out, seed=seed, sizes=QUICK if quick else FULL, quick=quick,
                      study_dir=Path(study_dir) if study_dir else None, log=lambda m: log(f"  {m}"))
    todo = [s for s in SECTIONS if not only or s[0] in only]
    runs = out / "runs"
    if runs.is_dir():  # the training runs of an earlier build of this page: start afresh
        import shutil

        shutil.rmtree(runs)
    t_all = time.perf_counter()
    subtitle = ("Causal representation learning, from shortcuts to identifiability"
                + (" (quick: reduced sizes)" if quick else "") + f"; seed {seed}")
    background = tuple(s[0] for s in todo if s[0] in INDEPENDENT) if parallel and len(todo) > 1 else ()
    future, pool = None, None
    if background:
        import concurrent.futures
        import multiprocessing

        pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        future = pool.submit(_run_in_child, background, str(out), seed, quick,
                             str(study_dir) if study_dir else None)
        log(f"[background] {', '.join(background)} in a second process")
    results: dict[str, tuple] = {}

    def page():
        shown = [{"id": sid, "title": title, "why": why, "html": results[sid][0], "seconds": results[sid][2]}
                 for sid, title, why, _ in todo if sid in results]
        write_page(out / "index.html", "crlkit: causal representation learning", shown, subtitle=subtitle)

    try:
        fore = [s for s in todo if s[0] not in background]
        for i, (sid, title, _, _) in enumerate(fore, 1):
            log(f"[{i}/{len(fore)}] {title}")
            results[sid] = _run_section(sid, ctx)
            log(f"      done in {results[sid][2]:.1f} s (cpu {results[sid][3]:.1f} s)")
            page()
        if future is not None:
            try:
                results.update(future.result())
            except Exception:  # noqa: BLE001 - the worker died: its sections show why
                err = f'<pre class="err">{html.escape(traceback.format_exc())}</pre>'
                results.update({sid: (err, True, 0.0, 0.0) for sid in background})
            for sid in background:
                log(f"[background] {sid} done in {results[sid][2]:.1f} s (cpu {results[sid][3]:.1f} s)")
            page()
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return {"path": out / "index.html", "failed": sum(r[1] for r in results.values()),
            "seconds": time.perf_counter() - t_all, "sections": [s[0] for s in todo]}
