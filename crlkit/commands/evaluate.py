"""``crlkit evaluate``: score a trained model with the disentanglement / identifiability
metrics (:func:`crlkit.metrics.evaluate`) and write them as one JSON file.

    crlkit evaluate runs/bvae --out runs/bvae/metrics.json
    crlkit evaluate runs/bvae --metrics mig dci factor_vae --samples 10000 --test-samples 5000 --seed 0 \\
        --out metrics.json
"""

from __future__ import annotations

import argparse
import time

from crlkit.commands._options import (HelpFormatter, add_device, add_out, add_progress, add_samples, add_seed,
                                      add_threads, examples, torch_threads)
from crlkit.report.sections import evaluate_section as demo_section  # noqa: F401 (a section of `crlkit demo`)


def _dci_bins(text: str):
    """argparse type of ``--dci-bins``: ``exact`` (None) or an integer >= 2."""
    if text == "exact":
        return None
    try:
        bins = int(text)
    except ValueError:
        bins = 0
    if not 2 <= bins <= 10**6:
        raise argparse.ArgumentTypeError(f"expected 'exact' or an integer in [2, 1000000]; got {text!r}")
    return bins


_dci_bins.kind, _dci_bins.lo, _dci_bins.hi = "int", 2, 10**6  # for the flag property test (plus 'exact')


def register(sub) -> None:
    from crlkit.metrics.evaluate import DEFAULT_METRICS, METRIC_NAMES
    from crlkit.metrics.sampled import REPRESENTATION_MODES

    p = sub.add_parser("evaluate", help="score a trained model with disentanglement / identifiability metrics",
                       description="Encode --samples + --test-samples samples of the run's dataset once and compute "
                                   "the chosen metrics (disentanglement_lib definitions; posterior mean by default). "
                                   "BetaVAE and FactorVAE draw their own --samples / --test-samples points. Writes "
                                   "one flat JSON of scores (non-finite values as null, named under \"nonfinite\").",
                       epilog=examples("crlkit evaluate runs/bvae --out runs/bvae/metrics.json",
                                       "crlkit evaluate runs/bvae --metrics mig dci factor_vae --samples 2000 "
                                       "--test-samples 1000 --out runs/bvae/metrics_small.json"),
                       formatter_class=HelpFormatter)
    p.add_argument("run_dir", help="run directory written by `crlkit train`")
    add_out(p, help="output JSON file, e.g. RUN_DIR/metrics.json")
    p.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS), choices=METRIC_NAMES, metavar="METRIC",
                   help=f"metrics to compute (default: {' '.join(DEFAULT_METRICS)}); choices: {', '.join(METRIC_NAMES)}")
    add_seed(p, help="seed of the evaluation samples")
    add_samples(p, default=10000, minimum=10, help="training samples (disentanglement_lib: 10000)")
    add_samples(p, default=5000, minimum=2, help="test samples (disentanglement_lib: 5000)", flag="--test-samples")
    p.add_argument("--mode", default="mean", choices=REPRESENTATION_MODES,
                   help="representation: the posterior mean (default) or a sample from the posterior")
    p.add_argument("--dci-bins", type=_dci_bins, default=None, metavar="exact|N",
                   help="thresholds searched by DCI's boosted trees: 'exact' (default: every threshold, the same "
                        "model as scikit-learn's) or an integer number of quantile bins >= 2 (faster, approximate)")
    add_device(p, help="where to encode")
    add_threads(p, help="CPU threads for encoding and DCI's tree search (scores do not depend on it)")
    add_progress(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import crlkit
    from crlkit.metrics.evaluate import evaluate
    from crlkit.files import atomic_write_json
    from crlkit.train import load_dataset

    model = crlkit.load(args.run_dir, device=args.device)
    dataset = load_dataset(args.run_dir)
    timings: dict = {}
    t0 = time.perf_counter()
    with torch_threads(args.threads):
        scores = evaluate(model, dataset, args.metrics, seed=args.seed, n_train=args.samples,
                          n_test=args.test_samples, mode=args.mode, dci_max_bins=args.dci_bins, timings=timings,
                          device=args.device, n_jobs=args.threads, progress=args.progress)
    atomic_write_json(args.out, scores, sort_keys=True)  # strict: inf/nan as null, named under "nonfinite"
    width = max(len(k) for k in scores)
    for k in sorted(scores):
        print(f"{k:<{width}}  {scores[k]:.4f}")
    spent = ", ".join(f"{k} {v:.1f}s" for k, v in timings.items() if k != "n_encoded")
    print(f"wrote {args.out} ({time.perf_counter() - t0:.1f} s: {spent}; {timings.get('n_encoded', 0)} images encoded)")
    return 0
