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
- ``loss(batch, step) -> (total, {term: tensor})``; terms are logged per step. ``loss`` and
  ``training_step`` never change an optimizer's settings: a learning-rate schedule is a
  callback.
- Every registered model passes ``tests/models/test_contract.py``: it trains a few steps
  through :class:`crlkit.train.Trainer`, resumes to the same weights as an uninterrupted run,
  loads with ``crlkit.load`` and encodes a batch to ``(n, num_latents)``.

Optional hooks (defaults suit any model that only defines ``loss``):

- ``configure_optimizers(train_config) -> {name: Optimizer}``: the default is one Adam
  (``"main"``) over all parameters with the trainer's ``lr``, ``beta1``, ``beta2``, ``eps``.
  Models with extra players (FactorVAE's discriminator) return more optimizers.
- ``training_step(batch, step, optimizers) -> {term: tensor}``: one update. The default
  computes ``loss``, back-propagates it and steps ``optimizers["main"]``; returned terms
  include ``"loss"``. Override for alternating updates.
- ``callbacks(train_config) -> [Callback]``: what the method needs around the loop
  (schedules, data preparation before step 1); see :mod:`crlkit.train.callbacks`. The
  trainer runs them after the log callbacks and before checkpointing, checkpoints their
  ``state_dict()`` and restores it on resume before ``on_fit_start`` (which then sees
  ``trainer.start_step > 0``: state fitted before step 1 is already in the model's buffers).
- ``sampler_batch_multiplier``: the trainer asks the sampler for ``batch_size`` times this
  many samples per step (FactorVAE uses 2: a second batch for the permuted codes).
- ``noise``: a ``torch.Generator`` the trainer seeds and checkpoints; draw model noise with
  :meth:`Method.randn_like` so a run is reproducible and resumable without global RNG state.
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
_MODEL_MODULES = ("crlkit.models.vae", "crlkit.models.weak", "crlkit.models.ivae", "crlkit.models.iflow",
                  "crlkit.models.contrastive", "crlkit.models.interventional")
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
    sampler_batch_multiplier: ClassVar[int] = 1

    def __init__(self, config: Any, observation_shape: tuple[int, ...]):
        super().__init__()
        self.config = config
        self.observation_shape = tuple(observation_shape)
        self.noise: torch.Generator | None = None  # set by the trainer; None -> torch's global RNG

    def randn_like(self, t: torch.Tensor) -> torch.Tensor:
        """Standard normal noise shaped like ``t``, drawn from ``self.noise`` when set."""
        if not self._noise_on(t.device):
            return torch.randn_like(t)
        return torch.randn(t.shape, generator=self.noise, device=t.device, dtype=t.dtype)

    def rand(self, *shape: int, device=None) -> torch.Tensor:
        """Uniform [0, 1) noise from ``self.noise`` when set (on ``device``)."""
        device = torch.device(device or "cpu")
        if not self._noise_on(device):
            return torch.rand(*shape, device=device)
        return torch.rand(*shape, generator=self.noise, device=device)

    def _noise_on(self, device: torch.device) -> bool:
        if self.noise is None or self.noise.device.type != device.type:
            return False
        if device.type == "cuda":
            cur = torch.cuda.current_device()
            return (self.noise.device.index or cur) == (device.index if device.index is not None else cur)
        return True

    def configure_optimizers(self, train_config: Any) -> dict[str, torch.optim.Optimizer]:
        """One Adam over all parameters (disentanglement_lib: lr 1e-4, betas (0.9, 0.999), eps 1e-8)."""
        return {"main": make_adam(self.parameters(), train_config)}

    @staticmethod
    def train_defaults(config: Any) -> dict[str, Any]:
        """Training options (``lr``, ``batch_size``, ...) this method's config implies, applied
        beneath the user's ``--set``; none by default (the trainer's TrainConfig)."""
        return {}

    def callbacks(self, train_config: Any) -> list:
        """Trainer callbacks this method needs (``crlkit.train.callbacks.Callback``): a
        learning-rate schedule, data preparation before step 1, ...; none by default."""
        return []

    def training_step(self, batch: dict[str, torch.Tensor], step: int,
                      optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, torch.Tensor]:
        """One update: ``loss`` -> backward -> ``optimizers["main"].step()``; returns detached terms."""
        total, terms = self.loss(batch, step)
        opt = optimizers["main"]
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        out = {"loss": total.detach()}
        out.update({k: v.detach() for k, v in terms.items()})
        return out

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, batch: dict[str, torch.Tensor], step: int):
        raise NotImplementedError

    def config_dict(self) -> dict:
        return dataclasses.asdict(self.config)


def make_adam(params, train_config: Any, *, lr: float | None = None,
              betas: tuple[float, float] | None = None) -> torch.optim.Adam:
    """Adam with the trainer's settings (``lr``, ``beta1``, ``beta2``, ``eps``, ``fused_adam``).

    ``fused_adam`` uses the single-kernel implementation where the parameters' device has
    one (CPU and CUDA in torch >= 2.4), numerically the same algorithm as the default.
    """
    lr = getattr(train_config, "lr", 1e-4) if lr is None else lr
    betas = (getattr(train_config, "beta1", 0.9), getattr(train_config, "beta2", 0.999)) if betas is None else betas
    eps = getattr(train_config, "eps", 1e-8)
    fused = bool(getattr(train_config, "fused_adam", False))
    params = list(params)
    if fused:
        try:
            return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, fused=True)
        except (RuntimeError, TypeError):  # device without a fused kernel
            pass
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps)
