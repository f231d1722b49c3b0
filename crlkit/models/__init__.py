"""Models: the disentanglement VAE zoo, weakly supervised VAEs and identifiable methods.

One module per method family: ``vae`` (the VAE zoo), ``weak`` (weakly supervised VAEs), and the
identifiable methods ``ivae``, ``iflow``, ``contrastive`` (with ``content_style``) and
``interventional``; ``_common`` holds what those share (whitening, the Gaussian KL, checks).

>>> from crlkit.models import make_model, list_models
>>> model = make_model("beta_vae", (1, 64, 64), beta=8)
"""

from __future__ import annotations

from typing import Any

from crlkit.models.base import MODELS, Method, get_model_class, list_models, make_adam, register_model


def make_model(name: str, observation_shape: tuple[int, ...], **config: Any) -> Method:
    """Build the registered model ``name`` for ``observation_shape`` with config overrides
    (strings are parsed, as from ``--set``; unknown keys raise CrlkitError)."""
    from crlkit.config import build_config

    cls = get_model_class(name)
    return cls(build_config(cls.Config, config, what=f"model {name!r}"), tuple(observation_shape))


__all__ = ["MODELS", "Method", "get_model_class", "list_models", "make_adam", "make_model", "register_model"]
