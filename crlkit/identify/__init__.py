"""Identifiability: benchmarks of the causal representation learning methods that escape the
impossibility of unsupervised disentanglement (``crlkit identify``), and the impossibility
construction itself (:mod:`crlkit.identify.impossibility`)."""

from crlkit.identify.benchmark import (METHODS, IdentifySetting, evaluate_representation, make_setting,
                                       run_identify)

__all__ = ["METHODS", "IdentifySetting", "evaluate_representation", "make_setting", "run_identify"]
