"""``crlkit identify``: train an identifiable causal representation learning method (or a VAE
baseline) on its synthetic setting and score it against the random-rotation chance level;
``--compare`` runs them side by side.

    crlkit identify --method ivae --latents 5 --segments 40 --mixing-layers 3 --seed 0 --out runs/ivae
    crlkit identify --compare --out runs/identify_compare
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from crlkit.errors import CrlkitError


def register(sub) -> None:
    from crlkit.identify.benchmark import CONDITIONALS, METHODS

    p = sub.add_parser(
        "identify", help="train an identifiable CRL method and score it against the rotation baseline",
        description="Train an identifiable method (ivae, iflow, contrastive, content_style, interventional) or a VAE "
                    "baseline on a synthetic latent-model + invertible-MLP setting through the shared trainer; "
                    "write OUT/results.json with MCC, linear/nonlinear R2 and the random-rotation baseline. "
                    "--compare runs all methods and writes OUT/comparison.{csv,md,png}.")
    p.add_argument("--method", default=None, help=f"one of: {', '.join(METHODS)}")
    p.add_argument("--compare", action="store_true", help="run every method side by side (table and plot)")
    p.add_argument("--quick", action="store_true", help="with --compare: small demo-sized settings")
    p.add_argument("--latents", type=int, default=None, help="number of true latents (method default if omitted)")
    p.add_argument("--segments", type=int, default=None, help="iVAE segments / auxiliary values (default 40)")
    p.add_argument("--mixing-layers", type=int, default=None, help="layers of the invertible MLP; 1 = linear")
    p.add_argument("--mixing-activation", default=None,
                   help="activation of the mixing MLP: lrelu (default; slope 0.1 for iVAE, 0.2 otherwise) or "
                        "xtanh (tanh(h) + slope h, the data of the iVAE reference code)")
    p.add_argument("--steps", type=int, default=None, help="training steps (method default if omitted)")
    p.add_argument("--conditional", default="laplace",
                   help=f"contrastive pairs and similarity: laplace (L1, axes identified) or gaussian (L2); "
                        f"one of {', '.join(CONDITIONALS)}")
    p.add_argument("--restarts", type=int, default=None,
                   help="ivae, iflow, interventional: train this many restarts and keep the best by a "
                        "label-free held-out score (ivae: ELBO; iflow: log-likelihood; interventional: balance "
                        "of the inferred targets, stopping at the first balanced run); default 1 (ivae, iflow), "
                        "at most 3 (interventional)")
    p.add_argument("--posterior", default=None,
                   help="ivae: q(z|x) with a full covariance (default) or diagonal (mean-field, the paper's); "
                        "one of diagonal, full")
    p.add_argument("--decoder-var", type=float, default=None,
                   help="ivae: fixed variance of p(x|z) in whitened units (default 0.01, the paper's)")
    p.add_argument("--importance-samples", type=int, default=None,
                   help="ivae: train on the importance-weighted bound with this many samples of q(z|x) per x "
                        "(Burda et al. 2016; default 8); 1 is the ELBO")
    p.add_argument("--known-targets", action="store_true",
                   help="interventional: give the model each pair's intervened node (CauCA's known targets) "
                        "instead of inferring it (ILCM's unknown targets, the default)")
    p.add_argument("--no-refine", action="store_true",
                   help="interventional, unknown targets: skip the refinement with self-assigned targets that "
                        "otherwise takes the last quarter of the steps (stage 1 alone, for ablations)")
    p.add_argument("--recon-weight", type=float, default=None,
                   help="interventional: weight of the reconstruction term that keeps the code injective "
                        "(default 1; 0 turns it off, for ablations)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--eval-samples", type=int, default=5000, help="held-out samples scored (default 5000)")
    p.add_argument("--graph-pairs", type=int, default=None,
                   help="interventional: fresh pairs stage 2 reads the latent graph from (default 50000)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads while training (default 1: small MLPs run fastest single-threaded)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--allow-mismatch", action="store_true",
                   help="run even when the data breaks an assumption of the method's contract (see `crlkit methods`); "
                        "results.json then carries the mismatch")
    p.add_argument("--misspecify", action="store_true",
                   help="run each identifiable method (or --method) with its assumptions met and with each broken in "
                        "turn; writes OUT/misspecify.{csv,md,png} (--steps sets every method's steps)")
    p.add_argument("--out", default="runs/identify", help="output directory (default runs/identify)")
    p.set_defaults(func=run)


def run(args) -> int:
    from crlkit.identify.benchmark import METHODS, run_identify
    from crlkit.registry import unknown_choice

    out = Path(args.out)
    if args.misspecify:
        from crlkit.identify.misspecify import misspecify_command

        return misspecify_command(args, out)
    if args.compare:
        if args.method:
            raise CrlkitError("give either --method NAME or --compare, not both")
        from crlkit.identify.compare import default_rows, run_compare

        rows = default_rows(steps=args.steps, latents=args.latents, segments=args.segments,
                            mixing_layers=args.mixing_layers, quick=args.quick)
        table = run_compare(out, seed=args.seed, rows=rows, device=args.device, log=print,
                            eval_samples=args.eval_samples, threads=args.threads)
        print((out / "comparison.md").read_text())
        print(f"wrote {out / 'comparison.csv'}, {out / 'comparison.md'}, {out / 'comparison.png'} ({len(table)} runs)")
        return 0
    if args.threads is not None and args.threads < 1:
        raise CrlkitError(f"--threads must be >= 1; got {args.threads}")
    if not args.method:
        raise CrlkitError(f"--method is required (one of: {', '.join(METHODS)}), or use --compare")
    if args.method not in METHODS:
        raise CrlkitError(unknown_choice("method", args.method, METHODS))
    data_options = None
    if args.mixing_activation is not None:
        from crlkit.mixing.mlp import ACTIVATIONS

        if args.mixing_activation not in ACTIVATIONS:
            raise CrlkitError(unknown_choice("mixing-activation", args.mixing_activation, ACTIVATIONS))
        data_options = {"mixing_activation": args.mixing_activation}
    model_options = None
    if args.posterior is not None:
        from crlkit.models.identifiable import IVAE_POSTERIORS

        if args.method != "ivae":
            raise CrlkitError(f"--posterior applies to --method ivae only; got --method {args.method}")
        if args.posterior not in IVAE_POSTERIORS:
            raise CrlkitError(unknown_choice("posterior", args.posterior, IVAE_POSTERIORS))
        model_options = {"posterior": args.posterior}
    if args.decoder_var is not None:
        if args.method != "ivae":
            raise CrlkitError(f"--decoder-var applies to --method ivae only; got --method {args.method}")
        if not args.decoder_var > 0:
            raise CrlkitError(f"--decoder-var must be > 0; got {args.decoder_var}")
        model_options = {**(model_options or {}), "decoder_var": args.decoder_var}
    if args.importance_samples is not None:
        if args.method != "ivae":
            raise CrlkitError(f"--importance-samples applies to --method ivae only; got --method {args.method}")
        if args.importance_samples < 1:
            raise CrlkitError(f"--importance-samples must be >= 1; got {args.importance_samples}")
        model_options = {**(model_options or {}), "importance_samples": args.importance_samples}
    if args.known_targets:
        if args.method != "interventional":
            raise CrlkitError(f"--known-targets applies to --method interventional only; got --method {args.method}")
        model_options = {**(model_options or {}), "known_targets": True}
    if args.no_refine:
        if args.method != "interventional":
            raise CrlkitError(f"--no-refine applies to --method interventional only; got --method {args.method}")
        model_options = {**(model_options or {}), "refine_from": 0}
    if args.recon_weight is not None:
        if args.method != "interventional":
            raise CrlkitError(f"--recon-weight applies to --method interventional only; got --method {args.method}")
        if not args.recon_weight >= 0:
            raise CrlkitError(f"--recon-weight must be >= 0 (0: no reconstruction term); got {args.recon_weight}")
        model_options = {**(model_options or {}), "recon_weight": float(args.recon_weight)}
    if args.graph_pairs is not None and args.method != "interventional":
        raise CrlkitError(f"--graph-pairs applies to --method interventional only; got --method {args.method}")
    res = run_identify(args.method, out_dir=out, seed=args.seed, latents=args.latents, segments=args.segments,
                       mixing_layers=args.mixing_layers, steps=args.steps, conditional=args.conditional,
                       batch_size=args.batch_size, lr=args.lr, device=args.device, eval_samples=args.eval_samples,
                       threads=args.threads, restarts=args.restarts, data_options=data_options,
                       model_options=model_options, graph_pairs=args.graph_pairs, allow_mismatch=args.allow_mismatch)
    from crlkit.contracts import contract_line

    print(contract_line(res["contract"]))
    keys = ["mcc", "baseline_mcc", "r2_linear", "r2_nonlinear", "r2_content", "r2_style", "shd", "target_accuracy",
            "change_share", "target_balance", "train_seconds"]
    print(json.dumps({k: (round(res[k], 4) if isinstance(res[k], float) else res[k]) for k in keys if k in res}))
    print(f"wrote {out / 'results.json'}")
    return 0


def demo_section(ctx) -> str:
    """A reduced comparison (<= ~2 min on a 2-core CPU): iVAE vs VAE on linearly mixed segment
    data, and contrastive learning with Laplace pairs on a 2-layer mixing."""
    import html

    from crlkit.identify.compare import CompareRow, plot_comparison, write_table
    from crlkit.identify.benchmark import run_identify
    from crlkit.report.html import figure_html, table_html

    out = Path(ctx.out_dir) / "identify"
    out.mkdir(parents=True, exist_ok=True)
    seg = dict(latents=4, segments=20, mixing_layers=1, steps=1500)
    rows = [CompareRow("segments, linear mixing (n=4, 20 segments)", "ivae", seg),
            CompareRow("segments, linear mixing (n=4, 20 segments)", "vae", seg),
            CompareRow("pairs (Laplace), 2-layer mixing (n=5)", "contrastive",
                       dict(latents=5, mixing_layers=2, steps=1000, batch_size=256))]
    table = []
    t0 = time.perf_counter()
    for i, row in enumerate(rows):
        ctx.log(f"identify: {row.method} on {row.setting}")
        res = run_identify(row.method, out_dir=out / "runs" / f"{i}_{row.method}", seed=ctx.seed,
                           eval_samples=2000, nonlinear_max_train=500, restarts=1, **row.options)
        table.append({"setting": row.setting, "method": row.method, "latents": res["latents"],
                      "segments": res["segments"], "mixing_layers": res["mixing_layers"], "steps": res["steps"],
                      "seed": ctx.seed, "mcc": res["mcc"], "baseline_mcc": res["baseline_mcc"],
                      "mcc_minus_baseline": res["mcc"] - res["baseline_mcc"], "r2_linear": res["r2_linear"],
                      "r2_nonlinear": res["r2_nonlinear"], "train_seconds": res["train_seconds"]})
    write_table(table, out)
    plot_comparison(table, out / "comparison.png")
    cols = ["setting", "method", "mcc", "baseline_mcc", "r2_linear", "r2_nonlinear", "steps", "train_seconds"]
    shown = [{c: r[c] for c in cols} for r in table]
    secs = time.perf_counter() - t0
    text = (
        "<p>With structure beyond i.i.d. samples the latents become identifiable. iVAE sees which segment "
        "(auxiliary variable u) each sample came from, with a prior whose variances depend on u; the VAE sees "
        "the same samples without u. Contrastive learning sees positive pairs whose latents differ by "
        "small Laplace noise. MCC is the mean |correlation| of matched true and learned latents; the chance "
        "level is the MCC of a random rotation of the true latents (an entangled solution with the same "
        "distribution). Linear R² is 1 for any rotation, so it does not show identifiability on its own.</p>"
        f"<p>Reduced settings (short runs, seed {ctx.seed}, {secs:.0f} s in total). The full benchmark "
        "(3-layer mixing, n = 5 with 40 segments, contrastive n = 10, content/style, interventions) is "
        "<code>crlkit identify --compare</code> and <code>bench/bench_identify.py</code>.</p>")
    return (f"{text}{table_html(shown)}"
            f"{figure_html('identify/comparison.png', 'MCC (bars) against the rotation baseline (ticks)', width=700)}"
            f"<p><small>{html.escape(str(out / 'comparison.csv'))}</small></p>")
