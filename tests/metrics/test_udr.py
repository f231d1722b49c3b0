"""UDR: models that agree up to permutation / sign / rescaling score high, unrelated ones low."""

import numpy as np
import pytest

from crlkit.errors import CrlkitError
from crlkit.metrics import udr_pair_score, udr_scores


def _latents(n=1000, d=5, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d))


@pytest.mark.parametrize("similarity", ["spearman", "lasso"])
def test_permuted_rescaled_copies_score_one(similarity):
    z = _latents()
    rng = np.random.default_rng(1)
    copies = [z[:, rng.permutation(5)] * rng.choice([-2.0, 0.5, 3.0], size=5) for _ in range(4)]
    scores = udr_scores(copies, similarity=similarity)
    assert scores.shape == (4,)
    assert np.all(scores > 0.85)  # off-diagonal sampling noise (1,000 inputs) / Lasso shrinkage


def test_random_rotations_score_low():
    z = _latents(d=5)
    rng = np.random.default_rng(2)
    rotated = [z @ np.linalg.qr(rng.standard_normal((5, 5)))[0] for _ in range(4)]
    independent = [_latents(d=5, seed=10 + k) for k in range(4)]
    assert np.all(udr_scores(rotated) < 0.35)
    assert np.all(udr_scores(independent) < 0.1)
    assert np.all(udr_scores(independent, similarity="lasso") < 0.1)


def test_collapsed_latents_are_ignored():
    z = _latents(d=3)
    noise = np.random.default_rng(3).standard_normal((1000, 2))
    a = np.hstack([z, noise])                      # 3 used latents + 2 collapsed ones
    other = np.random.default_rng(4).standard_normal((1000, 2))
    b = np.hstack([z[:, [2, 0, 1]], other * 0.1])    # the collapsed latents carry unrelated noise
    kl_a = np.array([1.0, 1.0, 1.0, 0.0, 0.0])
    kl_b = np.array([1.0, 1.0, 1.0, 0.001, 0.001])
    kept = udr_pair_score(a, b, kl_a=kl_a, kl_b=kl_b)
    assert kept > 0.95
    assert udr_pair_score(a, b) < kept - 0.2             # counting the collapsed noise lowers it
    assert udr_pair_score(a, b, kl_a=np.zeros(5), kl_b=kl_b) == 0.0


def test_group_of_one_and_bad_input():
    assert np.isnan(udr_scores([_latents()])[0])
    with pytest.raises(CrlkitError, match="same inputs"):
        udr_pair_score(_latents(n=10), _latents(n=11))
    with pytest.raises(CrlkitError, match="similarity"):
        udr_pair_score(_latents(), _latents(), similarity="pearson")
