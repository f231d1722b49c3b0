"""What each method needs and what it then guarantees: one declared table, keyed by registered
model name (:data:`METHOD_CONTRACTS`).

A requirement is *structural* when the method cannot train without it (the batches it reads:
segments, pairs, views, interventions; vector observations for the MLP encoders): a dataset
that lacks it is refused, always. The others are the *assumptions* of the method's theorem: a
dataset that breaks one still trains, but the guarantee no longer applies, so it is refused
unless the user asks for it (``--allow-mismatch``, for studies of misspecification).

Each test reads a :class:`Context` (the dataset's contract, the model's config and the batch
sampler's options) and returns ``None`` when the requirement holds, else the reason it fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from crlkit.contracts.data import INJECTIVE, DataContract


@dataclass(frozen=True)
class Context:
    """What a requirement is checked against."""

    data: DataContract                          # the dataset's contract
    model: dict = field(default_factory=dict)   # the model's config (dataclass fields)
    sampler: dict = field(default_factory=dict)  # the batch sampler's options, defaults filled in


@dataclass(frozen=True)
class Requirement:
    """One thing a method needs; ``test(ctx)`` is ``None`` when met, else the reason."""

    name: str                                    # what is needed, one line
    test: Callable[[Context], str | None]        # None when met, else why not ("?why": cannot be checked)
    structural: bool = False                     # True: the method cannot train without it


@dataclass(frozen=True)
class MethodContract:
    """What ``model`` needs and what it guarantees when every requirement holds."""

    model: str                                   # registered model name
    needs: tuple                                 # Requirements
    guarantee: str | Callable[[Context], str]    # identifiability when all are met
    theorem: str                                 # the result the guarantee rests on
    paper: str                                   # where it is proved

    def guarantee_for(self, ctx: Context) -> str:
        return self.guarantee(ctx) if callable(self.guarantee) else self.guarantee


# --------------------------------------------------------------------------------------------
# requirement tests
# --------------------------------------------------------------------------------------------
def _structure(kind: str, what: str) -> Requirement:
    return Requirement(f"{what} (batch kind {kind!r})",
                       lambda c: None if kind in c.data.structures else
                       f"the dataset cannot draw {what} (it offers {', '.join(c.data.structures)})",
                       structural=True)


_VECTOR = Requirement("vector observations (an MLP encoder)",
                      lambda c: None if c.data.observations == "vector"
                      else f"observations are {c.data.observations}s of shape {tuple(c.data.observation_shape)}",
                      structural=True)
_IMAGE_64 = Requirement(
    "images with sides divisible by 16, or vectors (the standard conv / MLP architecture)",
    lambda c: None if c.data.observations == "vector" or all(s % 16 == 0 for s in c.data.observation_shape[1:])
    else f"image sides {tuple(c.data.observation_shape[1:])} are not divisible by 16", structural=True)
_DISCRETE = Requirement("discrete factors (pairs re-draw factor values)",
                        lambda c: None if c.data.factors == "discrete" else "the factors are continuous",
                        structural=True)


def _injective(c: Context) -> str | None:
    if c.data.mixing == "unknown":
        return "?the mixing's class is not declared, so injectivity is not checked"
    if c.data.mixing in INJECTIVE or c.data.mixing == "renderer_symmetric":
        return None
    return f"the mixing is {c.data.mixing}" + (f": {c.data.mixing_note}" if c.data.mixing_note else "")


_INJECTIVE = Requirement("an injective mixing", _injective)
_NOISE_FREE = Requirement(
    "noise-free observations x = g(z)",
    lambda c: None if c.data.observation_noise == 0 else
    ("observation noise of unknown law" if c.data.observation_noise is None
     else f"x carries Gaussian noise of std {c.data.observation_noise:g}"))
_INDEPENDENT = Requirement("mutually independent latents",
                           lambda c: None if c.data.independent else "the latents depend on each other (causal graph)")
_COND_INDEPENDENT = Requirement("latents independent given the auxiliary variable u",
                                lambda c: None if c.data.independent else
                                "the latents depend on each other given u (causal graph)")


def _enough_segments(c: Context) -> str | None:
    n = int(c.data.latents)  # the theorem's n: the dimension of the true latents
    need = 2 * n + 1
    return None if c.data.segments >= need else f"u takes {c.data.segments} values, fewer than 2n + 1 = {need}"


_GAUSSIAN_SOURCES = Requirement(
    "Gaussian sources given u (the exponential family the prior models)",
    lambda c: None if c.data.latent_noise == "gaussian" else
    f"the sources are {c.data.latent_noise or 'of unknown law'}, not Gaussian given u")
_SEGMENTS = Requirement("an auxiliary variable u with >= 2n + 1 values (n latents)", _enough_segments)
_SQUARE = Requirement(
    "as many observed dimensions as latents (a flow is a bijection)",
    lambda c: None if int(c.data.observation_shape[0] if c.data.observation_shape else 0)
    == int(c.model.get("num_latents") or c.data.latents) else
    f"observations have {c.data.observation_shape[0] if c.data.observation_shape else '?'} dimensions, "
    f"the model {c.model.get('num_latents') or c.data.latents} latents", structural=True)


def _pair_family(c: Context) -> str | None:
    family = c.sampler.get("conditional", "laplace")
    p = float(c.model.get("p", 1.0))
    model_family = {1.0: "laplace", 2.0: "gaussian"}.get(p)
    if model_family is None:
        return f"the similarity uses p = {p:g}, matching no conditional on offer (laplace p=1, gaussian p=2)"
    if family != model_family:
        return f"pairs are drawn from a {family} conditional, the model assumes {model_family} (p = {p:g})"
    return None


def _box_or_free(c: Context) -> str | None:
    if not c.data.independent:
        return "the latents are dependent: their support is not a box"
    if c.data.latent_noise != "uniform" or c.data.segments:
        return f"the latents are {c.data.latent_noise or 'of unknown law'}" + \
            (" with segment-dependent scales" if c.data.segments else "") + ", not uniform on a box"
    return None


_PAIRS_MATCH = Requirement("positive pairs from the conditional the similarity assumes (Laplace for p=1)",
                           _pair_family)
_BOX = Requirement("independent latents on a convex body (the box of uniform latents)", _box_or_free)


def _contrastive_guarantee(c: Context) -> str:
    if c.sampler.get("conditional", "laplace") == "gaussian" and float(c.model.get("p", 1.0)) == 2.0:
        return "identifiable up to an orthogonal (affine) map"
    return "identifiable up to permutation and sign flips (element-wise affine)"


def _style_changes(c: Context) -> str | None:
    p = float(c.sampler.get("p_change", 0.75))
    return None if p > 0 else "no style latent ever changes between views (p_change = 0)"


_STYLE = Requirement("every style latent changes between views with positive probability", _style_changes)


def _perfect(c: Context) -> str | None:
    kind = c.sampler.get("intervention", "perfect")
    if kind in ("perfect", "hard"):
        return None
    return f"interventions are {kind} (soft: the mechanism is kept), not perfect"


def _all_targets(c: Context) -> str | None:
    targets = c.sampler.get("targets")
    if targets is None or len(set(targets)) >= c.data.latents:
        return None
    return f"only {len(set(targets))} of {c.data.latents} latents are ever intervened on"


_PERFECT = Requirement("perfect single-node interventions", _perfect)
_ALL_TARGETS = Requirement("an intervention on every latent", _all_targets)


# --------------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------------
_NONE = "none: not identifiable from i.i.d. data (any rotation-like f with f(z) ~ z gives the same p(x))"
_LOCATELLO19 = ("Locatello et al. 2019, Theorem 1",
                "Locatello et al., Challenging Common Assumptions in the Unsupervised Learning of "
                "Disentangled Representations, ICML 2019")


def _unsupervised(name: str) -> MethodContract:
    return MethodContract(name, (_IMAGE_64,), _NONE, *_LOCATELLO19)


def _weak(name: str) -> MethodContract:
    return MethodContract(
        name, (_IMAGE_64, _structure("pair", "pairs sharing all but some factors"), _DISCRETE, _INDEPENDENT,
               _INJECTIVE),
        "identifiable up to permutation and element-wise maps, for the factors that change in some pairs",
        "Locatello et al. 2020, Theorem 1",
        "Locatello et al., Weakly-Supervised Disentanglement Without Compromises, ICML 2020")


#: What every registered model needs and guarantees.
METHOD_CONTRACTS: dict[str, MethodContract] = {
    **{m: _unsupervised(m) for m in ("vae", "beta_vae", "annealed_vae", "factor_vae", "dip_vae_i", "dip_vae_ii",
                                     "beta_tcvae")},
    "ada_gvae": _weak("ada_gvae"),
    "ada_mlvae": _weak("ada_mlvae"),
    "ivae": MethodContract(
        "ivae", (_VECTOR, _structure("segment", "auxiliary variable (segments)"), _SEGMENTS, _COND_INDEPENDENT,
                 _GAUSSIAN_SOURCES, _INJECTIVE, _NOISE_FREE),
        "identifiable up to permutation and element-wise maps (Gaussian sources whose variances vary with u)",
        "Khemakhem et al. 2020, Theorems 1-3",
        "Khemakhem et al., Variational Autoencoders and Nonlinear ICA: A Unifying Framework, AISTATS 2020"),
    "iflow": MethodContract(
        "iflow", (_VECTOR, _SQUARE, _structure("segment", "auxiliary variable (segments)"), _SEGMENTS,
                  _COND_INDEPENDENT, _GAUSSIAN_SOURCES, _INJECTIVE, _NOISE_FREE),
        "identifiable up to permutation and element-wise maps",
        "Li et al. 2020, Theorem 1 (with Khemakhem et al. 2020, Theorem 1)",
        "Li et al., Identifying through Flows for Recovering Latent Representations, ICLR 2020"),
    "contrastive": MethodContract(
        "contrastive", (_VECTOR, _structure("positive_pair", "positive pairs"), _PAIRS_MATCH, _BOX, _INJECTIVE,
                        _NOISE_FREE),
        _contrastive_guarantee,
        "Zimmermann et al. 2021, Theorems 5-6 (convex body, L^p with p != 2); Theorem 2 (Gaussian: orthogonal)",
        "Zimmermann et al., Contrastive Learning Inverts the Data Generating Process, ICML 2021"),
    "content_style": MethodContract(
        "content_style", (_VECTOR, _structure("views", "content/style views"), _STYLE, _INJECTIVE, _NOISE_FREE),
        "content block identified up to an invertible map (block-identifiable); style discarded",
        "von Kuegelgen et al. 2021, Theorem 4.4",
        "von Kuegelgen et al., Self-Supervised Learning with Data Augmentations Provably Isolates Content from "
        "Style, NeurIPS 2021"),
    "interventional": MethodContract(
        "interventional", (_VECTOR, _structure("intervention_pair", "pairs around single-node interventions"),
                           _PERFECT, _ALL_TARGETS, _INJECTIVE, _NOISE_FREE),
        "causal variables identifiable up to permutation and element-wise maps, and their graph",
        "Brehmer et al. 2022, Theorem 1",
        "Brehmer et al., Weakly Supervised Causal Representation Learning, NeurIPS 2022"),
}


def method_contract(model: str) -> MethodContract:
    """The declared contract of registered model ``model``; unknown names raise CrlkitError."""
    from crlkit.errors import CrlkitError
    from crlkit.registry import unknown_choice

    try:
        return METHOD_CONTRACTS[model]
    except KeyError:
        raise CrlkitError(unknown_choice("model (no declared contract)", model, METHOD_CONTRACTS)) from None


def contract_rows() -> list[dict[str, Any]]:
    """The method table as rows: model, needs (structural first), guarantee, theorem, paper."""
    rows = []
    for name, mc in sorted(METHOD_CONTRACTS.items()):
        g = mc.guarantee if isinstance(mc.guarantee, str) else mc.guarantee(Context(DataContract()))
        rows.append({"model": name, "needs": "; ".join(r.name for r in mc.needs), "guarantee": g,
                     "theorem": mc.theorem, "paper": mc.paper})
    return rows
