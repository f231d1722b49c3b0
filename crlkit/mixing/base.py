"""The mixing-function interface: an (almost always invertible) map g from latents z to
observations x, applied to NumPy arrays ``(n, dim)`` in float64, with a torch twin.

Every mixing keeps its parameters as NumPy arrays so that it is exactly reproducible from
its seed and can be applied on any device (:meth:`Mixing.torch`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from crlkit.errors import CrlkitError


class Mixing:
    """Base class of mixing functions ``g: R^in_dim -> R^out_dim``.

    Subclasses implement :meth:`forward` (NumPy), :meth:`inverse` (NumPy, exact on the image
    of ``g``) and :meth:`forward_torch`; square invertible mixings also implement
    :meth:`log_abs_det_jacobian`, used for exact densities ``log p(x) = log p(z) - log|det J_g(z)|``.
    """

    in_dim: int
    out_dim: int

    def forward(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def inverse(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def forward_torch(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def log_abs_det_jacobian(self, z: np.ndarray) -> np.ndarray:
        """``log |det dg/dz|`` at each row of ``z`` (square mixings only), shape ``(n,)``."""
        raise CrlkitError(f"{type(self).__name__} has no log-determinant "
                          f"(in_dim={self.in_dim}, out_dim={self.out_dim})")

    def __call__(self, z):
        if isinstance(z, torch.Tensor):
            return self.forward_torch(z)
        return self.forward(self._check(z, self.in_dim, "z"))

    def torch(self, device: Any = "cpu", dtype: torch.dtype = torch.float32) -> "TorchMixing":
        """An ``nn.Module`` that applies this mixing to tensors on ``device``."""
        return TorchMixing(self, device=device, dtype=dtype)

    # -- helpers ------------------------------------------------------------------------
    @staticmethod
    def _check(a, dim: int, what: str) -> np.ndarray:
        a = np.asarray(a, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != dim:
            raise CrlkitError(f"{what} must have shape (n, {dim}); got {a.shape}")
        return a

    def _tensor(self, a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
        """Parameter ``a`` as a tensor on the device/dtype of ``like`` (cached per device/dtype)."""
        cache = self.__dict__.setdefault("_tcache", {})
        key = (id(a), like.device, like.dtype)
        t = cache.get(key)
        if t is None:
            t = torch.as_tensor(a, dtype=like.dtype, device=like.device)
            cache[key] = t
        return t

    def __getstate__(self):  # tensors cached per device are not part of the state
        state = dict(self.__dict__)
        state.pop("_tcache", None)
        return state


class TorchMixing(nn.Module):
    """A fixed (non-trainable) torch view of a :class:`Mixing`."""

    def __init__(self, mixing: Mixing, *, device: Any = "cpu", dtype: torch.dtype = torch.float32):
        super().__init__()
        self.mixing = mixing
        self.device_ = torch.device(device)
        self.dtype_ = dtype

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.mixing.forward_torch(z.to(self.device_, self.dtype_))


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """``||a - b||_F / ||b||_F`` (the round-trip error reported by tests and docs)."""
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))
