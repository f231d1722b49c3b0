"""``LatentSCM``: an additive-noise structural causal model over latents.

    z_j = f_j(z_pa(j)) + m_{u,j} + s_j · σ_{u,j} · ε_j,    ε_j iid standardised noise

in causal (topological) order, where ``u`` is an optional segment/environment label that
modulates each node's noise scale ``σ_{u,j}`` and mean ``m_{u,j}`` (the TCL / iVAE setting),
and ``s_j`` is the node's base noise scale. Hidden nodes (confounders) take part in the
model but are not returned. Interventions return new models and never redraw noise: for a
given seed, the exogenous noise ``ε`` is the same with and without an intervention, so
sampling is counterfactually consistent (non-descendants of the targets are identical).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Mapping

import numpy as np
from scipy.special import logsumexp

from crlkit.errors import CrlkitError
from crlkit.scm.graph import descendants, random_dag, topological_order, check_adjacency
from crlkit.scm.mechanisms import (LinearMechanism, Mechanism, ScaledMechanism, ZeroMechanism, check_mechanism,
                                   random_mlp, random_weights)
from crlkit.scm.marginals import FactorisedMarginals
from crlkit.seeding import as_generator
from crlkit.scm.noise import check_noise, noise_logpdf, sample_noise


@dataclasses.dataclass(frozen=True)
class SoftIntervention:
    """A changed mechanism of one node (the node keeps its exogenous noise ε_j)."""

    noise_scale: float | None = None      # replaces the node's base noise scale s_j (None: keep)
    shift: float = 0.0                    # added to the node's mean
    mechanism: Mechanism | None = None    # replaces f_j; ZeroMechanism() cuts the parents


@dataclasses.dataclass
class SCMSample:
    """Everything one draw produced; ``noise`` lets a caller replay it counterfactually."""

    z: np.ndarray              # (n, d) observed latents
    u: np.ndarray | None       # (n,) segment labels, None without segments
    noise: np.ndarray          # (n, p) standardised exogenous noise of all p nodes (hidden included)
    z_full: np.ndarray         # (n, p) all nodes, hidden included


class LatentSCM:
    """An additive-noise SCM over ``d`` observed (+ optional hidden) latents.

    Parameters
    ----------
    adjacency : array (p, p)
        Graph over all nodes, ``A[i, j] != 0`` iff ``i -> j``; must be acyclic.
    mechanisms : sequence of Mechanism, optional
        One per node, called on the values of its parents in increasing index order.
        Default: linear, ``f_j(pa) = Σ_i A[i, j] z_i`` (the adjacency holds the weights).
    noise : {"gaussian", "laplace", "uniform"}
        Distribution of the standardised exogenous noise (variance 1).
    noise_scale : float or array (p,)
        Base noise scale ``s_j`` of each node.
    hidden : sequence of int
        Indices of hidden nodes (confounders): sampled, never returned.
    names : sequence of str, optional
        Names of the observed nodes (default ``z0, z1, …``).
    segment_scale, segment_shift : array (m, p), optional
        Per-segment noise-scale factors ``σ_{u,j}`` and means ``m_{u,j}`` (segments/environments).

    Notes
    -----
    Public node indices (``intervene``, ``descendants``, ``adjacency``) refer to the observed
    nodes in order; hidden nodes only appear in ``full_adjacency`` and ``SCMSample.z_full``.
    """

    def __init__(self, adjacency, mechanisms=None, *, noise: str = "gaussian", noise_scale=1.0,
                 hidden=(), names=None, segment_scale=None, segment_shift=None):
        a = check_adjacency(adjacency)
        p = len(a)
        self.full_adjacency = a
        self.order = topological_order(a)
        self.noise = check_noise(noise)
        self.noise_scale = np.broadcast_to(np.asarray(noise_scale, dtype=np.float64), (p,)).copy()
        if np.any(self.noise_scale <= 0):
            raise CrlkitError("noise_scale must be > 0 for every node")
        hidden = sorted(int(h) for h in hidden)
        if any(h < 0 or h >= p for h in hidden):
            raise CrlkitError(f"hidden node indices must be in [0, {p - 1}]; got {hidden}")
        self.hidden = np.array(hidden, dtype=np.int64)
        self.observed = np.array([i for i in range(p) if i not in set(hidden)], dtype=np.int64)
        if len(self.observed) == 0:
            raise CrlkitError("a LatentSCM needs at least one observed node")
        self.parents = [np.flatnonzero(a[:, j]) for j in range(p)]
        if mechanisms is None:
            mechanisms = [LinearMechanism(a[self.parents[j], j]) for j in range(p)]
        if len(mechanisms) != p:
            raise CrlkitError(f"mechanisms must have one entry per node ({p}); got {len(mechanisms)}")
        self.mechanisms = list(mechanisms)
        d = len(self.observed)
        self.names = tuple(names) if names is not None else tuple(f"z{i}" for i in range(d))
        if len(self.names) != d:
            raise CrlkitError(f"names must have one entry per observed node ({d}); got {len(self.names)}")
        self.segment_scale = self.segment_shift = None
        if segment_scale is not None or segment_shift is not None:
            m = len(segment_scale if segment_scale is not None else segment_shift)
            sc = np.ones((m, p)) if segment_scale is None else np.asarray(segment_scale, dtype=np.float64)
            sh = np.zeros((m, p)) if segment_shift is None else np.asarray(segment_shift, dtype=np.float64)
            if sc.shape != (m, p) or sh.shape != (m, p):
                raise CrlkitError(f"segment_scale and segment_shift must have shape (segments, {p}); "
                                  f"got {sc.shape} and {sh.shape}")
            if np.any(sc <= 0):
                raise CrlkitError("segment_scale must be > 0")
            self.segment_scale, self.segment_shift = sc, sh
        self.hard: dict[int, float] = {}                 # full index -> value
        self.soft: dict[int, SoftIntervention] = {}      # full index -> changed mechanism

    # --- construction --------------------------------------------------------------------
    @classmethod
    def random(cls, d: int, graph: str = "er", *, expected_degree: float = 2.0, mechanism: str = "linear",
               noise: str = "gaussian", weight_range: tuple[float, float] = (0.5, 2.0),
               noise_scale: float = 1.0, confounders: int = 0, segments: int = 0,
               segment_scale_range: tuple[float, float] = (0.5, 3.0),
               segment_mean_range: tuple[float, float] | None = None, hidden_units: int = 16,
               standardize: bool = False, seed=0) -> "LatentSCM":
        """A random SCM over ``d`` observed latents (in causal order ``z0 -> … -> z{d-1}``).

        Parameters
        ----------
        graph : {"er", "chain", "full", "empty"}
            See :func:`crlkit.scm.graph.random_dag`; ``expected_degree`` is for ``"er"``.
        mechanism : {"linear", "nonlinear"}
            Linear: weights ``|w| ~ U(weight_range)`` with random sign (bounded away from 0).
            Nonlinear: additive noise with a random tanh MLP per node (``hidden_units`` units),
            scaled so its output on standard-normal parents has std ``~ U(weight_range)``.
        noise : {"gaussian", "laplace", "uniform"}
            Standardised exogenous noise; ``noise_scale`` multiplies it.
        confounders : int
            Number of hidden root nodes, each a parent of two distinct random observed nodes.
        segments : int
            Number of segments (0: none). Per segment and node, the noise scale factor is
            ``U(segment_scale_range)`` and, if ``segment_mean_range`` is given, the mean is
            ``U(segment_mean_range)`` (iVAE: 40 segments, scale U(0.5, 3), means U(-5, 5)).
        standardize : bool
            Rescale every node to unit marginal variance (:meth:`standardized`), so variances
            do not grow along the causal order (no "varsortability"; Reisach et al. 2021).
        seed : int or numpy.random.Generator
        """
        check_mechanism(mechanism)
        check_noise(noise)
        lo, hi = weight_range
        if not 0 < lo <= hi:
            raise CrlkitError(f"weight_range must satisfy 0 < low <= high; got {weight_range}")
        if confounders < 0 or segments < 0:
            raise CrlkitError(f"confounders and segments must be >= 0; got {confounders}, {segments}")
        if confounders and d < 2:
            raise CrlkitError("confounders need at least 2 observed latents")
        rng = as_generator(seed)
        obs = random_dag(d, graph, expected_degree=expected_degree, rng=rng)
        k, p = int(confounders), d + int(confounders)
        binary = np.zeros((p, p))
        binary[k:, k:] = obs  # hidden nodes first: they are roots
        for h in range(k):
            binary[h, k + rng.choice(d, size=2, replace=False)] = 1.0
        if mechanism == "linear":
            weights = np.zeros((p, p))
            weights[binary != 0] = random_weights(int((binary != 0).sum()), weight_range, rng)
            mechs = None
            adjacency = weights
        else:
            adjacency = binary
            mechs = [random_mlp(int(binary[:, j].sum()), rng, hidden=hidden_units, strength_range=weight_range)
                     if binary[:, j].any() else ZeroMechanism() for j in range(p)]
        seg_scale = seg_shift = None
        if segments:
            seg_scale = np.ones((segments, p))
            seg_scale[:, k:] = rng.uniform(*segment_scale_range, size=(segments, d))
            if segment_mean_range is not None:
                seg_shift = np.zeros((segments, p))
                seg_shift[:, k:] = rng.uniform(*segment_mean_range, size=(segments, d))
        model = cls(adjacency, mechs, noise=noise, noise_scale=noise_scale, hidden=range(k),
                    segment_scale=seg_scale, segment_shift=seg_shift)
        return model.standardized(seed=rng) if standardize else model

    def standardized(self, *, n_probe: int = 20_000, seed=0) -> "LatentSCM":
        """An equivalent model whose nodes have unit marginal std (estimated on ``n_probe``
        samples): node j is divided by ``c_j``, so its children's mechanisms take ``c_pa · z̃_pa``,
        its noise scale becomes ``s_j / c_j`` and its segment means ``m_{u,j} / c_j``. For the same
        exogenous noise the new model's values are exactly ``z / c`` (linear weights become
        ``w_ij c_i / c_j`` and may leave ``weight_range``)."""
        if self.hard or self.soft:
            raise CrlkitError("standardize the model before intervening on it")
        sample = self.sample_full(n_probe, as_generator(seed))
        c = sample.z_full.std(axis=0)
        c = np.where(c > 0, c, 1.0)
        linear = all(isinstance(m, LinearMechanism) for m in self.mechanisms)
        adjacency = self.full_adjacency * c[:, None] / c[None, :] if linear else self.full_adjacency
        mechs = None if linear else [
            ScaledMechanism(m, c[self.parents[j]], float(c[j])) if len(self.parents[j]) else m
            for j, m in enumerate(self.mechanisms)]
        return LatentSCM(adjacency, mechs, noise=self.noise, noise_scale=self.noise_scale / c, hidden=self.hidden,
                         names=self.names, segment_scale=self.segment_scale,
                         segment_shift=None if self.segment_shift is None else self.segment_shift / c[None, :])

    # --- structure -----------------------------------------------------------------------
    @property
    def num_latents(self) -> int:
        return len(self.observed)

    @property
    def num_segments(self) -> int:
        return 0 if self.segment_scale is None else len(self.segment_scale)

    @property
    def adjacency(self) -> np.ndarray:
        """Graph among the observed latents, ``(d, d)``; linear models keep their weights."""
        return self.full_adjacency[np.ix_(self.observed, self.observed)].copy()

    @property
    def causal_order(self) -> list[int]:
        pos = {int(f): i for i, f in enumerate(self.observed)}
        return [pos[j] for j in self.order if j in pos]

    @property
    def confounded_pairs(self) -> list[tuple[int, int]]:
        """Observed pairs ``(i, j)``, ``i < j``, that share a hidden parent."""
        pos = {int(f): i for i, f in enumerate(self.observed)}
        pairs = set()
        for h in self.hidden:
            ch = sorted(pos[int(c)] for c in np.flatnonzero(self.full_adjacency[h]) if int(c) in pos)
            pairs.update((a, b) for x, a in enumerate(ch) for b in ch[x + 1:])
        return sorted(pairs)

    def descendants(self, i: int) -> list[int]:
        """Observed descendants of observed node ``i`` (via hidden nodes too; excluding ``i``)."""
        pos = {int(f): k for k, f in enumerate(self.observed)}
        return sorted(pos[j] for j in descendants(self.full_adjacency, self._full(i)) if j in pos)

    @property
    def independent(self) -> bool:
        """True when the observed latents are mutually independent (given no segment label)."""
        return not any(self.full_adjacency[:, j].any() for j in self.observed) and not self.hard

    def _full(self, i) -> int:
        d = self.num_latents
        if not (isinstance(i, (int, np.integer)) and 0 <= i < d):
            raise CrlkitError(f"intervention target must be an observed node index in [0, {d - 1}]; got {i!r}")
        return int(self.observed[i])

    # --- interventions -------------------------------------------------------------------
    def intervene(self, values: Mapping[int, float]) -> "LatentSCM":
        """Hard intervention ``do(z_i = v)`` for each ``{i: v}``; returns a new model."""
        new = copy.copy(self)
        new.hard = dict(self.hard)
        new.soft = dict(self.soft)
        for i, v in values.items():
            new.hard[self._full(i)] = float(v)
            new.soft.pop(self._full(i), None)
        return new

    def soft_intervene(self, changes: Mapping[int, SoftIntervention | dict]) -> "LatentSCM":
        """Soft interventions ``{i: SoftIntervention(...)}`` (or a dict of its fields): a changed
        noise scale, a mean shift and/or a new mechanism (``ZeroMechanism()`` cuts the parents,
        a perfect stochastic intervention); the node keeps its exogenous noise. Returns a new model."""
        new = copy.copy(self)
        new.hard = dict(self.hard)
        new.soft = dict(self.soft)
        for i, c in changes.items():
            if isinstance(c, dict):
                try:
                    c = SoftIntervention(**c)
                except TypeError:
                    raise CrlkitError(f"soft intervention fields are noise_scale, shift, mechanism; got {sorted(c)}") from None
            if c.noise_scale is not None and not c.noise_scale > 0:
                raise CrlkitError(f"soft intervention noise_scale must be > 0; got {c.noise_scale}")
            new.soft[self._full(i)] = c
            new.hard.pop(self._full(i), None)
        return new

    def with_segments(self, segments: int, *, scale_range=(0.5, 3.0), mean_range=None, seed=0) -> "LatentSCM":
        """A copy whose observed nodes' noise scale (and mean, if ``mean_range``) vary by segment."""
        if segments < 1:
            raise CrlkitError(f"segments must be >= 1; got {segments}")
        rng = as_generator(seed)
        p = len(self.full_adjacency)
        sc, sh = np.ones((segments, p)), np.zeros((segments, p))
        sc[:, self.observed] = rng.uniform(*scale_range, size=(segments, self.num_latents))
        if mean_range is not None:
            sh[:, self.observed] = rng.uniform(*mean_range, size=(segments, self.num_latents))
        new = copy.copy(self)
        new.segment_scale, new.segment_shift = sc, sh
        return new

    # --- sampling ------------------------------------------------------------------------
    def _noise_terms(self, u: np.ndarray | None):
        """Effective noise scale and mean of every node: ``(p,)`` each, or ``(n, p)`` with segments."""
        s = self.noise_scale.copy()
        shift = np.zeros(len(s))
        for j, soft in self.soft.items():
            if soft.noise_scale is not None:
                s[j] = soft.noise_scale
            shift[j] += soft.shift
        if self.segment_scale is not None:
            if u is None:
                raise CrlkitError("this model has segments: pass segment labels u")
            return s * self.segment_scale[u], shift + self.segment_shift[u]
        return s, shift

    def _scale_shift(self, j: int, u: np.ndarray | None, n: int):
        scale, shift = self._noise_terms(u)
        if scale.ndim == 1:
            return np.full(n, scale[j]), np.full(n, shift[j])
        return scale[:, j], shift[:, j]

    def _mechanism(self, j: int) -> Mechanism:
        soft = self.soft.get(j)
        return self.mechanisms[j] if soft is None or soft.mechanism is None else soft.mechanism

    def sample_noise(self, n: int, seed) -> np.ndarray:
        """Standardised exogenous noise ``(n, p)`` for all nodes (hidden included)."""
        return sample_noise(self.noise, (int(n), len(self.full_adjacency)), as_generator(seed))

    def propagate(self, noise: np.ndarray, u: np.ndarray | None = None, *, do_mask: np.ndarray | None = None,
                  do_values: np.ndarray | None = None, cut_mask: np.ndarray | None = None) -> np.ndarray:
        """All node values ``(n, p)`` from exogenous noise, in causal order.

        Per-sample interventions on top of the model's own (used by samplers for per-sample
        targets), all ``(n, p)`` in full node indexing: ``do_mask``/``do_values`` set hard
        values; ``cut_mask`` drops the mechanism ``f_j`` (a perfect stochastic intervention:
        the node keeps only its shift and scaled noise)."""
        noise = np.asarray(noise, dtype=np.float64)
        n, p = noise.shape
        if p != len(self.full_adjacency):
            raise CrlkitError(f"noise must have shape (n, {len(self.full_adjacency)}); got {noise.shape}")
        if u is not None:
            u = np.asarray(u, dtype=np.int64)
            if u.shape != (n,) or (n and (u.min() < 0 or u.max() >= max(self.num_segments, 1))):
                raise CrlkitError(f"segment labels must be {n} integers in [0, {self.num_segments - 1}]")
        scale, shift = self._noise_terms(u)
        base = shift + scale * noise  # the exogenous part of every node, (n, p)
        z = base.copy()
        for j in self.order:
            if j in self.hard:
                z[:, j] = self.hard[j]
            elif len(self.parents[j]):
                f = self._mechanism(j)(z[:, self.parents[j]])
                if cut_mask is not None:
                    f = np.where(cut_mask[:, j], 0.0, f)
                z[:, j] = base[:, j] + f
            if do_mask is not None:
                z[:, j] = np.where(do_mask[:, j], do_values[:, j], z[:, j])
        return z

    def sample_full(self, n: int, seed, *, u: np.ndarray | None = None) -> SCMSample:
        """Draw noise then (for segmented models without ``u``) uniform segment labels, and
        propagate. The noise does not depend on interventions: counterfactually consistent."""
        rng = as_generator(seed)
        noise = self.sample_noise(n, rng)
        if self.num_segments and u is None:
            u = rng.integers(0, self.num_segments, size=int(n))
        elif not self.num_segments:
            u = None
        z_full = self.propagate(noise, u)
        return SCMSample(z=z_full[:, self.observed], u=u, noise=noise, z_full=z_full)

    def sample(self, n: int, seed, *, u: np.ndarray | None = None) -> np.ndarray:
        """``(n, d)`` observed latents (float64)."""
        return self.sample_full(n, seed, u=u).z

    # --- densities (for exact likelihoods) --------------------------------------------------
    def log_prob(self, z: np.ndarray, u: np.ndarray | None = None) -> np.ndarray:
        """Exact ``log p(z)`` (or ``log p(z | u)``) of observed latents, ``(n,)``.

        ``log p(z|u) = Σ_j [log p_ε((z_j - f_j(z_pa) - m_{u,j}) / σ_{u,j}) - log σ_{u,j}]``;
        without ``u`` a segmented model returns the mixture ``log (1/M) Σ_u p(z|u)``.
        Not available with hidden nodes or hard interventions (no density)."""
        if len(self.hidden) or self.hard:
            raise CrlkitError("log_prob needs a model without hidden nodes and hard interventions")
        z = np.asarray(z, dtype=np.float64)
        n = len(z)
        if self.num_segments and u is None:
            per = np.stack([self.log_prob(z, np.full(n, m)) for m in range(self.num_segments)], axis=1)
            return logsumexp(per, axis=1) - np.log(self.num_segments)
        total = np.zeros(n)
        for j in self.order:
            pa = self.parents[j]
            f = self._mechanism(j)(z[:, pa]) if len(pa) else 0.0
            scale, shift = self._scale_shift(j, u, n)
            total += noise_logpdf(self.noise, (z[:, j] - f - shift) / scale) - np.log(scale)
        return total

    def marginal_params(self, what: str = "marginal_params"):
        """Per-segment scale and shift ``(m, d)`` of independent latents: the marginal of
        ``z_j`` is the uniform mixture over segments k of ``shift[k, j] + scale[k, j] · ε``."""
        if not self.independent:
            raise CrlkitError(f"{what} needs independent latents (no parents, no hard interventions)")
        m = max(self.num_segments, 1)
        u = np.arange(m) if self.num_segments else None
        cols = [self._scale_shift(int(j), u, m) for j in self.observed]
        return np.stack([c[0] for c in cols], axis=1), np.stack([c[1] for c in cols], axis=1)

    def marginals(self, what: str = "marginals") -> FactorisedMarginals:
        """The per-coordinate marginals of independent latents (uniform mixtures over segments)."""
        scale, shift = self.marginal_params(what)
        return FactorisedMarginals(self.noise, scale, shift)

    def marginal_cdf(self, z: np.ndarray) -> np.ndarray:
        """Per-coordinate marginal CDF ``F_j(z_j)`` of independent latents, ``(n, d)``."""
        return self.marginals("marginal_cdf").cdf(z)

    def marginal_ppf(self, q: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`marginal_cdf` (closed form without segments, else bisection)."""
        return self.marginals("marginal_ppf").ppf(q)

    def marginal_logpdf(self, z: np.ndarray) -> np.ndarray:
        """Per-coordinate marginal log-densities of independent latents, ``(n, d)``."""
        return self.marginals("marginal_logpdf").logpdf(np.asarray(z, dtype=np.float64))

    def __repr__(self):
        return (f"LatentSCM(d={self.num_latents}, edges={int((self.adjacency != 0).sum())}, noise={self.noise!r}, "
                f"hidden={len(self.hidden)}, segments={self.num_segments}, hard={len(self.hard)}, soft={len(self.soft)})")
