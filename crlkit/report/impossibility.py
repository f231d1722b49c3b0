"""The constructive impossibility of unsupervised disentanglement (Locatello et al. 2019,
Theorem 1) as ``crlkit impossibility`` runs it: on the true generator of a synthetic dataset
or on a trained VAE, with the figure and the JSON-safe results.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from crlkit.errors import CrlkitError
from crlkit.files import save_figure

NOISE_CHOICES = ("gaussian", "laplace", "uniform")
MIXING_CHOICES = ("mlp", "linear", "orthogonal", "polynomial")


def impossibility_results(*, seed: int = 0, model_dir: str | None = None, latents: int = 2,
                          noise: str = "uniform", mixing: str = "mlp", mixing_layers: int = 3,
                          samples: int = 5000, mc_draws: int = 8) -> dict:
    """Same likelihood / ELBO, entangled representation: the results (with ``_arrays``) for a
    trained VAE-family run in ``model_dir``, or else for the true generator of a synthetic
    dataset with ``latents`` independent ``noise`` latents mixed by ``mixing``."""
    from crlkit.identify.impossibility import impossibility_experiment, impossibility_for_model

    if samples < 100:
        raise CrlkitError(f"samples must be >= 100; got {samples}")
    if mc_draws < 2:
        raise CrlkitError(f"mc_draws must be >= 2 (the ELBO standard error needs two draws); got {mc_draws}")
    if model_dir:
        from crlkit import load
        from crlkit.train import load_dataset

        if not Path(model_dir).is_dir():
            raise CrlkitError(f"model must be a run directory written by crlkit train; {model_dir!r} is not a directory")
        model, dataset = load(model_dir), load_dataset(model_dir)
        res = impossibility_for_model(model, dataset, n=samples, seed=seed, n_mc=mc_draws)
        res.update(source="model", model_dir=str(model_dir), dataset=dataset.name)
        return res
    if latents < 2:
        raise CrlkitError(f"latents must be >= 2 (with one latent there is nothing to entangle); got {latents}")
    from crlkit.data import make_dataset

    dataset = make_dataset("synthetic", latents=latents, noise=noise, mixing=mixing, mixing_layers=mixing_layers,
                           seed=seed)
    res = impossibility_experiment(dataset, n=samples, seed=seed, n_mc=mc_draws)
    res["source"] = "true generator"
    return res


def json_safe(res: dict) -> dict:
    """The results without their arrays (``crlkit.files.atomic_write_json`` writes the rest as
    strict JSON: non-finite numbers as null, named under ``"nonfinite"``)."""
    return {k: v for k, v in res.items() if not k.startswith("_")}


def plot_impossibility(res: dict, path: Path) -> Path:
    """Four panels: latents before / after f (colour = the first true latent), marginals, MCC."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z, z2 = res["_arrays"]["z"], res["_arrays"]["z_rotated"]
    is_model = res.get("source") == "model"
    colour = z[:, 0]
    a, b = (res["_arrays"]["z_rotated"] @ np.asarray(res["rotation"]), z2) if is_model else (z, z2)
    fig, ax = plt.subplots(1, 4, figsize=(16, 4))
    lab = "posterior mean" if is_model else "z"
    ax[0].scatter(a[:, 0], a[:, 1], c=colour, s=3, cmap="viridis")
    ax[0].set_title(f"original model: {lab}\n(colour = true factor 0)")
    ax[1].scatter(b[:, 0], b[:, 1], c=colour, s=3, cmap="viridis")
    ax[1].set_title(f"entangled model: R {lab}\n(same colour)" if is_model else
                    f"entangled model: f({lab})\n(same colour: factor 0 is now spread over axes)")
    for axis in ax[:2]:
        axis.set_xlabel("dimension 0")
        axis.set_ylabel("dimension 1")
    bins = np.linspace(min(a[:, 0].min(), b[:, 0].min()), max(a[:, 0].max(), b[:, 0].max()), 50)
    ax[2].hist(a[:, 0], bins=bins, alpha=0.5, density=True, label=f"{lab}_0")
    ax[2].hist(b[:, 0], bins=bins, alpha=0.5, density=True, label=f"f({lab})_0")
    ax[2].set_title("marginals" + ("" if is_model else " (identical in distribution)"))
    ax[2].legend()
    names = ["original", "entangled"] + ([] if is_model else ["chance"])
    vals = [res["mcc_original"], res["mcc_rotated"]] + ([] if is_model else [res["mcc_chance"]])
    ax[3].bar(names, vals, color=["tab:green", "tab:red", "tab:gray"][:len(vals)])
    ax[3].set_ylim(0, 1.05)
    ax[3].set_title(f"MCC; ELBO {res['elbo_original']:.3f} vs {res['elbo_rotated']:.3f} (se {res['elbo_se']:.3f})")
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)
