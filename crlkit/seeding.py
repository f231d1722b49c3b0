"""Explicit seeding: every random draw in crlkit comes from a Generator the caller gives."""

from __future__ import annotations

import numpy as np

from crlkit.errors import CrlkitError


def as_generator(rng) -> np.random.Generator:
    """Accept a Generator (returned as is) or an int seed (explicit seeding, never the global RNG)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        raise CrlkitError("a seed or numpy.random.Generator is required (crlkit uses no global RNG)")
    return np.random.default_rng(rng)
