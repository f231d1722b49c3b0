"""Procedural ground-truth datasets, a registry by name, and batch samplers.

>>> from crlkit.data import make_dataset, list_datasets
>>> ds = make_dataset("dsprites")
"""

from __future__ import annotations

import importlib
from typing import Any

from crlkit.data.base import GroundTruthData, as_generator
from crlkit.errors import CrlkitError
from crlkit.registry import Registry, check_options

DATASETS: Registry = Registry("dataset")

# Modules that register datasets when imported. A module that is missing is skipped, so a
# partial checkout still imports; every registered name is listed in errors.
_DATASET_MODULES = (
    "crlkit.data.dsprites",
    "crlkit.data.shapes3d",
    "crlkit.data.pendulum",
    "crlkit.data.synthetic",
    "crlkit.data.cows_camels",
    "crlkit.data.simulator",
    "crlkit.data.arrays",
    "crlkit.data.chamber",
)
_loaded = False


def register_dataset(name: str):
    """Decorator: register a dataset class or factory under ``name``.

    The factory returns a :class:`GroundTruthData`; to state what the dataset offers (its
    contract: auxiliary variables, pairs, the mixing's class, ...) set ``declared_contract`` on
    the class (a :class:`crlkit.contracts.DataContract`). To register a plain function from
    factors to observations over crlkit's latent causal model, use
    :func:`crlkit.data.simulator.register_simulator`, which declares the contract for you.
    """
    return DATASETS.register(name)


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _DATASET_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:  # only tolerate the module itself being absent
            if e.name != mod:
                raise


def list_datasets() -> list[str]:
    _load_all()
    return DATASETS.names()


def make_dataset(name: str, **options) -> GroundTruthData:
    """Build the dataset registered as ``name``; unknown names/options raise CrlkitError."""
    _load_all()
    factory = DATASETS.get(name)
    check_options(f"dataset {name!r}", factory, options)
    return factory(**options)


def dataset_from_options(name: str, options: dict[str, Any] | None = None) -> tuple[GroundTruthData, dict]:
    """``make_dataset(name, **options)`` with string values (from ``--data-set key=value``)
    coerced to the factory's option types; returns the dataset and the coerced options.
    Unknown options raise CrlkitError naming the valid ones."""
    from crlkit.config import coerce_options, signature_fields
    from crlkit.registry import unknown_choice

    _load_all()
    factory = DATASETS.get(str(name))
    table = signature_fields(factory)
    for k in options or {}:
        if k not in table:
            raise CrlkitError(unknown_choice(f"option for dataset {name!r}", k, table))
    opts = coerce_options(dict(options or {}), table)
    return make_dataset(str(name), **opts), opts


__all__ = ["dataset_from_options", "GroundTruthData", "as_generator", "make_dataset", "list_datasets", "register_dataset", "DATASETS"]
