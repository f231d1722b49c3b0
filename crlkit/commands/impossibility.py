"""``crlkit impossibility``: the constructive impossibility of unsupervised disentanglement
(Locatello et al. 2019, Theorem 1) on the true generator of a synthetic dataset or on a trained
VAE: same likelihood / ELBO, entangled representation. Writes ``OUT/results.json`` and
``OUT/impossibility.png`` (the work: :mod:`crlkit.report.impossibility`).
"""

from __future__ import annotations

from pathlib import Path

from crlkit.commands._options import (HelpFormatter, add_out, add_samples, add_seed, add_threads, examples, int_range,
                                      torch_threads)
from crlkit.report.impossibility import MIXING_CHOICES, NOISE_CHOICES
from crlkit.report.sections import impossibility_section as demo_section  # noqa: F401 (a section of `crlkit demo`)


def register(sub) -> None:
    p = sub.add_parser("impossibility",
                       help="show that an entangled model has the same likelihood/ELBO as the true one",
                       description="Build f = F^-1 . Phi . R . Phi^-1 . F, which keeps p(z) exactly, and compare the "
                                   "generator g (latents z) with g . f^-1 (latents f(z)): same likelihood and ELBO, "
                                   "entangled representation (MCC drops). Writes OUT/results.json and "
                                   "OUT/impossibility.png.",
                       epilog=examples("crlkit impossibility --out runs/impossibility",
                                       "crlkit impossibility --latents 5 --noise laplace --samples 3000 --out runs/imp5",
                                       "crlkit impossibility --model runs/bvae --samples 300 --out runs/imp_bvae"),
                       formatter_class=HelpFormatter)
    add_out(p, default="runs/impossibility", help="output directory")
    add_seed(p)
    p.add_argument("--model", default=None, metavar="RUN_DIR",
                   help="a trained VAE-family run directory (crlkit train); default: the true generator")
    p.add_argument("--latents", type=int_range(2, 1000), default=2, metavar="D",
                   help="latent dimension of the synthetic generator, an integer >= 2 (default 2)")
    p.add_argument("--noise", choices=NOISE_CHOICES, default="uniform",
                   help="distribution of the independent latents (default uniform)")
    p.add_argument("--mixing", choices=MIXING_CHOICES, default="mlp", help="mixing function g (default mlp)")
    p.add_argument("--mixing-layers", type=int_range(1, 100), default=3, metavar="N",
                   help="layers of the invertible MLP, an integer >= 1 (default 3)")
    add_samples(p, default=5000, minimum=100, help="samples drawn")
    p.add_argument("--mc-draws", type=int_range(2, 10**6), default=8, metavar="N",
                   help="Monte Carlo draws of q(z|x) per sample for the ELBO estimates, an integer >= 2 (default 8)")
    add_threads(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from crlkit.files import atomic_write_json
    from crlkit.report.impossibility import impossibility_results, json_safe, plot_impossibility

    out = Path(args.out)
    with torch_threads(args.threads):
        res = impossibility_results(seed=args.seed, model_dir=args.model, latents=args.latents, noise=args.noise,
                                    mixing=args.mixing, mixing_layers=args.mixing_layers, samples=args.samples,
                                    mc_draws=args.mc_draws)
    out.mkdir(parents=True, exist_ok=True)
    plot_impossibility(res, out / "impossibility.png")
    atomic_write_json(out / "results.json", json_safe(res))
    for key in ("loglik_original", "loglik_rotated", "elbo_original", "elbo_rotated", "elbo_se",
                "mcc_original", "mcc_rotated", "mcc_chance", "mig_original", "mig_rotated"):
        if key in res:
            print(f"{key:>17}: {res[key]:.4f}")
    print(f"wrote {out / 'results.json'} and {out / 'impossibility.png'}")
    return 0
