"""``crlkit evaluate``: score a trained model with the disentanglement / identifiability
metrics, and the demo's evaluation section.

    crlkit evaluate runs/bvae --out runs/bvae/metrics.json
    crlkit evaluate runs/bvae --metrics mig dci factor_vae --n-train 10000 --n-test 5000 --seed 0 \\
        --out metrics.json
"""

from __future__ import annotations

import html
import time
from pathlib import Path

import numpy as np

from crlkit.errors import CrlkitError


def register(sub) -> None:
    from crlkit.metrics.evaluate import DEFAULT_METRICS, METRIC_NAMES

    p = sub.add_parser("evaluate", help="score a trained model with disentanglement / identifiability metrics",
                       description="Encode n_train + n_test samples of the run's dataset once and compute the "
                                   "chosen metrics (disentanglement_lib definitions; posterior mean by default). "
                                   "Writes a flat JSON of scores.")
    p.add_argument("run_dir", help="run directory written by `crlkit train`")
    p.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS), metavar="METRIC",
                   help=f"metrics to compute (default: {' '.join(DEFAULT_METRICS)}); choices: {', '.join(METRIC_NAMES)}")
    p.add_argument("--seed", type=int, default=0, help="seed of the evaluation samples (default 0)")
    p.add_argument("--n-train", type=int, default=10000, help="training samples (default 10000, as disentanglement_lib)")
    p.add_argument("--n-test", type=int, default=5000, help="test samples (default 5000)")
    p.add_argument("--mode", default="mean", help="representation: mean (default) or sampled")
    p.add_argument("--dci-bins", default="exact",
                   help="thresholds searched by DCI's boosted trees: 'exact' (default: every threshold, the same "
                        "model as scikit-learn's) or an integer number of quantile bins (faster, approximate)")
    p.add_argument("--jobs", type=int, default=1, help="threads for DCI's tree search (default 1)")
    p.add_argument("--device", default="cpu", help="device to encode on (default cpu)")
    p.add_argument("--out", required=True, help="output JSON file, e.g. RUN_DIR/metrics.json")
    p.set_defaults(func=run)


def _parse_bins(value: str):
    if value == "exact":
        return None
    try:
        bins = int(value)
    except ValueError:
        raise CrlkitError(f"--dci-bins must be an integer >= 2 or 'exact'; got {value!r}") from None
    if bins < 2:
        raise CrlkitError(f"--dci-bins must be an integer >= 2 or 'exact'; got {value!r}")
    return bins


def run(args) -> int:
    import crlkit
    from crlkit.metrics.evaluate import METRIC_NAMES, evaluate
    from crlkit.metrics._checks import choice
    from crlkit.files import atomic_write_json
    from crlkit.train import load_dataset

    for m in args.metrics:  # fail on a typo before loading anything
        choice("metric", m, METRIC_NAMES)
    bins = _parse_bins(args.dci_bins)
    model = crlkit.load(args.run_dir, device=args.device)
    dataset = load_dataset(args.run_dir)
    timings: dict = {}
    t0 = time.perf_counter()
    scores = evaluate(model, dataset, args.metrics, seed=args.seed, n_train=args.n_train, n_test=args.n_test,
                      mode=args.mode, dci_max_bins=bins, timings=timings, device=args.device,
                      n_jobs=args.jobs)
    atomic_write_json(args.out, scores, sort_keys=True)  # a collapsed latent's TC = inf is written as null
    width = max(len(k) for k in scores)
    for k in sorted(scores):
        print(f"{k:<{width}}  {scores[k]:.4f}")
    spent = ", ".join(f"{k} {v:.1f}s" for k, v in timings.items() if k != "n_encoded")
    print(f"wrote {args.out} ({time.perf_counter() - t0:.1f} s: {spent}; {timings.get('n_encoded', 0)} images encoded)")
    return 0


# --------------------------------------------------------------------------------------
# demo section
# --------------------------------------------------------------------------------------
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


def demo_section(ctx) -> str:
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
