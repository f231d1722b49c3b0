"""Metrics: plain functions of arrays (or of a representation function and a dataset).

- Disentanglement (disentanglement_lib's definitions and defaults): :func:`mig_score`,
  :func:`dci_scores`, :func:`sap_score`, :func:`modularity_explicitness_scores`,
  :func:`irs_score`; dataset-driven :func:`beta_vae_score`, :func:`factor_vae_score`;
  unsupervised :func:`unsupervised_scores` (Gaussian total / Wasserstein correlation, MI).
- Identifiability (causal representation learning): :func:`mcc_score`,
  :func:`linear_r2_score`, :func:`nonlinear_r2_score`, :func:`block_r2_score`, :func:`shd`,
  :func:`random_rotation_baseline`.
- Robustness (shortcut learning): :func:`worst_group_accuracy` and friends.
- :func:`evaluate` runs a suite on a model or representation function and a dataset.

Arrays: ``codes`` (n_samples, n_latents) float, ``factors`` (n_samples, n_factors) int.
Bad input raises :class:`crlkit.CrlkitError` (a ``ValueError``) naming the problem.
"""

from crlkit.metrics._info import discretize
from crlkit.metrics.disentanglement import (
    dci_importance_matrix,
    dci_scores,
    irs_score,
    mig_score,
    modularity_explicitness_scores,
    sap_score,
)
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
from crlkit.metrics.robustness import (
    accuracy_score,
    group_accuracies,
    mean_group_accuracy,
    robustness_scores,
    worst_group_accuracy,
)
from crlkit.metrics.sampled import as_representation_fn, beta_vae_score, encode_factors, factor_vae_score
from crlkit.metrics.unsupervised import (
    gaussian_total_correlation,
    gaussian_wasserstein_correlation,
    mutual_info_between_latents,
    unsupervised_scores,
)

__all__ = [
    "discretize",
    "dci_importance_matrix", "dci_scores", "irs_score", "mig_score", "modularity_explicitness_scores", "sap_score",
    "block_r2_score", "correlation_matrix", "linear_r2_score", "mcc_matching", "mcc_score",
    "mcc_score_out_of_sample", "nonlinear_r2_score", "random_rotation", "random_rotation_baseline", "shd",
    "accuracy_score", "group_accuracies", "mean_group_accuracy", "robustness_scores", "worst_group_accuracy",
    "as_representation_fn", "beta_vae_score", "encode_factors", "factor_vae_score",
    "gaussian_total_correlation", "gaussian_wasserstein_correlation", "mutual_info_between_latents",
    "unsupervised_scores",
]

from crlkit.metrics.evaluate import DEFAULT_METRICS, METRIC_NAMES, GridCache, evaluate  # noqa: E402

__all__ += ["DEFAULT_METRICS", "METRIC_NAMES", "GridCache", "evaluate"]
from crlkit.metrics.udr import udr_pair_score, udr_scores  # noqa: E402

__all__ += ["udr_pair_score", "udr_scores"]
