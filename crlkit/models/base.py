"""The model protocol and registry.

A method is a small ``torch.nn.Module`` subclass configured by a frozen dataclass
(``Config``), registered by name, that supplies its loss terms::

    @register_model("beta_vae")
    class BetaVAE(VAE):
        Config = BetaVAEConfig
        def regularizer(self, ...): ...

Contract used by the trainer, the metrics and the CLI:

- ``Method(config, observation_shape)`` builds the network.
- ``batch_kind`` names the sampler it trains on (see ``crlkit.data.samplers``).
- ``encode(x)`` returns the representation used by metrics: the posterior mean for VAEs
  (``encode_dist(x) -> (mean, logvar)`` gives both), the code for deterministic encoders.
- ``loss(batch, step) -> (total, {term: tensor})``; terms are logged per step.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, ClassVar

import torch
from torch import nn

from crlkit.registry import Registry

MODELS: Registry = Registry("model")

# Modules that register models when imported.
_MODEL_MODULES = ("crlkit.models.vae", "crlkit.models.weak", "crlkit.models.identifiable")
_loaded = False


def register_model(name: str):
    """Decorator: register a :class:`Method` subclass under ``name`` (sets ``cls.name``)."""

    def _add(cls):
        cls.name = name
        return MODELS.register(name, cls)

    return _add


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _MODEL_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


def get_model_class(name: str):
    _load_all()
    return MODELS.get(name)


def list_models() -> list[str]:
    _load_all()
    return MODELS.names()


class Method(nn.Module):
    """Base class of every trainable crlkit model."""

    name: ClassVar[str] = ""
    Config: ClassVar[type] = None  # a frozen dataclass
    batch_kind: ClassVar[str] = "single"

    def __init__(self, config: Any, observation_shape: tuple[int, ...]):
        super().__init__()
        self.config = config
        self.observation_shape = tuple(observation_shape)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, batch: dict[str, torch.Tensor], step: int):
        raise NotImplementedError

    def config_dict(self) -> dict:
        return dataclasses.asdict(self.config)
