import numpy as np
import pytest
from scipy import stats

from crlkit.errors import CrlkitError
from crlkit.scm import (LatentSCM, SoftIntervention, ZeroMechanism, descendants, is_dag, random_dag,
                        topological_order)


@pytest.mark.parametrize("mechanism", ["linear", "nonlinear"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hard_intervention_changes_only_target_and_descendants(mechanism, seed):
    scm = LatentSCM.random(7, "er", expected_degree=2.5, mechanism=mechanism, seed=seed)
    z = scm.sample(500, seed=11)
    for target in range(7):
        z_do = scm.intervene({target: 3.0}).sample(500, seed=11)
        desc = set(scm.descendants(target))
        for j in range(7):
            if j == target:
                np.testing.assert_array_equal(z_do[:, j], 3.0)
            elif j in desc:
                assert np.abs(z_do[:, j] - z[:, j]).max() > 1e-6, (target, j)
            else:
                np.testing.assert_array_equal(z_do[:, j], z[:, j])  # exactly equal


def test_soft_intervention_keeps_noise_and_changes_descendants():
    scm = LatentSCM.random(4, "chain", seed=0)
    z = scm.sample(300, seed=5)
    soft = scm.soft_intervene({1: SoftIntervention(noise_scale=3.0, shift=1.0)})
    z2 = soft.sample(300, seed=5)
    np.testing.assert_array_equal(z2[:, 0], z[:, 0])
    # z1 = w z0 + 1 + 3 ε1  vs  w z0 + ε1: the difference is exactly 1 + 2 ε1
    eps = scm.sample_full(300, seed=5).noise[:, 1]
    np.testing.assert_allclose(z2[:, 1] - z[:, 1], 1.0 + 2.0 * eps, atol=1e-12)
    assert np.all(np.abs(z2[:, 2:] - z[:, 2:]).max(axis=0) > 1e-3)
    # cutting the parents (perfect stochastic intervention): z1 becomes its own noise
    cut = scm.soft_intervene({1: {"mechanism": ZeroMechanism()}}).sample(300, seed=5)
    np.testing.assert_allclose(cut[:, 1], eps, atol=1e-12)
    assert abs(np.corrcoef(cut[:, 0], cut[:, 1])[0, 1]) < 0.2 < abs(np.corrcoef(z[:, 0], z[:, 1])[0, 1])


def test_graph_types_have_the_right_edges():
    d = 6
    assert (random_dag(d, "empty") == 0).all()
    np.testing.assert_array_equal(random_dag(d, "chain"), np.eye(d, k=1))
    np.testing.assert_array_equal(random_dag(d, "full"), np.triu(np.ones((d, d)), 1))
    # ER: strictly upper triangular (acyclic in causal order) with the expected edge count
    counts = [random_dag(10, "er", expected_degree=3, rng=s).sum() for s in range(200)]
    assert np.all([np.allclose(np.tril(random_dag(10, "er", expected_degree=3, rng=s)), 0) for s in range(20)])
    # E[edges] = p · d(d-1)/2 with p = 3/9, i.e. 15 (expected degree 3 = 2·edges/d)
    assert abs(np.mean(counts) - 15.0) < 1.0
    for g in ("er", "chain", "full", "empty"):
        scm = LatentSCM.random(6, g, seed=3)
        assert is_dag(scm.adjacency)
        assert ((scm.adjacency != 0) == (random_dag(6, g, rng=np.random.default_rng(3)) != 0)).all()


def test_cycles_are_detected():
    a = np.eye(3, k=1)
    a[2, 0] = 1.0
    assert not is_dag(a)
    with pytest.raises(CrlkitError, match="cycle"):
        topological_order(a)
    with pytest.raises(CrlkitError, match="cycle"):
        LatentSCM(a)
    # a permuted DAG is sorted correctly: parents come before children
    perm = [3, 0, 4, 1, 2]
    dag = random_dag(5, "full")[np.ix_(perm, perm)]
    order = topological_order(dag)
    pos = {j: k for k, j in enumerate(order)}
    assert all(pos[i] < pos[j] for i, j in zip(*np.nonzero(dag)))
    assert descendants(np.eye(4, k=1), 1) == {2, 3}


def test_linear_weights_bounded_away_from_zero_and_sign_mixed():
    w = np.concatenate([LatentSCM.random(8, "full", seed=s).adjacency[np.triu_indices(8, 1)] for s in range(5)])
    assert np.all(np.abs(w) >= 0.5) and np.all(np.abs(w) <= 2.0)
    assert 0.3 < np.mean(w > 0) < 0.7
    # linear SCM really is z = W^T z + ε: regressing z_j on its parents recovers the weights
    scm = LatentSCM.random(5, "full", seed=4)
    z = scm.sample(20000, seed=0)
    coef = np.linalg.lstsq(z[:, :4], z[:, 4], rcond=None)[0]
    np.testing.assert_allclose(coef, scm.adjacency[:4, 4], atol=0.03)


@pytest.mark.parametrize("noise", ["gaussian", "laplace", "uniform"])
def test_noise_is_standardised(noise):
    z = LatentSCM.random(3, "empty", noise=noise, noise_scale=2.0, seed=0).sample(40000, seed=1)
    np.testing.assert_allclose(z.std(axis=0), 2.0, rtol=0.03)
    kurt = stats.kurtosis(z, axis=0).mean()
    assert {"gaussian": abs(kurt) < 0.15, "laplace": kurt > 2.0, "uniform": kurt < -1.0}[noise]


def test_segment_statistics_match_their_scales_and_means():
    scm = LatentSCM.random(5, "empty", segments=40, segment_mean_range=(-5, 5), seed=0)
    assert scm.num_segments == 40
    u = np.repeat(np.arange(40), 1000)
    z = scm.sample(len(u), seed=1, u=u)
    sd = np.stack([z[u == k].std(axis=0) for k in range(40)])
    mu = np.stack([z[u == k].mean(axis=0) for k in range(40)])
    np.testing.assert_allclose(sd, scm.segment_scale, rtol=0.1)
    np.testing.assert_allclose(mu, scm.segment_shift, atol=0.35)
    assert scm.segment_scale.min() >= 0.5 and scm.segment_scale.max() <= 3.0
    # without u, labels are drawn uniformly
    s = scm.sample_full(4000, seed=2)
    assert len(np.unique(s.u)) == 40


def test_log_prob_is_a_normalised_density():
    # 1-d models: integrate exp(log p) numerically
    for noise in ("gaussian", "laplace"):
        scm = LatentSCM.random(1, "empty", noise=noise, segments=3, segment_mean_range=(-2, 2), seed=0)
        grid = np.linspace(-40, 40, 200001)[:, None]
        mass = np.trapezoid(np.exp(scm.log_prob(grid)), grid[:, 0])
        assert abs(mass - 1.0) < 1e-4
    # marginal cdf / ppf are inverse of each other and match the empirical CDF
    scm = LatentSCM.random(3, "empty", noise="laplace", segments=5, segment_mean_range=(-3, 3), seed=1)
    z = scm.sample(20000, seed=0)
    q = scm.marginal_cdf(z)
    for j in range(3):
        assert stats.kstest(q[:, j], "uniform").pvalue > 1e-3
    np.testing.assert_allclose(scm.marginal_ppf(q), z, atol=1e-8)


def test_hidden_confounders_are_not_returned_but_correlate():
    scm = LatentSCM.random(4, "empty", confounders=1, seed=3)
    z = scm.sample(20000, seed=0)
    assert z.shape == (20000, 4)
    (i, j), = scm.confounded_pairs
    c = np.corrcoef(z.T)
    assert abs(c[i, j]) > 0.2
    others = [abs(c[a, b]) for a in range(4) for b in range(a + 1, 4) if (a, b) != (i, j)]
    assert max(others) < 0.05
    assert (scm.adjacency == 0).all()  # the observed graph has no edge between them


def test_invalid_options_raise_crlkit_errors_naming_the_field():
    with pytest.raises(CrlkitError, match="graph"):
        LatentSCM.random(3, "tree")
    with pytest.raises(CrlkitError, match="mechanism"):
        LatentSCM.random(3, mechanism="cubic")
    with pytest.raises(CrlkitError, match="noise"):
        LatentSCM.random(3, noise="cauchy")
    with pytest.raises(CrlkitError, match="target"):
        LatentSCM.random(3).intervene({5: 1.0})
    with pytest.raises(CrlkitError, match="weight_range"):
        LatentSCM.random(3, weight_range=(0.0, 1.0))


@pytest.mark.parametrize("mechanism", ["linear", "nonlinear"])
def test_standardized_model_is_the_same_model_rescaled(mechanism):
    scm = LatentSCM.random(6, "chain", mechanism=mechanism, weight_range=(1.5, 2.0), confounders=1, seed=0)
    std = scm.standardized(seed=1, n_probe=20000)
    a, b = scm.sample_full(5000, seed=3), std.sample_full(5000, seed=3)
    c = a.z_full[0] / b.z_full[0]
    np.testing.assert_allclose(b.z_full * c, a.z_full, rtol=1e-9, atol=1e-9)  # exactly z / c, same noise
    np.testing.assert_allclose(b.z.std(axis=0), 1.0, atol=0.05)
    assert a.z[:, -1].std() > 2 * a.z[:, 0].std()  # the unstandardised chain's variance grows
    np.testing.assert_array_equal(std.adjacency != 0, scm.adjacency != 0)
    # counterfactual consistency still holds in the standardised model
    z_do = std.intervene({2: 0.0}).sample(500, seed=4)
    z0 = std.sample(500, seed=4)
    np.testing.assert_array_equal(z_do[:, :2], z0[:, :2])
