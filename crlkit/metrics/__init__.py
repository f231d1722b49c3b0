"""Metrics: plain functions of arrays (or of a representation function and a dataset).

Disentanglement (disentanglement_lib definitions and defaults), identifiability for causal
representation learning, and robustness (worst-group accuracy).
"""

from crlkit.metrics.identifiability import (
    block_r2_score,
    correlation_matrix,
    linear_r2_score,
    mcc_matching,
    mcc_score,
    mcc_score_out_of_sample,
    nonlinear_r2_score,
    random_rotation,
    random_rotation_baseline,
    shd,
)

__all__ = [
    "block_r2_score", "correlation_matrix", "linear_r2_score", "mcc_matching", "mcc_score",
    "mcc_score_out_of_sample", "nonlinear_r2_score", "random_rotation", "random_rotation_baseline", "shd",
]
