"""No warning from scikit-learn reaches a user from a solver crlkit configured: the metrics that
fit classifiers run here with every warning turned into an error, on mixed codes where
LinearSVC's dual solver (scikit-learn's default) stops at its iteration limit."""

import numpy as np
import pytest

from crlkit.metrics import beta_vae_score, modularity_explicitness_scores, sap_score


def _mixed_codes(n=1500):
    from crlkit.data import make_dataset

    rng = np.random.default_rng(0)
    factors = make_dataset("dsprites").sample_factors(n, rng)
    rng.standard_normal((n, 5))
    codes = factors @ rng.standard_normal((5, 5))             # every latent mixes every factor
    return codes, factors


@pytest.mark.filterwarnings("error")
def test_sap_and_explicitness_fit_without_warnings():
    codes, factors = _mixed_codes()
    sap = sap_score(codes[:1000], factors[:1000], codes[1000:], factors[1000:])
    assert 0.0 <= sap < 0.2                                   # mixed codes: no latent stands out
    scores = modularity_explicitness_scores(codes[:1000], factors[:1000], codes[1000:], factors[1000:])
    assert 0.5 < scores["explicitness"] <= 1.0


@pytest.mark.filterwarnings("error")
def test_beta_vae_score_fits_without_warnings(toy, toy_identity):
    assert beta_vae_score(toy_identity, toy, seed=0, n_train=200, n_eval=100, batch_size=8) > 0.9


@pytest.mark.filterwarnings("error")
def test_unsupervised_scores_of_a_collapsed_latent_without_warnings():
    import math

    import scipy.linalg

    from crlkit.metrics import gaussian_wasserstein_correlation, unsupervised_scores

    rng = np.random.default_rng(0)
    codes = rng.standard_normal((500, 4)) @ rng.standard_normal((4, 4))
    cov = np.cov(codes, rowvar=False)
    reference = 2 * np.trace(cov) - 2 * np.real(np.trace(scipy.linalg.sqrtm(cov * np.diag(cov)[:, None])))
    assert math.isclose(gaussian_wasserstein_correlation(codes), reference, rel_tol=1e-10)
    codes[:, 0] = 1.0                                                    # a collapsed latent: singular covariance
    scores = unsupervised_scores(codes)
    assert scores["gaussian_total_correlation"] == math.inf
    assert math.isfinite(scores["gaussian_wasserstein_correlation"]) and scores["gaussian_wasserstein_correlation"] > 0
