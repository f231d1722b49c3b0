"""Procedural ground-truth datasets, a registry by name, and batch samplers.

>>> from crlkit.data import make_dataset, list_datasets
>>> ds = make_dataset("dsprites")
"""

from __future__ import annotations

import importlib

from crlkit.data.base import GroundTruthData, as_generator
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
)
_loaded = False


def register_dataset(name: str):
    """Decorator: register a dataset class or factory under ``name``."""
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


__all__ = ["GroundTruthData", "as_generator", "make_dataset", "list_datasets", "register_dataset", "DATASETS"]
