"""The ``"pair"`` batch kind: pairs of observations that share all but a few factors.

Weak supervision of Locatello et al. (2020), "Weakly-Supervised Disentanglement Without
Compromises": the first observation has uniformly sampled factors; the second copies them
and re-draws a random subset of ``n`` factors, where per pair

- ``k_observed = k`` (``k >= 1`` fixed) or ``k_observed ~ U{1, ..., d - 1}`` (``k = -1``);
- ``n = 1`` or ``n = k_observed`` with probability 1/2 each (``mix_single=True``, as in
  disentanglement_lib's ``simple_dynamics``), or always ``n = k_observed`` (``mix_single=False``).

Deviation, on purpose: a re-drawn factor always takes a *different* value (disentanglement_lib
may draw the old value again), so a pair differs in exactly the factors marked in ``changed``.
Factors with a single value can't change and are never picked. Everything is drawn from the
sampler's seeded Generator, so the stream is reproducible and resumable.

Batch: ``{"x", "x2": (B, *obs), "factors", "factors2": (B, d) long, "changed": (B, d) bool,
"k": (B,) long}``.
"""

from __future__ import annotations

import numpy as np
import torch

from crlkit.data.base import GroundTruthData
from crlkit.data.samplers import BatchSampler, register_sampler
from crlkit.errors import CrlkitError


def sample_pair_factors(dataset: GroundTruthData, n: int, rng: np.random.Generator, *, k: int = 1,
                        mix_single: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(factors1, factors2, changed)`` for ``n`` pairs; see the module docstring."""
    if dataset.factor_sizes is None:
        raise CrlkitError(f"the pair sampler needs discrete factors; dataset {dataset.name!r} has continuous ones")
    sizes = np.asarray(dataset.factor_sizes)
    variable = np.flatnonzero(sizes > 1)
    d = len(variable)
    if d < 1:
        raise CrlkitError(f"dataset {dataset.name!r} has no factor with more than one value")
    if k != -1 and not 1 <= k <= d:
        raise CrlkitError(f"k must be -1 (random) or in [1, {d}] for {dataset.name!r}; got {k}")
    f1 = dataset.sample_factors(n, rng)
    f2 = f1.copy()
    changed = np.zeros(f1.shape, dtype=bool)
    if k == -1:
        k_obs = rng.integers(1, max(d, 2), size=n)  # U{1, ..., d-1} (1 when d == 1)
        k_obs = np.minimum(k_obs, d)
    else:
        k_obs = np.full(n, k)
    if mix_single:
        k_obs = np.where(rng.random(n) < 0.5, 1, k_obs)
    for i in range(n):
        idx = variable[rng.permutation(d)[: k_obs[i]]]
        changed[i, idx] = True
        # a new value != the old one: old + U{1, ..., size-1} (mod size)
        f2[i, idx] = (f1[i, idx] + rng.integers(1, sizes[idx])) % sizes[idx]
    return f1, f2, changed


@register_sampler("pair")
class PairSampler(BatchSampler):
    """Pairs sharing all but ``k`` factors (``k=-1``: random k per pair); see module docstring."""

    def __init__(self, dataset: GroundTruthData, *, batch_size: int, seed: int, device="cpu",
                 k: int = 1, mix_single: bool = True):
        super().__init__(dataset, batch_size=batch_size, seed=seed, device=device)
        self.k = int(k)
        self.mix_single = bool(mix_single)
        sample_pair_factors(dataset, 1, np.random.default_rng(0), k=self.k, mix_single=self.mix_single)  # validate

    def next_batch(self) -> dict[str, torch.Tensor]:
        f1, f2, changed = sample_pair_factors(self.dataset, self.batch_size, self.rng, k=self.k,
                                              mix_single=self.mix_single)
        both = self.dataset.observations_from_factors(np.concatenate([f1, f2]), self.rng, device=self.device)
        x = self.to_tensor(both)
        b = self.batch_size
        return {"x": x[:b], "x2": x[b:],
                "factors": self.to_tensor(f1, torch.long), "factors2": self.to_tensor(f2, torch.long),
                "changed": torch.as_tensor(changed, device=self.device),
                "k": torch.as_tensor(changed.sum(1), dtype=torch.long, device=self.device)}
