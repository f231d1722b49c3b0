"""``crlkit identify``: train an identifiable causal representation learning method (or a VAE
baseline) on its synthetic setting and score it against the random-rotation chance level;
``--compare`` runs them side by side. Parses arguments and prints; the work is
:func:`crlkit.identify.run_identify` and :func:`crlkit.identify.compare.run_compare`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from crlkit.commands._options import (add_data_set, add_device, add_out, add_seed, add_set, add_steps, add_threads,
                                      examples, int_range, torch_threads)
from crlkit.errors import CrlkitError


def register(sub) -> None:
    from crlkit.identify.benchmark import METHODS, RUN_OPTIONS

    run_keys = "; ".join(f"{k} ({', '.join(only) if only else 'all'}): {what}"
                         for k, (_, only, what) in RUN_OPTIONS.items())
    p = sub.add_parser(
        "identify", help="train an identifiable CRL method and score it against the rotation baseline",
        description="Train an identifiable method (ivae, iflow, contrastive, content_style, interventional) or a VAE "
                    "baseline on a synthetic latent-model + invertible-MLP setting through the shared trainer; "
                    "write OUT/results.json with MCC, linear/nonlinear R2 and the random-rotation baseline. "
                    "--compare runs all methods and writes OUT/comparison.{csv,md,png}. "
                    "Method options are --set keys of the method's config (e.g. ivae: preset, posterior, "
                    "importance_samples, decoder_var; interventional: known_targets, refine_from, recon_weight), "
                    f"and the runner's keys: {run_keys}. Dataset options are --data-set keys of the 'synthetic' "
                    "dataset (e.g. mixing_activation=xtanh).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=examples(
            "crlkit identify --method ivae --seed 0 --out runs/ivae",
            "crlkit identify --method ivae --set preset=paper --out runs/ivae_paper",
            "crlkit identify --method ivae --mixing-layers 3 --restarts 4 --seed 4 --out runs/ivae_r4",
            "crlkit identify --method interventional --set known_targets=true --out runs/cauca",
            "crlkit identify --method contrastive --set conditional=gaussian --out runs/cl_l2",
            "crlkit identify --compare --quick --out runs/identify_compare"))
    p.add_argument("--method", default=None, metavar="NAME", help=f"the method to run: {', '.join(METHODS)}")
    p.add_argument("--compare", action="store_true", help="run every method side by side (table and plot)")
    p.add_argument("--quick", action="store_true", help="with --compare: small demo-sized settings (minutes)")
    p.add_argument("--latents", type=int_range(2), default=None, metavar="N",
                   help="number of true latents (default: the method's setting)")
    p.add_argument("--segments", type=int_range(1), default=None, metavar="M",
                   help="segments (values of the auxiliary variable) of ivae, iflow and the VAE baselines "
                        "(default 40)")
    p.add_argument("--mixing-layers", type=int_range(1), default=None, metavar="L",
                   help="layers of the invertible mixing MLP; 1 = linear (default: the method's setting)")
    p.add_argument("--restarts", type=int_range(1), default=None, metavar="R",
                   help="ivae, iflow, interventional: train R restarts and keep the best by a label-free "
                        "held-out score (ivae: bound in the data's units; iflow: log-likelihood; interventional: "
                        "balance of the inferred targets, stopping at the first balanced run); default 1 "
                        "(ivae, iflow), at most 3 (interventional)")
    add_steps(p, help="training steps (default: the method's setting)")
    add_seed(p, help="seed of the data, the mixing, the weights and the batches")
    add_set(p, help="method option (a field of the method's config, e.g. --set posterior=diagonal) or runner "
                    "option (batch_size, lr, eval_samples, graph_pairs, conditional); repeatable")
    add_data_set(p)
    add_device(p)
    add_threads(p)
    p.add_argument("--allow-mismatch", action="store_true",
                   help="run even when the data breaks an assumption of the method's contract (see `crlkit methods`); "
                        "results.json then carries the mismatch")
    p.add_argument("--misspecify", action="store_true",
                   help="run each identifiable method (or --method) with its assumptions met and with each broken in "
                        "turn; writes OUT/misspecify.{csv,md,png} (--steps sets every method's steps; --set "
                        "batch_size=B and eval_samples=N apply to every run)")
    add_out(p, default="runs/identify", help="output directory")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the results and models in --out (without it, an --out that holds them is refused)")
    p.set_defaults(func=run)


def run(args) -> int:
    from crlkit.config import parse_assignments
    from crlkit.identify.benchmark import METHODS, data_options, run_identify, split_options
    from crlkit.registry import unknown_choice

    out = Path(args.out)
    overrides = parse_assignments(args.overrides, flag="--set")
    data = data_options(parse_assignments(args.data_options, flag="--data-set"))
    if args.misspecify:
        from crlkit.identify.misspecify import misspecify_command

        return misspecify_command(args, out, overrides)
    if args.compare:
        if args.method:
            raise CrlkitError("give either --method NAME or --compare, not both")
        if overrides or data or args.restarts:
            raise CrlkitError("--set, --data-set and --restarts apply to one --method, not to --compare")
        from crlkit.identify.compare import default_rows, run_compare

        rows = default_rows(steps=args.steps, latents=args.latents, segments=args.segments,
                            mixing_layers=args.mixing_layers, quick=args.quick)
        with torch_threads(args.threads):
            table = run_compare(out, seed=args.seed, rows=rows, device=args.device, log=print, threads=None,
                                overwrite=args.overwrite)
        print((out / "comparison.md").read_text())
        print(f"wrote {out / 'comparison.csv'}, {out / 'comparison.md'}, {out / 'comparison.png'} ({len(table)} runs)")
        return 0
    if args.quick:
        raise CrlkitError("--quick applies to --compare only")
    if not args.method:
        raise CrlkitError(f"--method is required (one of: {', '.join(METHODS)}), or use --compare")
    if args.method not in METHODS:
        raise CrlkitError(unknown_choice("method", args.method, METHODS))
    model_options, run_options = split_options(args.method, overrides)
    t0 = time.perf_counter()
    res = run_identify(args.method, out_dir=out, seed=args.seed, latents=args.latents, segments=args.segments,
                       mixing_layers=args.mixing_layers, steps=args.steps, device=args.device,
                       threads=args.threads, restarts=args.restarts, data_options=data or None,
                       model_options=model_options or None, overwrite=args.overwrite,
                       allow_mismatch=args.allow_mismatch, **run_options)
    from crlkit.contracts import contract_line

    print(contract_line(res["contract"]))
    keys = ["mcc", "baseline_mcc", "r2_linear", "r2_nonlinear", "r2_content", "r2_style", "shd", "target_accuracy",
            "change_share", "target_balance", "train_seconds"]
    print(json.dumps({k: (round(res[k], 4) if isinstance(res[k], float) else res[k]) for k in keys if k in res}))
    for r in res.get("restarts", []):
        mcc = "" if r.get("mcc") is None else f", mcc {r['mcc']:.4f} (not used to select)"
        print(f"  restart seed {r['seed']}: {r['criterion']} {r[r['criterion']]:.4f}{mcc}"
              + ("  (kept)" if r["selected"] else ""))
    print(f"wrote {out / 'results.json'} ({time.perf_counter() - t0:.0f} s)")
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
                           eval_samples=2000, nonlinear_max_train=500, restarts=1,
                           overwrite=True, **row.options)  # the demo command decides whether its --out may be replaced
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
