import json

import numpy as np
import pytest
import torch

from crlkit.errors import CrlkitError
from crlkit.metrics import (GridCache, accuracy_score, as_representation_fn, beta_vae_score, evaluate,
                            factor_vae_score, gaussian_total_correlation, gaussian_wasserstein_correlation,
                            group_accuracies, mean_group_accuracy, mutual_info_between_latents,
                            robustness_scores, unsupervised_scores, worst_group_accuracy)


def test_beta_vae_score_identity_vs_noise(toy, toy_identity):
    ident = beta_vae_score(toy_identity, toy, seed=0, batch_size=16, n_train=150, n_eval=90)
    assert ident > 0.95
    rng = np.random.default_rng(0)
    noise = beta_vae_score(lambda x: rng.standard_normal((len(x), 3)), toy, seed=0, batch_size=16,
                           n_train=150, n_eval=90)
    assert noise < 0.6  # chance is 1/3


def test_factor_vae_score_identity_pruning_and_scale(toy, toy_identity):
    kw = dict(seed=0, batch_size=16, n_train=60, n_eval=60, n_variance_estimate=500)
    assert factor_vae_score(toy_identity, toy, **kw) == pytest.approx(1.0)
    # a collapsed extra latent (std < 0.05) is pruned and cannot take votes
    with_dead = lambda x: np.column_stack([toy_identity(x), np.full(len(x), 3.0)])  # noqa: E731
    assert factor_vae_score(with_dead, toy, **kw) == pytest.approx(1.0)
    # rescaling a latent leaves the variance ratios (and the score) unchanged
    scaled = lambda x: toy_identity(x) * np.array([10.0, 0.5, 3.0])  # noqa: E731
    assert factor_vae_score(scaled, toy, **kw) == pytest.approx(1.0)
    assert factor_vae_score(lambda x: np.zeros((len(x), 3)), toy, **kw) == 0.0


class _TinyVAE(torch.nn.Module):
    """encode_dist -> (mean, logvar): mean = factors, small posterior variance."""

    def __init__(self, toy):
        super().__init__()
        self.lin = torch.nn.Linear(6, 3, bias=False)
        self.lin.weight.data = torch.tensor(np.linalg.pinv(toy.mix).T, dtype=torch.float32)

    def encode_dist(self, x):
        mean = self.lin(x)
        return mean, torch.full_like(mean, -6.0)

    def encode(self, x):
        return self.encode_dist(x)[0]


def test_evaluate_suite_and_grid_cache(toy):
    model = _TinyVAE(toy)
    timings = {}
    scores = evaluate(model, toy, ["mig", "dci", "irs", "mcc", "factor_vae"], seed=0, n_train=300, n_test=100,
                      timings=timings)
    assert set(scores) == {"mig", "dci_disentanglement", "dci_completeness", "dci_informativeness", "irs", "mcc",
                           "factor_vae"}
    assert scores["mig"] > 0.8 and scores["dci_informativeness"] > 0.99 and scores["mcc"] > 0.99
    # the grid has 4*5*3 = 60 points: the cache encodes each at most once, however many samples
    assert timings["n_encoded"] <= 60
    again = evaluate(model, toy, ["mig", "dci", "irs", "mcc", "factor_vae"], seed=0, n_train=300, n_test=100)
    assert again == scores  # seeded
    sampled = evaluate(model, toy, ["mcc"], seed=0, n_train=300, n_test=100, mode="sampled")
    assert 0.95 < sampled["mcc"] < scores["mcc"]  # posterior noise (std e^-3) lowers MCC a little


def test_grid_cache_sampled_mode_draws_fresh_noise(toy):
    cache = GridCache(_TinyVAE(toy), toy, mode="sampled", seed=0)
    f = np.zeros((4, 3), dtype=int)
    a = cache.encode_factors(f, np.random.default_rng(0))
    assert cache.n_encoded == 1
    assert not np.allclose(a[0], a[1])


def test_representation_fn_accepts_torch_and_checks_output():
    rep = as_representation_fn(lambda x: torch.as_tensor(x)[:, :2], batch_size=3)
    out = rep(np.arange(20, dtype=np.float32).reshape(10, 2))
    assert out.shape == (10, 2) and out.dtype == np.float64
    with pytest.raises(CrlkitError, match="NaN"):
        as_representation_fn(lambda x: np.full((len(x), 2), np.nan))(np.zeros((3, 2)))
    with pytest.raises(CrlkitError, match="sampled"):
        as_representation_fn(lambda x: x, mode="sampled")
    with pytest.raises(CrlkitError, match="mode"):
        as_representation_fn(lambda x: x, mode="median")


def test_evaluate_bad_names(toy, toy_identity):
    with pytest.raises(CrlkitError, match="did you mean 'mig'"):
        evaluate(toy_identity, toy, ["mgi"])
    with pytest.raises(CrlkitError, match="n_train"):
        evaluate(toy_identity, toy, ["mig"], n_train=3)


def test_unsupervised_scores():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((20000, 2))
    assert gaussian_total_correlation(z) == pytest.approx(0.0, abs=2e-3)
    rho = 0.6
    zc = z @ np.linalg.cholesky(np.array([[1, rho], [rho, 1]])).T
    assert gaussian_total_correlation(zc) == pytest.approx(-0.5 * np.log(1 - rho ** 2), abs=0.01)
    assert gaussian_total_correlation(zc * [3.0, 0.1]) == pytest.approx(gaussian_total_correlation(zc))
    assert gaussian_wasserstein_correlation(z) == pytest.approx(0.0, abs=0.01)
    assert gaussian_wasserstein_correlation(zc) > 0.1
    assert gaussian_wasserstein_correlation(zc * 5, normalize=True) == pytest.approx(
        gaussian_wasserstein_correlation(zc, normalize=True))
    assert mutual_info_between_latents(zc) > mutual_info_between_latents(z) + 0.1
    s = unsupervised_scores(zc)
    assert set(s) == {"gaussian_total_correlation", "gaussian_wasserstein_correlation",
                      "gaussian_wasserstein_correlation_norm", "mutual_info"}
    with pytest.raises(CrlkitError, match="at least 2 latents"):
        gaussian_total_correlation(z[:, :1])


def test_robustness():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    a = np.array([0, 0, 0, 1, 1, 1, 1, 0])
    pred = np.array([0, 0, 0, 1, 1, 1, 1, 1])  # wrong only on the (label 0, attr 1) sample
    assert accuracy_score(y, pred) == pytest.approx(7 / 8)
    groups = group_accuracies(y, pred, a)
    assert groups[(0, 1)] == (0.0, 1) and groups[(0, 0)] == (1.0, 3) and groups[(1, 0)] == (1.0, 1)
    assert worst_group_accuracy(y, pred, a) == 0.0
    assert mean_group_accuracy(y, pred, a) == pytest.approx(0.75)
    logits = np.eye(2)[pred] * 3.0
    r = robustness_scores(y, logits, a, group_weights={(0, 0): 3, (0, 1): 1, (1, 0): 1, (1, 1): 3})
    assert r["weighted_accuracy"] == pytest.approx(7 / 8)
    json.dumps(r)  # serialisable
    with pytest.raises(CrlkitError, match="group_weights"):
        robustness_scores(y, pred, a, group_weights={(0, 0): 1})
    with pytest.raises(CrlkitError, match="mismatched"):
        accuracy_score(y, pred[:-1])
