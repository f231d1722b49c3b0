"""``crlkit train`` (any registered model on any dataset) and ``crlkit traverse`` (latent
traversals and reconstructions of a trained VAE, drawn by :mod:`crlkit.report.traversals`).

    crlkit train --model beta_vae --dataset dsprites --steps 3000 --seed 0 --out runs/bvae \\
        --set beta=8 --set batch_size=32
    crlkit train --model ada_gvae --dataset dsprites --steps 3000 --out runs/ada --set k=-1
    crlkit train ... --out runs/bvae --steps 6000 --resume      # continue to 6000 steps
    crlkit traverse runs/bvae --out runs/bvae/traversals.png
"""

from __future__ import annotations

from crlkit.commands._options import (HelpFormatter, add_data_set, add_device, add_out, add_progress, add_run_mode,
                                      add_samples, add_seed, add_set, add_steps, add_threads, examples, float_range,
                                      int_range, torch_threads)
from crlkit.errors import CrlkitError
from crlkit.report.sections import train_section as demo_section  # noqa: F401 (a section of `crlkit demo`)
from crlkit.report.traversals import latent_kl, plot_loss_curve, traversal_images, write_traversals  # noqa: F401


def register(sub) -> None:
    p = sub.add_parser("train", help="train a registered model on a dataset",
                       description="Train any registered model. Model hyperparameters, training settings "
                                   "(batch_size, lr, checkpoint_every, log_every, ...) and batch-sampler "
                                   "options (e.g. k for pairs) are all set with --set key=value; dataset "
                                   "options with --data-set key=value. models: " + _model_names(),
                       epilog=examples(
                           "crlkit train --model beta_vae --dataset dsprites --steps 3000 --out runs/bvae "
                           "--set beta=8 --set batch_size=32",
                           "crlkit train --model beta_vae --dataset dsprites --steps 6000 --out runs/bvae --resume",
                           "crlkit train --model ada_gvae --dataset dsprites --steps 3000 --out runs/ada --set k=-1"),
                       formatter_class=HelpFormatter)
    p.add_argument("--model", required=True, help="model name (listed above)")
    p.add_argument("--dataset", required=True, help="dataset name (see `crlkit data list`)")
    add_steps(p, required=True, help="total number of training steps (with --resume, including those done)")
    add_seed(p)
    add_out(p, help="run directory (checkpoint.pt, log.csv, summary.json, config.json)")
    add_set(p)
    add_data_set(p)
    add_device(p)
    add_threads(p)
    add_run_mode(p)
    add_progress(p)
    p.add_argument("--allow-mismatch", action="store_true",
                   help="train even when the dataset breaks an assumption of the method's contract (see `crlkit "
                        "methods`); the mismatch is kept in summary.json")
    p.set_defaults(func=run_train)

    t = sub.add_parser("traverse", help="draw latent traversals and reconstructions of a trained model",
                       description="One row of decoded images per latent (sorted by KL to the prior): the code of "
                                   "one image with that latent swept over [-limit, limit]; below, inputs and their "
                                   "reconstructions. Needs a VAE-family run on an image dataset.",
                       epilog=examples("crlkit traverse runs/bvae --out runs/bvae/traversals.png",
                                       "crlkit traverse runs/bvae --values 7 --limit 3 --out traversals.png"),
                       formatter_class=HelpFormatter)
    t.add_argument("run_dir", help="run directory written by `crlkit train`")
    add_out(t, help="output PNG file")
    add_seed(t, help="seed of the images that are encoded")
    t.add_argument("--values", type=int_range(2, 100), default=10, metavar="N",
                   help="values per traversal row, an integer in [2, 100] (default 10)")
    t.add_argument("--limit", type=float_range(0, 100, lo_open=True), default=2.0, metavar="L",
                   help="traverse each latent over [-L, L], a number in (0, 100] (default 2)")
    add_samples(t, default=8, minimum=1, help="images encoded and reconstructed below the traversals")
    add_device(t, help="where to encode and decode")
    add_threads(t)
    t.set_defaults(func=run_traverse)


def _model_names() -> str:
    try:
        from crlkit.models import list_models

        return ", ".join(list_models())
    except Exception:  # never let a broken model module break `crlkit --help`
        return "(see crlkit.models.list_models())"


def run_train(args) -> int:
    from crlkit.config import parse_assignments
    from crlkit.contracts import preview
    from crlkit.data import list_datasets
    from crlkit.models import get_model_class
    from crlkit.registry import unknown_choice
    from crlkit.train import train

    get_model_class(args.model)  # unknown names fail first, with the list of models
    if args.dataset not in list_datasets():
        raise CrlkitError(unknown_choice("dataset", args.dataset, list_datasets()))
    overrides = parse_assignments(args.overrides, flag="--set")
    data_options = parse_assignments(args.data_options, flag="--data-set")
    print(preview(args.model, args.dataset, data_options=data_options, overrides=overrides,
                  allow_mismatch=args.allow_mismatch))
    with torch_threads(args.threads):
        summary = train(args.model, args.dataset, steps=args.steps, seed=args.seed, out_dir=args.out,
                        overrides=overrides, data_options=data_options, device=args.device, resume=args.resume,
                        overwrite=args.overwrite, progress=None if args.progress else False,
                        allow_mismatch=args.allow_mismatch)
    terms = ", ".join(f"{k} {v:.4g}" for k, v in summary["terms"].items())
    print(f"{args.model} on {summary['dataset']}: {summary['steps']} steps, loss {summary['final_loss']:.4g} "
          f"({terms}); {summary['images_per_second']:.0f} images/s; wrote {args.out}")
    return 0


def run_traverse(args) -> int:
    if not str(args.out).lower().endswith(".png"):
        raise CrlkitError(f"--out must be a .png file; got {args.out!r}")
    with torch_threads(args.threads):
        info = write_traversals(args.run_dir, args.out, seed=args.seed, values=args.values, limit=args.limit,
                                samples=args.samples, device=args.device)
    active = sum(k > 0.1 for k in info["kl"])
    print(f"wrote {args.out} ({active} of {len(info['kl'])} latents with KL > 0.1)")
    return 0
