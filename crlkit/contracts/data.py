"""What a dataset offers: :class:`DataContract`, and the contracts of crlkit's own datasets.

A dataset's contract is the structure a method can exploit (an auxiliary variable and its
number of values, positive pairs and their conditional family, content/style views,
single-node interventions, weak pairs that share all but some factors, environments and
labels) and the facts its theorems are stated in (are the latents independent, is the
mixing injective, is there observation noise).

Where it comes from, first match wins:

1. ``dataset.declared_contract`` (a :class:`DataContract`, or a method returning one): file
   datasets (``arrays``), the Causal Chamber adapters and ``@register_dataset`` simulators
   declare their own;
2. the table :data:`DATASET_CONTRACTS` below, keyed by registered dataset name (crlkit's
   procedural image datasets and ``cows_camels``);
3. :func:`synthetic_contract` for any :class:`~crlkit.data.synthetic.SyntheticData` (read off
   its SCM, mixing and noise, so it follows the dataset's options);
4. a conservative default: i.i.d. samples, mixing of unknown class.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Mixing classes, from most to least structured. ``renderer`` is an image renderer that is
#: injective in its factors; ``renderer_symmetric`` one that is injective except for the
#: symmetries of some shapes (dSprites' square repeats every 90 degrees of orientation).
MIXING_CLASSES = ("identity", "linear", "invertible_mlp", "injective", "renderer", "renderer_symmetric",
                  "not_injective", "unknown")
INJECTIVE = ("identity", "linear", "invertible_mlp", "injective", "renderer")


@dataclass(frozen=True)
class DataContract:
    """The structure a dataset offers and the facts identifiability theorems need."""

    observations: str = "vector"          # "vector" (D,) or "image" (C, H, W)
    observation_shape: tuple = ()         # shape of one observation
    factors: str = "continuous"           # "continuous" latents or "discrete" factor indices
    latents: int = 0                      # number of ground-truth latents n
    structures: tuple = ("single",)       # batch kinds the dataset can draw (crlkit.data.samplers)
    segments: int = 0                     # distinct values of an auxiliary variable u (0: none)
    pair_families: tuple = ()             # conditionals of positive pairs on offer ("laplace", "gaussian")
    interventions: tuple = ()             # single-node interventions on offer (known targets): perfect, hard, shift
    environments: int = 0                 # environments with different distributions (0: one)
    labels: bool = False                  # a class label beside the factors
    independent: bool = True              # latents mutually independent (given u where there are segments)
    latent_noise: str = ""                # family of the exogenous noise ("gaussian", "laplace", "uniform", "")
    mixing: str = "unknown"               # one of MIXING_CLASSES
    mixing_note: str = ""                 # why the mixing is in its class (e.g. which inputs it cannot tell apart)
    observation_noise: float | None = 0.0  # std of additive noise on x (None: unknown)
    note: str = ""                        # anything else a user should know

    @property
    def injective(self) -> bool | None:
        """``True``/``False`` where the mixing class says; ``None`` where it is unknown."""
        if self.mixing == "unknown":
            return None
        return self.mixing in INJECTIVE or self.mixing == "renderer_symmetric"

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in out.items()}


# --------------------------------------------------------------------------------------------
# crlkit's own datasets
# --------------------------------------------------------------------------------------------
_IMAGE_NOTE = "uniform independent discrete factors rendered procedurally"

#: Declared contracts of the registered datasets that are not computed from their options.
#: Fields left out are filled from the dataset object (shape, number of factors).
DATASET_CONTRACTS: dict[str, dict[str, Any]] = {
    "dsprites": dict(structures=("single", "pair"), mixing="renderer_symmetric", latent_noise="uniform",
                     mixing_note="orientation is not injective for the square (90-degree symmetry) and the "
                                 "ellipse (180 degrees)", note=_IMAGE_NOTE),
    "color_dsprites": dict(structures=("single", "pair"), mixing="renderer_symmetric", latent_noise="uniform",
                           mixing_note="as dsprites; the colour is a nuisance drawn per image, not a factor",
                           note=_IMAGE_NOTE),
    "noisy_dsprites": dict(structures=("single", "pair"), mixing="renderer_symmetric", latent_noise="uniform",
                           observation_noise=None,
                           mixing_note="as dsprites; the background is uniform noise drawn per image",
                           note=_IMAGE_NOTE),
    "shapes3d": dict(structures=("single", "pair"), mixing="renderer", latent_noise="uniform", note=_IMAGE_NOTE),
    "pendulum": dict(structures=("single", "pair"), mixing="renderer", independent=False, latent_noise="uniform",
                     note="light and pendulum angle cause the shadow's position and length (a causal graph "
                          "over the factors)"),
    # the shortcut helper's dataset; declared here so its module stays theirs
    "cows_camels": dict(structures=("single", "pair", "cause_pair"), mixing="renderer", independent=False,
                        labels=True, latent_noise="",
                        note="the label and the background are confounded (P(match) = rho per environment); "
                             "textures and nuisances are drawn per image"),
}


def synthetic_contract(ds) -> DataContract:
    """The contract of a :class:`~crlkit.data.synthetic.SyntheticData`, read off its SCM
    (segments, independence, noise), its mixing (class, injectivity) and ``obs_noise``."""
    from crlkit.data.samplers import list_batch_kinds
    from crlkit.mixing import IdentityMixing, InvertibleMLP, LinearMixing, PolynomialMixing

    scm, g = ds.scm, ds.mixing
    m, note = "unknown", ""
    if isinstance(g, IdentityMixing):
        m = "identity"
    elif isinstance(g, LinearMixing):
        m = "linear"
    elif isinstance(g, InvertibleMLP):
        slope = float(getattr(g, "slope", 0.2))
        if slope == 0.0 and getattr(g, "activation", "lrelu") == "lrelu" and g.n_layers > 1:
            m, note = "not_injective", "ReLU (leaky slope 0) between layers maps every negative pre-activation to 0"
        else:
            m = "invertible_mlp"
    elif isinstance(g, PolynomialMixing):
        m = "injective"
    else:
        declared = getattr(g, "mixing_class", None)
        if declared in MIXING_CLASSES:
            m, note = declared, getattr(g, "mixing_note", "")
    kinds = set(list_batch_kinds())
    structures = ["single", "positive_pair", "views", "intervention_pair"]
    if scm.num_segments:
        structures.insert(1, "segment")
    structures = tuple(k for k in structures if k in kinds or k == "single")
    return DataContract(
        observations="vector" if len(ds.observation_shape) == 1 else "image",
        observation_shape=tuple(ds.observation_shape), factors="continuous", latents=ds.num_factors,
        structures=structures, segments=int(scm.num_segments or 0), pair_families=("laplace", "gaussian"),
        interventions=("perfect", "hard", "shift"), independent=bool(scm.independent),
        latent_noise=str(scm.noise), mixing=m, mixing_note=note, observation_noise=float(ds.obs_noise))


def dataset_contract(ds) -> DataContract:
    """The :class:`DataContract` of dataset object ``ds`` (see the module docstring for the order)."""
    declared = getattr(ds, "declared_contract", None)
    if callable(declared):
        declared = declared()
    if isinstance(declared, DataContract):
        return declared
    base = dict(observations="vector" if len(ds.observation_shape) == 1 else "image",
                observation_shape=tuple(ds.observation_shape),
                factors="discrete" if ds.factor_sizes is not None else "continuous", latents=ds.num_factors)
    name = getattr(ds, "name", "")
    if name in DATASET_CONTRACTS:
        return DataContract(**{**base, **DATASET_CONTRACTS[name]})
    from crlkit.data.synthetic import SyntheticData

    if isinstance(ds, SyntheticData):
        return synthetic_contract(ds)
    graph = getattr(ds, "graph", None)
    independent = graph is None or not np.any(np.asarray(graph) != 0)
    structures = ("single", "pair") if ds.factor_sizes is not None else ("single",)
    return DataContract(**base, structures=structures, independent=independent,
                        note="no declared contract: i.i.d. samples, mixing of unknown class")


def format_contract(c: DataContract) -> str:
    """One line: the structures on offer and the facts (for ``crlkit data list``)."""
    offers = [s for s in c.structures if s != "single"]
    parts = [f"offers {', '.join(['iid'] + offers)}"]
    if c.segments:
        parts.append(f"u with {c.segments} values")
    parts.append("independent latents" if c.independent else "dependent latents")
    parts.append(f"mixing {c.mixing}" + (f" ({c.mixing_note})" if c.mixing_note else ""))
    if c.observation_noise is None:
        parts.append("observation noise of unknown law")
    elif c.observation_noise > 0:
        parts.append(f"Gaussian observation noise std {c.observation_noise:g}")
    if c.labels:
        parts.append("labels")
    return "; ".join(parts)
