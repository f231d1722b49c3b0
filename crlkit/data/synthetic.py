"""``synthetic``: a latent causal model (:class:`crlkit.scm.LatentSCM`) pushed through a
mixing function (:mod:`crlkit.mixing`) into vectors — the identifiability benchmark.

    u ~ Uniform{0..M-1}  (segments, optional)
    z ~ LatentSCM (graph, mechanisms, noise, per-segment noise scale/mean, hidden confounders)
    x = g(z) (+ N(0, obs_noise² I))

and the batch samplers of the identifiable methods:

- ``"segment"`` (iVAE / TCL): ``{"x", "u" one-hot (B, M), "segment" (B,), "factors"}``.
- ``"positive_pair"`` (contrastive, Zimmermann et al. 2021): ``z~ = z + noise`` with a Gaussian
  or Laplace conditional of scale ``sigma``, truncated to the support of z when it is a box.
- ``"views"`` (content/style, von Kügelgen et al. 2021): the content block is kept exactly;
  each style node is re-drawn (fresh exogenous noise, so from its conditional given its parents)
  with probability ``p_change``.
- ``"intervention_pair"`` (ILCM / CauCA): ``x`` before and ``x2`` after a single-node
  intervention on a uniformly drawn target (kept in ``"target"``), sharing all other noise.

Every pair batch has ``"x", "x2", "factors", "factors2"`` (and ``"u"``/``"segment"`` when the
dataset has segments).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from crlkit.data import register_dataset
from crlkit.data.base import GroundTruthData, as_generator
from crlkit.data.samplers import BatchSampler, register_sampler
from crlkit.errors import CrlkitError
from crlkit.mixing import MIXINGS, Mixing, make_mixing
from crlkit.registry import unknown_choice
from crlkit.scm import LatentSCM, SCMSample
from crlkit.scm.noise import noise_cdf, noise_ppf, noise_support


class SyntheticData(GroundTruthData):
    """Vectors ``x = g(z)`` from a :class:`LatentSCM` ``scm`` and a :class:`Mixing` ``mixing``.

    Factors are the continuous latents ``z`` (``factor_sizes is None``), float64 ``(n, d)``;
    observations are float32 ``(n, D)`` (not scaled to [0, 1]). ``graph`` is the SCM's
    adjacency over the latents (weights for linear SCMs).
    """

    def __init__(self, scm: LatentSCM, mixing: Mixing, *, obs_noise: float = 0.0, name: str = "synthetic",
                 options: dict | None = None):
        if mixing.in_dim != scm.num_latents:
            raise CrlkitError(f"mixing takes {mixing.in_dim} latents but the SCM has {scm.num_latents}")
        if obs_noise < 0:
            raise CrlkitError(f"obs_noise must be >= 0; got {obs_noise}")
        self.scm, self.mixing, self.obs_noise = scm, mixing, float(obs_noise)
        self.name = name
        self.factor_names = scm.names
        self.factor_sizes = None
        self.observation_shape = (mixing.out_dim,)
        self.graph = scm.adjacency
        self.options = dict(options or {})

    # --- latents ---------------------------------------------------------------------------
    @property
    def num_segments(self) -> int:
        return self.scm.num_segments

    @property
    def latent_bounds(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(low, high)`` of a box support of z (independent uniform latents), else ``None``."""
        if self.scm.noise != "uniform" or not self.scm.independent:
            return None
        scale, shift = self.scm.marginal_params("latent_bounds")
        lo, hi = noise_support("uniform")
        return (shift + lo * scale).min(axis=0), (shift + hi * scale).max(axis=0)

    def sample_latents(self, n: int, rng, *, u: np.ndarray | None = None) -> SCMSample:
        """Latents with their segment labels and exogenous noise (for counterfactual pairs)."""
        return self.scm.sample_full(int(n), as_generator(rng), u=u)

    def sample_factors(self, n: int, rng) -> np.ndarray:
        return self.sample_latents(n, rng).z

    # --- observations ------------------------------------------------------------------------
    def observations_from_factors(self, factors, rng: np.random.Generator | None = None, *, device: Any = None):
        """``g(z)`` as float32 ``(n, D)``; plus Gaussian noise of std ``obs_noise`` (needs ``rng``).

        On a non-CPU ``device`` the mixing runs in torch float32 there; otherwise it runs in
        NumPy float64 and the result is converted."""
        if self.obs_noise > 0 and rng is None:
            raise CrlkitError("this dataset has obs_noise > 0: pass an rng to observations_from_factors")
        if isinstance(factors, torch.Tensor) or (device is not None and torch.device(device).type != "cpu"):
            z = torch.as_tensor(factors, dtype=torch.float32, device=device)
            if z.ndim != 2 or z.shape[1] != self.num_factors:
                raise CrlkitError(f"factors must have shape (n, {self.num_factors}); got {tuple(z.shape)}")
            x = self.mixing.forward_torch(z)
            if self.obs_noise > 0:
                e = as_generator(rng).standard_normal(tuple(x.shape)).astype(np.float32)
                x = x + self.obs_noise * torch.as_tensor(e, device=x.device)
            return x if device is not None else x.cpu().numpy()
        z = np.asarray(factors, dtype=np.float64)
        if z.ndim != 2 or z.shape[1] != self.num_factors:
            raise CrlkitError(f"factors must have shape (n, {self.num_factors}) for {self.name} "
                              f"({', '.join(self.factor_names)}); got {z.shape}")
        x = self.mixing(z)
        if self.obs_noise > 0:
            x = x + self.obs_noise * as_generator(rng).standard_normal(x.shape)
        x = x.astype(np.float32)
        return torch.as_tensor(x, device=device) if device is not None else x

    def inverse(self, x) -> np.ndarray:
        """The exact latents of noise-free observations: ``g^{-1}(x)`` (float64)."""
        return self.mixing.inverse(np.asarray(x, dtype=np.float64))

    def intervene(self, values: dict[int, float]) -> "SyntheticData":
        """The same dataset under ``do(z_i = v)`` (same mixing; counterfactual sampling)."""
        return SyntheticData(self.scm.intervene(values), self.mixing, obs_noise=self.obs_noise,
                             name=self.name, options=self.options)

    def info(self) -> dict:
        out = super().info()
        out.update({"graph": self.graph.tolist(), "num_segments": self.num_segments,
                    "mixing": repr(self.mixing), "options": self.options})
        return out


def _sub_seed(seed: int, k: int) -> int:
    return int(np.random.SeedSequence([int(seed), k]).generate_state(1)[0])


@register_dataset("synthetic")
def make_synthetic(*, latents: int = 5, graph: str = "empty", expected_degree: float = 2.0,
                   mechanism: str = "linear", noise: str = "gaussian", noise_scale: float = 1.0,
                   weight_range: tuple[float, float] = (0.5, 2.0), standardize: bool = False,
                   confounders: int = 0, segments: int = 0,
                   segment_scale: tuple[float, float] = (0.5, 3.0), segment_means: tuple[float, float] | None = None,
                   mixing: str = "mlp", mixing_layers: int = 3, slope: float = 0.2, cond_quantile: float = 0.25,
                   mixing_activation: str = "lrelu", observed_dim: int | None = None, degree: int = 2,
                   obs_noise: float = 0.0, seed: int = 0) -> SyntheticData:
    """Build a ``synthetic`` dataset.

    Parameters
    ----------
    latents : int
        Number d of (observed) latents.
    graph : {"empty", "er", "chain", "full"}
        Latent DAG (causal order z0 -> ... -> z{d-1}); ``"empty"`` gives independent sources.
    expected_degree : float
        Mean number of neighbours per node for ``graph="er"``.
    mechanism : {"linear", "nonlinear"}
        Linear weights ``|w| ~ U(weight_range)`` with random sign, or random tanh-MLP additive
        noise mechanisms.
    standardize : bool
        Rescale every latent to unit marginal variance (keeps the graph; see
        ``LatentSCM.standardized``), so variances do not grow along the causal order.
    noise : {"gaussian", "laplace", "uniform"}
        Standardised exogenous noise, times ``noise_scale``.
    confounders : int
        Hidden latent parents of random pairs (not returned).
    segments : int
        Number M of segments (0: none); per segment and latent the noise scale factor is
        ``U(segment_scale)`` and, when ``segment_means`` is given, the mean ``U(segment_means)``.
    mixing : {"mlp", "linear", "orthogonal", "polynomial", "identity"}
        The mixing ``g``; ``mixing_layers``, ``slope``, ``cond_quantile`` and
        ``mixing_activation`` (``"lrelu"`` or ``"xtanh"``: ``tanh(h) + slope * h``) for ``"mlp"``,
        ``degree`` (2 or 3) for ``"polynomial"``, ``observed_dim`` (>= latents) for
        mlp / linear / orthogonal.
    obs_noise : float
        Std of isotropic Gaussian noise added to x (0: noise-free, exactly invertible).
    seed : int
        Seeds the SCM and the mixing (two independent streams); batches get their own seeds.
    """
    if mixing not in MIXINGS:
        raise CrlkitError(unknown_choice("mixing", mixing, MIXINGS))
    if int(latents) < 1:
        raise CrlkitError(f"latents must be >= 1; got {latents}")
    if observed_dim is not None and int(observed_dim) < int(latents):
        raise CrlkitError(f"observed_dim must be >= latents={latents}; got {observed_dim}")
    if int(mixing_layers) < 1:
        raise CrlkitError(f"mixing_layers must be >= 1; got {mixing_layers}")
    if segments and len(segment_scale) != 2:
        raise CrlkitError(f"segment_scale must be a (low, high) pair; got {segment_scale}")
    options = dict(latents=latents, graph=graph, expected_degree=expected_degree, mechanism=mechanism, noise=noise,
                   noise_scale=noise_scale, weight_range=list(weight_range), standardize=bool(standardize),
                   confounders=confounders,
                   segments=segments, segment_scale=list(segment_scale),
                   segment_means=None if segment_means is None else list(segment_means), mixing=mixing,
                   mixing_layers=mixing_layers, slope=slope, cond_quantile=cond_quantile,
                   mixing_activation=mixing_activation, observed_dim=observed_dim, degree=degree,
                   obs_noise=obs_noise, seed=seed)
    scm = LatentSCM.random(int(latents), graph, expected_degree=expected_degree, mechanism=mechanism, noise=noise,
                           noise_scale=noise_scale, weight_range=tuple(weight_range), confounders=int(confounders),
                           segments=int(segments), segment_scale_range=tuple(segment_scale),
                           segment_mean_range=None if segment_means is None else tuple(segment_means),
                           standardize=bool(standardize), seed=_sub_seed(seed, 0))
    g = make_mixing(mixing, int(latents), n_layers=int(mixing_layers), slope=slope, seed=_sub_seed(seed, 1),
                    out_dim=observed_dim, degree=int(degree), cond_quantile=cond_quantile,
                    activation=mixing_activation)
    return SyntheticData(scm, g, obs_noise=obs_noise, options=options)


def _named(name: str, **defaults):
    def factory(**options):
        ds = make_synthetic(**{**defaults, **options})
        ds.name = name
        return ds
    factory.__signature__ = _signature_with_defaults(defaults)
    factory.__doc__ = f"``synthetic`` with the defaults of the {name} setting: {defaults}."
    return register_dataset(name)(factory)


def _signature_with_defaults(defaults: dict):
    import inspect
    sig = inspect.signature(make_synthetic)
    return sig.replace(parameters=[p.replace(default=defaults.get(p.name, p.default)) for p in sig.parameters.values()])


# iVAE (Khemakhem et al. 2020): n = 5, 40 segments, sigma ~ U(0.5, 3), 3-layer leaky-ReLU mixing (slope 0.1).
_named("ivae_segments", latents=5, segments=40, segment_scale=(0.5, 3.0), mixing="mlp", mixing_layers=3, slope=0.1)
# Contrastive (Zimmermann et al. 2021): n = 10 uniform on a unit-width box, 3-layer invertible MLP.
_named("contrastive_uniform", latents=10, noise="uniform", noise_scale=1.0 / (2.0 * np.sqrt(3.0)),
       mixing="mlp", mixing_layers=3)


# ------------------------------------------------------------------------------------------
# samplers
# ------------------------------------------------------------------------------------------
def _require_synthetic(dataset, kind: str) -> SyntheticData:
    if not isinstance(dataset, SyntheticData):
        raise CrlkitError(f"batch kind {kind!r} needs a synthetic (SCM + mixing) dataset such as 'synthetic'; "
                          f"got {getattr(dataset, 'name', type(dataset).__name__)!r}")
    return dataset


class _SyntheticSampler(BatchSampler):
    kind = ""

    def __init__(self, dataset, *, batch_size: int, seed: int, device="cpu"):
        super().__init__(_require_synthetic(dataset, self.kind), batch_size=batch_size, seed=seed, device=device)

    def _x(self, z):
        return self.to_tensor(self.dataset.observations_from_factors(z, self.rng, device=self.device))

    def _pair_batch(self, s: SCMSample, z2: np.ndarray, **extra) -> dict[str, torch.Tensor]:
        batch = {"x": self._x(s.z), "x2": self._x(z2), "factors": self.to_tensor(s.z),
                 "factors2": self.to_tensor(z2)}
        if s.u is not None:
            batch["segment"] = self.to_tensor(s.u, torch.long)
        batch.update(extra)
        return batch


@register_sampler("segment")
class SegmentSampler(_SyntheticSampler):
    """iVAE/TCL batches: ``{"x", "u" (B, M) one-hot float, "segment" (B,) long, "factors"}``;
    segments drawn uniformly."""

    kind = "segment"

    def __init__(self, dataset, *, batch_size: int, seed: int, device="cpu"):
        super().__init__(dataset, batch_size=batch_size, seed=seed, device=device)
        if not self.dataset.num_segments:
            raise CrlkitError("batch kind 'segment' needs a dataset with segments (e.g. make_dataset('synthetic', "
                              "segments=40) or 'ivae_segments')")

    def next_batch(self):
        s = self.dataset.sample_latents(self.batch_size, self.rng)
        u = self.to_tensor(s.u, torch.long)
        return {"x": self._x(s.z), "u": torch.nn.functional.one_hot(u, self.dataset.num_segments).float(),
                "segment": u, "factors": self.to_tensor(s.z)}


CONDITIONALS = ("gaussian", "laplace")


def _conditional_cdf(kind: str, t: np.ndarray) -> np.ndarray:
    """CDF of the unit conditional: N(0, 1) or Laplace(0, 1) (= √2 × the standardised Laplace)."""
    return noise_cdf(kind, t if kind == "gaussian" else t / np.sqrt(2.0))


def _conditional_ppf(kind: str, q: np.ndarray) -> np.ndarray:
    return noise_ppf(kind, q) if kind == "gaussian" else np.sqrt(2.0) * noise_ppf(kind, q)


@register_sampler("positive_pair")
class PositivePairSampler(_SyntheticSampler):
    """Contrastive positive pairs (Zimmermann et al. 2021): ``z~ = z + sigma · e`` with ``e``
    standard normal (``conditional="gaussian"``) or Laplace(0, 1) (``"laplace"``), per
    coordinate, in latent units.

    With ``truncate=True`` and a box support (independent uniform latents, see
    ``SyntheticData.latent_bounds``), ``e`` is drawn from the conditional truncated so that
    ``z~`` stays in the box (inverse-CDF sampling); otherwise untruncated.
    """

    kind = "positive_pair"

    def __init__(self, dataset, *, batch_size: int, seed: int, device="cpu", conditional: str = "laplace",
                 sigma: float = 0.05, truncate: bool = True):
        super().__init__(dataset, batch_size=batch_size, seed=seed, device=device)
        if conditional not in CONDITIONALS:
            raise CrlkitError(unknown_choice("conditional", conditional, CONDITIONALS))
        if not sigma > 0:
            raise CrlkitError(f"sigma must be > 0; got {sigma}")
        self.conditional, self.sigma = conditional, float(sigma)
        self.bounds = self.dataset.latent_bounds if truncate else None

    def next_batch(self):
        s = self.dataset.sample_latents(self.batch_size, self.rng)
        if self.bounds is None:
            e = (self.rng.standard_normal(s.z.shape) if self.conditional == "gaussian"
                 else self.rng.laplace(0.0, 1.0, s.z.shape))
        else:
            lo, hi = self.bounds
            qa = _conditional_cdf(self.conditional, (lo - s.z) / self.sigma)
            qb = _conditional_cdf(self.conditional, (hi - s.z) / self.sigma)
            e = _conditional_ppf(self.conditional, qa + (qb - qa) * self.rng.random(s.z.shape))
        z2 = s.z + self.sigma * e
        if self.bounds is not None:
            z2 = np.clip(z2, *self.bounds)  # guards round-off only
        return self._pair_batch(s, z2)


@register_sampler("views")
class ViewsSampler(_SyntheticSampler):
    """Content/style views (von Kügelgen et al. 2021): both views share the content latents
    exactly; each style latent is changed with probability ``p_change`` by re-drawing its
    exogenous noise, so the changed style keeps its conditional distribution given its parents.

    Parameters
    ----------
    content : int or sequence of int, optional
        The content latents: an int ``k`` means the first ``k`` (default ``d // 2``).
    p_change : float
        Probability that each style latent changes between the views.

    The batch adds ``"changed"`` (B, d) float: 1 where a style latent was re-drawn.
    """

    kind = "views"

    def __init__(self, dataset, *, batch_size: int, seed: int, device="cpu", content=None,
                 p_change: float = 0.75):
        super().__init__(dataset, batch_size=batch_size, seed=seed, device=device)
        d = self.dataset.num_factors
        if content is None:
            content = d // 2
        idx = list(range(int(content))) if isinstance(content, (int, np.integer)) else [int(i) for i in content]
        if not idx or len(set(idx)) != len(idx) or min(idx) < 0 or max(idx) >= d or len(idx) >= d:
            raise CrlkitError(f"content must name 1..{d - 1} distinct latents in [0, {d - 1}]; got {content!r}")
        if not 0 <= p_change <= 1:
            raise CrlkitError(f"p_change must be in [0, 1]; got {p_change}")
        self.content = np.array(sorted(idx))
        self.style = np.array([j for j in range(d) if j not in set(idx)])
        self.p_change = float(p_change)

    def next_batch(self):
        scm = self.dataset.scm
        s = self.dataset.sample_latents(self.batch_size, self.rng)
        n = len(s.z)
        changed = np.zeros(s.z.shape, dtype=bool)
        changed[:, self.style] = self.rng.random((n, len(self.style))) < self.p_change
        fresh = scm.sample_noise(n, self.rng)
        noise2 = s.noise.copy()
        full_changed = np.zeros(s.noise.shape, dtype=bool)
        full_changed[:, scm.observed] = changed
        noise2[full_changed] = fresh[full_changed]
        do_mask = np.zeros(s.noise.shape, dtype=bool)
        do_mask[:, scm.observed[self.content]] = True  # content held at its values in view 1
        z2 = scm.propagate(noise2, s.u, do_mask=do_mask, do_values=s.z_full)[:, scm.observed]
        return self._pair_batch(s, z2, changed=self.to_tensor(changed))


INTERVENTIONS = ("perfect", "hard", "shift")


@register_sampler("intervention_pair")
class InterventionPairSampler(_SyntheticSampler):
    """Counterfactual pairs around a single-node intervention (ILCM, Brehmer et al. 2022;
    CauCA with known targets): the target ``k`` is uniform over ``targets`` (default all
    latents) and returned as ``"target"`` (B,) long; all exogenous noise except the target's
    is shared, so only ``k`` and its descendants differ between ``factors`` and ``factors2``.

    Parameters
    ----------
    intervention : {"perfect", "hard", "shift"}
        ``"perfect"``: ``z~_k`` loses its parents and takes fresh noise at its own scale/mean
        (a perfect stochastic intervention). ``"hard"``: ``do(z~_k = v)`` with ``v`` the value
        of ``z_k`` in another random sample of the batch (a draw of its marginal). ``"shift"``:
        ``z~_k = z_k + shift`` (mechanism kept; random sign).
    """

    kind = "intervention_pair"

    def __init__(self, dataset, *, batch_size: int, seed: int, device="cpu", intervention: str = "perfect",
                 targets=None, shift: float = 2.0):
        super().__init__(dataset, batch_size=batch_size, seed=seed, device=device)
        if intervention not in INTERVENTIONS:
            raise CrlkitError(unknown_choice("intervention", intervention, INTERVENTIONS))
        d = self.dataset.num_factors
        self.targets = np.arange(d) if targets is None else np.array(sorted({int(t) for t in targets}))
        if len(self.targets) == 0 or self.targets.min() < 0 or self.targets.max() >= d:
            raise CrlkitError(f"targets must be latent indices in [0, {d - 1}]; got {targets!r}")
        self.intervention, self.shift = intervention, float(shift)

    def next_batch(self):
        scm = self.dataset.scm
        s = self.dataset.sample_latents(self.batch_size, self.rng)
        n = len(s.z)
        target = self.targets[self.rng.integers(0, len(self.targets), size=n)]
        full_t = scm.observed[target]
        rows = np.arange(n)
        one_hot = np.zeros(s.noise.shape, dtype=bool)
        one_hot[rows, full_t] = True
        noise2 = s.noise.copy()
        if self.intervention == "perfect":
            noise2[rows, full_t] = scm.sample_noise(n, self.rng)[rows, full_t]
            z2f = scm.propagate(noise2, s.u, cut_mask=one_hot)
        elif self.intervention == "hard":
            values = s.z_full[self.rng.permutation(n)]
            z2f = scm.propagate(noise2, s.u, do_mask=one_hot, do_values=values)
        else:
            sign = self.rng.choice([-1.0, 1.0], size=n)
            values = s.z_full.copy()
            values[rows, full_t] += sign * self.shift
            z2f = scm.propagate(noise2, s.u, do_mask=one_hot, do_values=values)
        return self._pair_batch(s, z2f[:, scm.observed], target=self.to_tensor(target, torch.long))
