"""Latent traversals of a trained VAE: one row of decoded images per latent, sorted by that
latent's KL to the prior, above inputs and their reconstructions (``crlkit traverse``).

    from crlkit.report.traversals import write_traversals
    write_traversals("runs/bvae", "runs/bvae/traversals.png", values=10, limit=2.0)
"""

from __future__ import annotations

import numpy as np
import torch

from crlkit.errors import CrlkitError
from crlkit.files import save_figure


def latent_kl(model, x: torch.Tensor) -> np.ndarray:
    """Mean KL(q(z_j|x) || N(0, 1)) per latent over ``x`` (informative latents have large KL)."""
    mean, logvar = model.encode_dist(x)
    return (0.5 * (mean.square() + logvar.exp() - logvar - 1)).mean(0).cpu().numpy()


@torch.no_grad()
def traversal_images(model, x: torch.Tensor, *, values: int = 10, limit: float = 2.0):
    """Rows of decoded images: for each latent (sorted by KL, largest first) the code of
    ``x[0]`` with that latent set to ``linspace(-limit, limit, values)``; and the
    reconstructions of ``x``. Returns ``(traversals (L*values, C, H, W), order, kl,
    reconstructions (n, C, H, W))``."""
    if not hasattr(model, "encode_dist") or not hasattr(model, "decode"):
        raise CrlkitError(f"traverse needs a model with a decoder (a VAE); {type(model).__name__} has none")
    if len(model.observation_shape) != 3:
        raise CrlkitError(f"traverse draws images; this model's observations have shape {model.observation_shape}")
    kl = latent_kl(model, x)
    order = np.argsort(-kl)
    base = model.encode(x[:1])  # (1, L)
    grid = torch.linspace(-limit, limit, values, device=x.device)
    codes = base.repeat(len(order) * values, 1)  # (L*values, L)
    for r, j in enumerate(order):
        codes[r * values:(r + 1) * values, j] = grid
    trav = model.decode(codes).float().cpu().numpy()
    recon = model.reconstruct(x).float().cpu().numpy()
    return trav, order, kl, recon


def write_traversals(run_dir, out_png, *, seed: int = 0, values: int = 10, limit: float = 2.0,
                     samples: int = 8, device: str = "cpu") -> dict:
    """Draw ``out_png``: latent traversals (one row per latent, annotated with its KL) above
    ``samples`` inputs and their reconstructions. Returns ``{"order", "kl"}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from crlkit.data.render import image_grid
    from crlkit.train import load_dataset, load_model

    model = load_model(run_dir, device=device)
    ds = load_dataset(run_dir)
    _, x = ds.sample(samples, np.random.default_rng(seed), device="cpu")
    x = torch.as_tensor(np.asarray(x), dtype=torch.float32, device=device)
    trav, order, kl, recon = traversal_images(model, x, values=values, limit=limit)
    L = len(order)
    top = image_grid(trav, ncols=values)
    bottom = image_grid(np.concatenate([x.cpu().numpy(), recon]), ncols=samples)
    h_top, h_bot = top.shape[0], bottom.shape[0]
    fig, axes = plt.subplots(2, 1, figsize=(0.75 * values + 1.6, 0.75 * (L + 2) + 1.2),
                             gridspec_kw={"height_ratios": [h_top, h_bot * values / samples]})
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


def plot_loss_curve(log_csv, out_png, *, terms=("reconstruction", "kl")) -> None:
    """The logged loss terms of a run per step, with a 25-step running mean."""
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
