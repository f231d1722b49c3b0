"""Batch samplers: turn a dataset into an infinite, seeded stream of training batches.

A model declares the kind of batch it trains on (``Method.batch_kind``); the trainer asks
:func:`make_sampler` for that kind. Every batch is a ``dict[str, torch.Tensor]`` with at
least ``"x"``. A sampler's state (its RNG) is saved in checkpoints so a resumed run sees the
same batches as an uninterrupted one.
"""

from __future__ import annotations

import importlib

import numpy as np
import torch

from crlkit.data.base import GroundTruthData
from crlkit.registry import Registry, check_options

SAMPLERS: Registry = Registry("batch kind")

# Modules that register further batch kinds when imported (pairs for weak supervision,
# segments / positive pairs / views / interventions for identifiable methods).
_SAMPLER_MODULES = ("crlkit.data.pairs", "crlkit.data.synthetic", "crlkit.data.cows_camels")
_loaded = False


def register_sampler(kind: str):
    return SAMPLERS.register(kind)


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _SAMPLER_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


class BatchSampler:
    """Base class: seeded stream of batch dicts; subclasses implement ``next_batch``."""

    def __init__(self, dataset: GroundTruthData, *, batch_size: int, seed: int, device="cpu"):
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.rng = np.random.default_rng(seed)

    def next_batch(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        return self.next_batch()

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]

    def to_tensor(self, a, dtype=torch.float32) -> torch.Tensor:
        if isinstance(a, torch.Tensor):
            return a.to(self.device, dtype=dtype)
        return torch.as_tensor(np.asarray(a), dtype=dtype, device=self.device)


@register_sampler("single")
class SingleSampler(BatchSampler):
    """i.i.d. samples: ``{"x": (B, *obs), "factors": (B, k)}``."""

    def next_batch(self):
        factors, x = self.dataset.sample(self.batch_size, self.rng, device=self.device)
        fdtype = torch.long if self.dataset.discrete else torch.float32
        return {"x": self.to_tensor(x), "factors": self.to_tensor(factors, fdtype)}


def make_sampler(kind: str, dataset: GroundTruthData, *, batch_size: int, seed: int,
                 device="cpu", **options) -> BatchSampler:
    """The sampler registered for ``kind`` (``"single"``, ``"pair"``, ...)."""
    _load_all()
    cls = SAMPLERS.get(kind)
    check_options(f"sampler {kind!r}", cls.__init__, options)
    return cls(dataset, batch_size=batch_size, seed=seed, device=device, **options)


def list_batch_kinds() -> list[str]:
    _load_all()
    return SAMPLERS.names()
