"""``crlkit train`` (any registered model on any dataset) and ``crlkit traverse`` (latent
traversals and reconstructions of a trained VAE), plus the demo's training section.

    crlkit train --model beta_vae --dataset dsprites --steps 3000 --seed 0 --out runs/bvae \\
        --set beta=8 --set batch_size=32
    crlkit train --model ada_gvae --dataset dsprites --steps 3000 --out runs/ada --set k=-1
    crlkit train ... --out runs/bvae --steps 6000 --resume      # continue to 6000 steps
    crlkit traverse runs/bvae --out runs/bvae/traversals.png
"""

from __future__ import annotations

import argparse
import html
import json
from pathlib import Path

import numpy as np
import torch

from crlkit.errors import CrlkitError
from crlkit.files import save_figure


def register(sub) -> None:
    p = sub.add_parser("train", help="train a registered model on a dataset",
                       description="Train any registered model. Model hyperparameters, training settings "
                                   "(batch_size, lr, checkpoint_every, log_every, ...) and batch-sampler "
                                   "options (e.g. k for pairs) are all set with --set key=value.",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="models: " + _model_names())
    p.add_argument("--model", required=True, help="model name (see the list below)")
    p.add_argument("--dataset", required=True, help="dataset name (see `crlkit data list`)")
    p.add_argument("--steps", type=int, required=True, help="total number of training steps")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--seeds", default=None, metavar="RANGE",
                   help="train one model per seed as one group, e.g. 0-7 or 0,3,5; writes OUT/seed_N each")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="model / training / sampler setting (repeatable), e.g. --set beta=8 --set batch_size=16")
    p.add_argument("--data-set", dest="data_options", action="append", default=[], metavar="KEY=VALUE",
                   help="dataset option (repeatable), e.g. --data-set path=dsprites.npz")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt to --steps in total")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's; 1 is often fastest for these small models)")
    p.set_defaults(func=run_train)

    t = sub.add_parser("traverse", help="draw latent traversals and reconstructions of a trained model")
    t.add_argument("run_dir", help="run directory written by `crlkit train`")
    t.add_argument("--out", required=True, help="output PNG file")
    t.add_argument("--seed", type=int, default=0, help="seed of the images that are encoded (default 0)")
    t.add_argument("--steps", type=int, default=10, help="values per traversal row (default 10)")
    t.add_argument("--limit", type=float, default=2.0, help="traverse z_j over [-limit, limit] (default 2)")
    t.set_defaults(func=run_traverse)


def _model_names() -> str:
    try:
        from crlkit.models import list_models

        return ", ".join(list_models())
    except Exception:  # never let a broken model module break `crlkit --help`
        return "(see crlkit.models.list_models())"


def run_train(args) -> int:
    from crlkit.config import parse_assignments
    from crlkit.models import get_model_class
    from crlkit.train import train

    if args.threads is not None:
        if args.threads < 1:
            raise CrlkitError(f"--threads must be >= 1; got {args.threads}")
        torch.set_num_threads(args.threads)
    get_model_class(args.model)  # unknown names fail first, with the list of models
    overrides = parse_assignments(args.overrides, flag="--set")
    data_options = parse_assignments(args.data_options, flag="--data-set")
    if args.seeds is not None:
        return _run_train_many(args, overrides, data_options)
    summary = train(args.model, args.dataset, steps=args.steps, seed=args.seed, out_dir=args.out,
                    overrides=overrides, data_options=data_options, device=args.device, resume=args.resume,
                    progress=False if args.no_progress else None)
    terms = ", ".join(f"{k} {v:.4g}" for k, v in summary["terms"].items())
    print(f"{args.model} on {summary['dataset']}: {summary['steps']} steps, loss {summary['final_loss']:.4g} "
          f"({terms}); {summary['images_per_second']:.0f} images/s; wrote {args.out}")
    return 0


def _run_train_many(args, overrides, data_options) -> int:
    from crlkit.train.grouped import parse_seeds, train_many

    summaries = train_many(args.model, args.dataset, seeds=parse_seeds(args.seeds), steps=args.steps,
                           out_dir=args.out, overrides=overrides, data_options=data_options, device=args.device,
                           resume=args.resume, overwrite=getattr(args, "overwrite", False),
                           progress=False if args.no_progress else None)
    for s in summaries:
        run_dir = Path(args.out) / f"seed_{s['seed']}"
        print(f"{args.model} seed {s['seed']}: {s['steps']} steps, loss {s['final_loss']:.4g} "
              f"({s['group']['mode']} training); wrote {run_dir}")
    return 0


# --------------------------------------------------------------------------------------------
# traversals
# --------------------------------------------------------------------------------------------
def latent_kl(model, x: torch.Tensor) -> np.ndarray:
    """Mean KL(q(z_j|x) || N(0, 1)) per latent over ``x`` (informative latents have large KL)."""
    mean, logvar = model.encode_dist(x)
    return (0.5 * (mean.square() + logvar.exp() - logvar - 1)).mean(0).cpu().numpy()


@torch.no_grad()
def traversal_images(model, x: torch.Tensor, *, steps: int = 10, limit: float = 2.0):
    """Rows of decoded images: for each latent (sorted by KL, largest first) the code of
    ``x[0]`` with that latent set to ``linspace(-limit, limit, steps)``; and the
    reconstructions of ``x``. Returns ``(traversals (L*steps, C, H, W), order, kl,
    reconstructions (n, C, H, W))``."""
    if not hasattr(model, "encode_dist") or not hasattr(model, "decode"):
        raise CrlkitError(f"traverse needs a model with a decoder (a VAE); {type(model).__name__} has none")
    if len(model.observation_shape) != 3:
        raise CrlkitError(f"traverse draws images; this model's observations have shape {model.observation_shape}")
    kl = latent_kl(model, x)
    order = np.argsort(-kl)
    base = model.encode(x[:1])  # (1, L)
    values = torch.linspace(-limit, limit, steps, device=x.device)
    codes = base.repeat(len(order) * steps, 1)  # (L*steps, L)
    for r, j in enumerate(order):
        codes[r * steps:(r + 1) * steps, j] = values
    trav = model.decode(codes).float().cpu().numpy()
    recon = model.reconstruct(x).float().cpu().numpy()
    return trav, order, kl, recon


def write_traversals(run_dir, out_png, *, seed: int = 0, steps: int = 10, limit: float = 2.0,
                     n_recon: int = 8) -> dict:
    """Draw ``out_png``: latent traversals (one row per latent, annotated with its KL) above
    originals and reconstructions. Returns ``{"order", "kl"}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from crlkit.data.render import image_grid
    from crlkit.train import load_dataset, load_model

    model = load_model(run_dir)
    ds = load_dataset(run_dir)
    _, x = ds.sample(n_recon, np.random.default_rng(seed), device="cpu")
    x = torch.as_tensor(x, dtype=torch.float32)
    trav, order, kl, recon = traversal_images(model, x, steps=steps, limit=limit)
    L = len(order)
    top = image_grid(trav, ncols=steps)
    bottom = image_grid(np.concatenate([x.numpy(), recon]), ncols=n_recon)
    h_top, h_bot = top.shape[0], bottom.shape[0]
    fig, axes = plt.subplots(2, 1, figsize=(0.75 * steps + 1.6, 0.75 * (L + 2) + 1.2),
                             gridspec_kw={"height_ratios": [h_top, h_bot * steps / n_recon]})
    axes[0].imshow(top, interpolation="nearest")
    cell = top.shape[0] / L
    axes[0].set_yticks([cell * (r + 0.5) for r in range(L)])
    axes[0].set_yticklabels([f"z{j} KL {kl[j]:.2f}" for j in order], fontsize=7)
    axes[0].set_xticks([])
    axes[0].set_title(f"latent traversals, z_j in [-{limit:g}, {limit:g}] (sorted by KL)", fontsize=9)
    axes[1].imshow(bottom, interpolation="nearest")
    axes[1].set_xticks([])
    axes[1].set_yticks([bottom.shape[0] * 0.25, bottom.shape[0] * 0.75])
    axes[1].set_yticklabels(["input", "recon."], fontsize=7)
    fig.tight_layout()
    save_figure(fig, out_png, dpi=110, close=False)
    plt.close(fig)
    return {"order": order.tolist(), "kl": kl.tolist()}


def run_traverse(args) -> int:
    if not str(args.out).lower().endswith(".png"):
        raise CrlkitError(f"--out must be a .png file; got {args.out!r}")
    if args.steps < 2:
        raise CrlkitError(f"--steps must be >= 2; got {args.steps}")
    info = write_traversals(args.run_dir, args.out, seed=args.seed, steps=args.steps, limit=args.limit)
    active = sum(k > 0.1 for k in info["kl"])
    print(f"wrote {args.out} ({active} of {len(info['kl'])} latents with KL > 0.1)")
    return 0


# --------------------------------------------------------------------------------------------
# demo
# --------------------------------------------------------------------------------------------
DEMO_STEPS = 250       # first leg of the preview (~90 s single-threaded on the loaded 2-core CPU)
DEMO_MORE = 100        # then resume by this many steps while the model still ignores its latents,
DEMO_MAX_STEPS = 650   # up to this many steps in all
DEMO_BETA = 4.0
DEMO_LR = 1e-3         # 10x the study's 1e-4 so that a short preview learns position and scale


def plot_loss_curve(log_csv, out_png, *, terms=("reconstruction", "kl")) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.read_csv(log_csv)
    fig, axes = plt.subplots(1, len(terms), figsize=(4.2 * len(terms), 3))
    for ax, term in zip(np.atleast_1d(axes), terms):
        if term not in df:
            continue
        smooth = df[term].rolling(25, min_periods=1).mean()
        ax.plot(df["step"], df[term], alpha=0.25, lw=0.8)
        ax.plot(df["step"], smooth, lw=1.5)
        ax.set_xlabel("step")
        ax.set_title(term, fontsize=9)
    fig.tight_layout()
    save_figure(fig, out_png, dpi=110, close=False)
    plt.close(fig)


def demo_section(ctx) -> str:
    """Train beta-VAE on dSprites briefly; show the loss curve, traversals, reconstructions.

    Leaves ``ctx.shared["model_dir"]`` and ``ctx.shared["dataset"]`` for the evaluation section.
    """
    from crlkit.report.html import figure_html, table_html
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
