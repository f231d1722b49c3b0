"""Mixing functions ``g: z -> x`` with exact inverses (the second half of every synthetic
dataset: latent causal model, then mixing).

>>> from crlkit.mixing import InvertibleMLP, make_mixing
>>> g = InvertibleMLP(5, n_layers=3, seed=0)
>>> x = g(z); z_back = g.inverse(x)
"""

from __future__ import annotations

from crlkit.errors import CrlkitError
from crlkit.mixing.base import Mixing, TorchMixing, relative_error
from crlkit.mixing.linear import IdentityMixing, LinearMixing, random_orthogonal
from crlkit.mixing.mlp import InvertibleMLP, condition_number, condition_threshold
from crlkit.mixing.polynomial import PolynomialMixing
from crlkit.registry import unknown_choice

MIXINGS = ("mlp", "linear", "orthogonal", "polynomial", "identity")


def make_mixing(name: str, dim: int, *, n_layers: int = 3, slope: float = 0.2, seed: int = 0,
                out_dim: int | None = None, degree: int = 2, cond_quantile: float = 0.25,
                n_draws: int = 10_000, activation: str = "lrelu") -> Mixing:
    """Build a mixing by name.

    ``"mlp"`` -> InvertibleMLP(dim, n_layers, slope, activation); ``"linear"`` -> LinearMixing(kind="random");
    ``"orthogonal"`` -> LinearMixing(kind="orthogonal"); ``"polynomial"`` ->
    PolynomialMixing(degree); ``"identity"`` -> IdentityMixing. ``out_dim`` (>= dim) is
    supported by mlp, linear and orthogonal.
    """
    if name not in MIXINGS:
        raise CrlkitError(unknown_choice("mixing", name, MIXINGS))
    if out_dim is not None and out_dim != dim and name in ("polynomial", "identity"):
        raise CrlkitError(f"mixing {name!r} is square: out_dim must equal dim={dim}; got {out_dim}")
    if name == "mlp":
        return InvertibleMLP(dim, n_layers=n_layers, slope=slope, seed=seed, out_dim=out_dim,
                             cond_quantile=cond_quantile, n_draws=n_draws, activation=activation)
    if name in ("linear", "orthogonal"):
        return LinearMixing(dim, out_dim=out_dim, kind="random" if name == "linear" else "orthogonal",
                            seed=seed, cond_quantile=cond_quantile, n_draws=n_draws)
    if name == "polynomial":
        return PolynomialMixing(dim, degree=degree, seed=seed, cond_quantile=cond_quantile, n_draws=n_draws)
    return IdentityMixing(dim)


__all__ = ["Mixing", "TorchMixing", "InvertibleMLP", "LinearMixing", "PolynomialMixing", "IdentityMixing",
           "make_mixing", "MIXINGS", "condition_number", "condition_threshold", "random_orthogonal",
           "relative_error"]
