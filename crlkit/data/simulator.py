"""Your own simulator as a crlkit dataset: any function from factors to observations.

:func:`register_simulator` registers a function ``f(z, *, seed) -> x`` (NumPy ``(n, d)`` in,
``(n, D)`` out; it may also name any of ``synthetic``'s options, e.g. ``mixing_layers``, to
receive their values) as a dataset: latents from the same latent causal model as ``synthetic``
(graph, mechanisms, noise, segments: all of ``synthetic``'s options), then ``x = f(z)``. It is a
:class:`~crlkit.data.synthetic.SyntheticData`, so every sampler (segments, positive pairs,
views, interventions) and every command accepts it; its contract is read off the SCM, with the
mixing class you declare::

    from crlkit.data.simulator import register_simulator

    @register_simulator("my_world", mixing="injective", observed_dim=lambda d: 2 * d)
    def my_world(z, *, seed):
        return np.concatenate([np.tanh(z), z ** 3], axis=1)

    make_dataset("my_world", latents=4, segments=20)      # or --dataset my_world --data-set latents=4

``mixing`` is one of :data:`crlkit.contracts.MIXING_CLASSES`; a wrong declaration makes the
contract check wrong, so say ``"not_injective"`` (with ``mixing_note``) whenever ``f`` can map
two latent vectors to the same ``x``, and ``"unknown"`` when you do not know.

The module registers one such dataset itself, ``synthetic_folded`` (the misspecification
benchmark's non-injective mixing).
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable

import numpy as np
import torch

from crlkit.data import register_dataset
from crlkit.errors import CrlkitError
from crlkit.mixing.base import Mixing


class FunctionMixing(Mixing):
    """A mixing given by a NumPy function ``fn(z) -> x``, with a declared class for contracts.

    The torch path runs ``fn`` in NumPy (on the host) and moves the result back."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], in_dim: int, out_dim: int, *,
                 mixing_class: str = "unknown", mixing_note: str = ""):
        from crlkit.contracts.data import MIXING_CLASSES

        if mixing_class not in MIXING_CLASSES:
            from crlkit.registry import unknown_choice

            raise CrlkitError(unknown_choice("mixing class", mixing_class, MIXING_CLASSES))
        self.fn, self.in_dim, self.out_dim = fn, int(in_dim), int(out_dim)
        self.mixing_class, self.mixing_note = mixing_class, mixing_note

    def forward(self, z: np.ndarray) -> np.ndarray:
        x = np.asarray(self.fn(np.asarray(z, dtype=np.float64)), dtype=np.float64)
        if x.ndim != 2 or x.shape != (len(z), self.out_dim):
            raise CrlkitError(f"the simulator must return shape (n, {self.out_dim}); got {x.shape}")
        return x

    def forward_torch(self, z: torch.Tensor) -> torch.Tensor:
        x = self.forward(z.detach().cpu().double().numpy())
        return torch.as_tensor(x, dtype=z.dtype, device=z.device)

    def inverse(self, x: np.ndarray) -> np.ndarray:
        raise CrlkitError(f"a simulator mixing has no inverse ({self.mixing_class})")

    def __repr__(self) -> str:
        return f"FunctionMixing({getattr(self.fn, '__name__', 'f')}, {self.in_dim} -> {self.out_dim}, {self.mixing_class})"


def register_simulator(name: str, *, mixing: str = "unknown", mixing_note: str = "",
                       observed_dim: int | Callable[[int], int] | None = None):
    """Decorator: register ``f(z, *, seed) -> x`` as dataset ``name`` (see the module docstring).

    Parameters
    ----------
    name : str
        Registry name (``make_dataset(name, ...)``, ``--dataset name``).
    mixing : str
        The class of ``f`` for contracts (:data:`crlkit.contracts.MIXING_CLASSES`).
    mixing_note : str
        Why it is in that class (e.g. which inputs it cannot tell apart).
    observed_dim : int or callable, optional
        Dimension of ``x``, or a function of the number of latents; default: as many as latents.
    """

    def deco(fn):
        from crlkit.data.synthetic import make_synthetic

        def factory(**options):
            ds = make_synthetic(**{**options, "mixing": "identity", "observed_dim": None})
            d = ds.num_factors
            out = d if observed_dim is None else (observed_dim(d) if callable(observed_dim) else int(observed_dim))
            # the function gets ``seed`` and whichever of the dataset's options it names
            named = {k: v for k, v in options.items() if k in inspect.signature(fn).parameters and k != "seed"}
            ds.mixing = FunctionMixing(functools.partial(fn, seed=int(options.get("seed", 0)), **named), d, out,
                                       mixing_class=mixing, mixing_note=mixing_note)
            ds.observation_shape = (out,)
            ds.name = name
            ds.options = {**ds.options, "mixing": name}
            return ds

        # the same options as ``synthetic``; ``mixing`` and ``observed_dim`` are accepted and ignored
        factory.__signature__ = inspect.signature(make_synthetic)
        factory.__doc__ = f"``synthetic`` latents through the simulator {fn.__name__!r} ({mixing}). {fn.__doc__ or ''}"
        register_dataset(name)(factory)
        return fn

    return deco


@functools.lru_cache(maxsize=16)
def _mlp(d: int, seed: int, layers: int, slope: float):
    from crlkit.data.synthetic import _sub_seed
    from crlkit.mixing import InvertibleMLP

    return InvertibleMLP(d, n_layers=layers, slope=slope, seed=_sub_seed(seed, 1))


@register_simulator("synthetic_folded", mixing="not_injective",
                    mixing_note="the first latent enters only through |z0|, so z and its mirror image in z0 "
                                "give the same x")
def folded(z: np.ndarray, *, seed: int, mixing_layers: int = 3, slope: float = 0.2) -> np.ndarray:
    """x = g(|z0|, z1, ..., z{d-1}) with g the invertible leaky-ReLU MLP that ``synthetic`` builds
    from the same ``seed``, ``mixing_layers`` and ``slope``: the same mixing, except that the sign
    of z0 is lost."""
    h = z.copy()
    h[:, 0] = np.abs(h[:, 0])
    return _mlp(z.shape[1], int(seed), int(mixing_layers), float(slope))(h)
