"""The sections of the ``crlkit demo`` walk-through page that show the data, training,
evaluation and impossibility commands: each ``*_section(ctx) -> str`` returns an HTML fragment
and writes its images under ``ctx.out_dir`` (the page itself: :mod:`crlkit.commands.demo`).
"""

from __future__ import annotations

import html
import json
import time
from pathlib import Path

import numpy as np

from crlkit.errors import CrlkitError


# --------------------------------------------------------------------------------------------
# datasets
# --------------------------------------------------------------------------------------------
def data_section(ctx) -> str:
    """Sample grids of every registered dataset with their factors, and the causal graphs."""
    from crlkit.data import list_datasets
    from crlkit.data.show import dataset_from_assignments, is_image, show_dataset, title
    from crlkit.report.html import figure_html

    out = Path(ctx.out_dir) / "data"
    parts = ["<p>Every crlkit dataset is a latent causal model whose factors are rendered "
             "(mixed) into observations, with the ground truth kept. Below: samples of each "
             "registered dataset, latent traversals of the image datasets (one factor per "
             "row), and the causal graph where the factors have one.</p>"]
    for name in list_datasets():
        t0 = time.perf_counter()
        try:
            ds = dataset_from_assignments(name, [])
        except Exception as e:  # noqa: BLE001 - show the failure, keep the page
            parts.append(f"<h3>{html.escape(name)}</h3><p>could not build: {html.escape(str(e))}</p>")
            continue
        written = show_dataset(ds, out / name, n=32 if is_image(ds) else 300, seed=ctx.seed, steps=8)
        parts.append(f"<h3>{html.escape(name)}</h3><p>{html.escape(title(ds))}; observations "
                     f"{tuple(ds.observation_shape)}</p>")
        for key, caption in (("samples", "samples"), ("traversals", "traversals"), ("graph", "causal graph")):
            if key in written:
                rel = written[key].relative_to(Path(ctx.out_dir)).as_posix()
                parts.append(figure_html(rel, f"{name}: {caption}", width=640 if key != "graph" else 360))
        ctx.log(f"data: {name} in {time.perf_counter() - t0:.1f} s")
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------
DEMO_STEPS = 250       # first leg of the preview (~90 s single-threaded on the loaded 2-core CPU)
DEMO_MORE = 100        # then resume by this many steps while the model still ignores its latents,
DEMO_MAX_STEPS = 650   # up to this many steps in all
DEMO_BETA = 4.0
DEMO_LR = 1e-3         # 10x the study's 1e-4 so that a short preview learns position and scale


def train_section(ctx) -> str:
    """Train beta-VAE on dSprites briefly; show the loss curve, traversals, reconstructions.

    Leaves ``ctx.shared["model_dir"]`` and ``ctx.shared["dataset"]`` for the evaluation section.
    """
    import torch

    from crlkit.report.html import figure_html, table_html
    from crlkit.report.traversals import plot_loss_curve, write_traversals
    from crlkit.train import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_dir = Path(ctx.out_dir) / "train_beta_vae"
        steps = int(getattr(ctx, "train_steps", 0) or DEMO_STEPS)
        max_steps = max(steps, int(getattr(ctx, "train_max_steps", 0) or DEMO_MAX_STEPS))
        overrides = {"beta": DEMO_BETA, "lr": DEMO_LR, "log_every": 25, "checkpoint_every": 50}
        ctx.log(f"training beta_vae (beta={DEMO_BETA:g}, lr={DEMO_LR:g}) on dsprites for {steps} steps")
        summary = train("beta_vae", "dsprites", steps=steps, seed=ctx.seed, out_dir=run_dir, overrides=overrides,
                        progress=False)
        # A VAE on dSprites first ignores its latents (KL ~ 0, the decoder draws the mean image)
        # for a seed-dependent number of steps; a preview continues (resuming) until it stops.
        resumed = []
        while summary["terms"]["kl"] < 1.0 and steps < max_steps:
            steps = min(steps + DEMO_MORE, max_steps)
            ctx.log(f"KL still {summary['terms']['kl']:.2f} nats: resuming to {steps} steps")
            summary = train("beta_vae", "dsprites", steps=steps, seed=ctx.seed, out_dir=run_dir,
                            overrides=overrides, progress=False, resume=True)
            resumed.append(steps)
        plot_loss_curve(run_dir / "log.csv", Path(ctx.out_dir) / "train_loss.png")
        info = write_traversals(run_dir, Path(ctx.out_dir) / "train_traversals.png", seed=ctx.seed)
    finally:
        torch.set_num_threads(threads)
    ctx.shared["model_dir"] = str(run_dir)
    ctx.shared["dataset"] = "dsprites"
    active = [j for j in info["order"] if info["kl"][j] > 0.1]
    rows = [{"model": "beta_vae", "beta": DEMO_BETA, "steps": steps, "batch": 64,
             "final loss": summary["final_loss"], "reconstruction": summary["terms"]["reconstruction"],
             "KL": summary["terms"]["kl"], "images/s": round(summary["images_per_second"]),
             "active latents (KL > 0.1)": len(active)}]
    cmd = (f"crlkit train --model beta_vae --dataset dsprites --steps {steps} --seed {ctx.seed} "
           f"--out {run_dir} --set beta={DEMO_BETA:g} --set lr={DEMO_LR:g}")
    legs = (f" The first {int(getattr(ctx, 'train_steps', 0) or DEMO_STEPS)} steps left the latents unused, so "
            f"the run was resumed from its checkpoint to {', '.join(map(str, resumed))} steps (the same weights "
            "as one uninterrupted run)." if resumed else "")
    return (
        "<p>A beta-VAE (the standard conv encoder/decoder of Locatello et al. 2019, 10 latents, "
        f"Bernoulli decoder, Adam, batch 64) trained for {steps} steps on procedurally rendered dSprites. "
        f"The study trains for 300,000 steps at lr 1e-4; this preview uses lr {DEMO_LR:g}. A VAE on dSprites "
        "first ignores its latents (KL near 0, the decoder draws the average image) for a seed-dependent "
        "number of steps, visible in the KL curve; after that, position and scale appear first, while shape "
        f"and orientation need far longer training.{legs}</p>"
        f"<pre>{html.escape(cmd)}\ncrlkit traverse {html.escape(str(run_dir))} --out traversals.png</pre>"
        + table_html(rows)
        + figure_html("train_loss.png", "Training loss terms per step (smoothed line: 25-step mean).", width=760)
        + figure_html("train_traversals.png",
                      "Each row varies one latent from -2 to 2 with the others fixed at the code of one image "
                      "(rows sorted by KL to the prior; near-zero KL means the latent is unused). "
                      "Bottom: inputs and reconstructions.", width=620)
        + f"<p>Run directory: <code>{html.escape(str(run_dir))}</code> "
          f"(<code>summary.json</code>: <code>{html.escape(json.dumps({k: summary[k] for k in ('steps', 'final_loss')}))}</code>)."
          " The next section scores this model.</p>"
    )


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------
def _array_suite(codes, factors, n_train, seed) -> dict:
    """The default suite on given arrays (for the identity / random contrast rows)."""
    from crlkit.metrics.evaluate import DEFAULT_METRICS, _ARRAY_METRICS, _Split

    split = _Split(codes, factors, n_train)
    out: dict = {}
    for m in DEFAULT_METRICS:
        out.update(_ARRAY_METRICS[m](split, {"dci_max_bins": None, "seed": seed, "n_train": n_train,
                                             "n_test": len(codes) - n_train}))
    return out


SHOWN = ("mig", "dci_disentanglement", "dci_completeness", "dci_informativeness", "sap", "modularity",
         "explicitness", "irs", "gaussian_total_correlation")


def evaluate_section(ctx) -> str:
    """Score the demo's trained model (``ctx.shared["model_dir"]``) on its dataset with the
    default suite at a reduced sample size, next to the identity representation (the true
    factors) and an independent random one."""
    from crlkit.data import make_dataset
    from crlkit.metrics.evaluate import evaluate
    from crlkit.files import atomic_write_json
    from crlkit.report.html import table_html

    n_train, n_test = 1000, 500
    rows = []
    model_dir = ctx.shared.get("model_dir")
    dataset_name = ctx.shared.get("dataset", "dsprites")
    dataset = make_dataset(dataset_name)
    rng = np.random.default_rng(ctx.seed)
    factors = dataset.sample_factors(n_train + n_test, rng)
    notes = []
    if model_dir:
        import crlkit

        model = crlkit.load(model_dir)
        timings: dict = {}
        t = time.perf_counter()
        scores = evaluate(model, dataset, seed=ctx.seed, n_train=n_train, n_test=n_test, timings=timings)
        ctx.log(f"scored {model_dir} in {time.perf_counter() - t:.1f} s")
        atomic_write_json(Path(ctx.out_dir) / "metrics.json", scores, sort_keys=True)
        rows.append({"representation": f"trained model ({Path(model_dir).name})", **scores})
        notes.append(f"The trained model's scores are also in <code>metrics.json</code> "
                     f"(encoding {timings.get('encode', 0):.1f} s, DCI {timings.get('dci', 0):.1f} s).")
    else:
        notes.append("No trained model was handed over by the training section, so only the reference "
                     "representations are scored.")
    k = factors.shape[1]
    ident = factors.astype(np.float64)
    noise = rng.standard_normal((len(factors), max(k, 2)))
    rows.append({"representation": "identity (the true factors)", **_array_suite(ident, factors, n_train, ctx.seed)})
    rows.append({"representation": "independent Gaussian noise", **_array_suite(noise, factors, n_train, ctx.seed)})
    table = table_html(rows, columns=["representation", *[c for c in SHOWN if c in rows[0]]])
    return (f"<p>Every metric of <code>crlkit.metrics</code> compares a representation with the ground-truth "
            f"factors of <b>{html.escape(dataset_name)}</b>; here on {n_train} training and {n_test} test samples "
            f"(disentanglement_lib uses 10,000 / 5,000), posterior means, disentanglement_lib's definitions. "
            f"The identity representation shows the ceiling of each score and the noise row its chance level: "
            f"MIG and IRS of the identity stay below 1 because 20 equal-width bins merge the 32 / 40 values of "
            f"position and orientation, SAP cannot reach 1 with a linear classifier on many-valued factors, "
            f"modularity and IRS of noise are well above 0 by definition, and total correlation is "
            f"lower-is-better.</p>"
            + table + "<p>" + " ".join(notes) + "</p>"
            + "<p>Command line: <code>crlkit evaluate RUN_DIR --out metrics.json</code> "
              "(add <code>--metrics beta_vae factor_vae mcc</code> for the others).</p>")


# --------------------------------------------------------------------------------------------
# impossibility
# --------------------------------------------------------------------------------------------
def impossibility_section(ctx) -> str:
    """The figure for d = 2 uniform latents and a table over a few settings (a few seconds)."""
    from crlkit.files import atomic_write_json
    from crlkit.report.html import figure_html, table_html
    from crlkit.report.impossibility import impossibility_results, json_safe, plot_impossibility

    out = Path(ctx.out_dir) / "impossibility"
    out.mkdir(parents=True, exist_ok=True)
    rows, first = [], None
    for latents, noise in ((2, "uniform"), (5, "laplace"), (10, "gaussian")):
        res = impossibility_results(seed=ctx.seed, latents=latents, noise=noise, mixing="mlp", mixing_layers=3,
                                    samples=3000, mc_draws=8)
        ctx.log(f"impossibility d={latents} {noise}: MCC {res['mcc_original']:.2f} -> {res['mcc_rotated']:.2f}")
        first = first or res
        rows.append({"latents": latents, "p(z)": noise, "log p(x) original": res["loglik_original"],
                     "log p(x) entangled": res["loglik_rotated"], "ELBO original": res["elbo_original"],
                     "ELBO entangled": res["elbo_rotated"], "ELBO s.e.": res["elbo_se"],
                     "MCC original": res["mcc_original"], "MCC entangled": res["mcc_rotated"],
                     "MCC chance (random rotation)": res["mcc_chance"], "MIG original": res["mig_original"],
                     "MIG entangled": res["mig_rotated"]})
    plot_impossibility(first, out / "impossibility.png")
    atomic_write_json(out / "results.json", json_safe(first))
    parts = [
        "<p>Locatello et al. (2019), Theorem 1: for independent latents, "
        "<code>f = F<sup>-1</sup>&#8728;&Phi;&#8728;R&#8728;&Phi;<sup>-1</sup>&#8728;F</code> keeps p(z) exactly, so the "
        "true generator g (latents z) and the entangled generator g&#8728;f<sup>-1</sup> (latents f(z)) give the "
        "same p(x): identical exact log-likelihoods and ELBOs within Monte Carlo error, while the entangled "
        "model's perfect encoder has a much lower MCC. Nothing in the data tells them apart.</p>",
        figure_html("impossibility/impossibility.png",
                    "d = 2, uniform latents, 3-layer invertible MLP mixing, 45-degree rotation"),
        table_html(rows),
        f"<p><code>crlkit impossibility --seed {ctx.seed} --samples 3000 --out DIR</code> reproduces the first "
        "row (<code>--latents 5 --noise laplace</code> and <code>--latents 10 --noise gaussian</code> the others).</p>",
    ]
    model_dir = ctx.shared.get("model_dir")
    if model_dir:
        try:
            res = impossibility_results(seed=ctx.seed, model_dir=str(model_dir), samples=300, mc_draws=4)
            parts.append("<p>The model trained above (prior N(0, I), so f = R): the rotated model has the same "
                         "ELBO within Monte Carlo error.</p>")
            parts.append(table_html([{"model": str(model_dir), "ELBO original": res["elbo_original"],
                                      "ELBO rotated": res["elbo_rotated"], "ELBO s.e.": res["elbo_se"],
                                      "MCC original": res["mcc_original"], "MCC rotated": res["mcc_rotated"],
                                      "MIG original": res["mig_original"], "MIG rotated": res["mig_rotated"]}]))
        except CrlkitError as e:  # e.g. the trained model is not a VAE
            parts.append(f"<p><em>trained model skipped: {html.escape(str(e))}</em></p>")
    return "\n".join(parts)
