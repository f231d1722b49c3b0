import numpy as np
import pytest
import torch

from crlkit.data import make_dataset
from crlkit.data.samplers import make_sampler
from crlkit.errors import CrlkitError


def test_synthetic_is_deterministic_and_has_its_ground_truth():
    a = make_dataset("synthetic", latents=4, graph="er", mechanism="nonlinear", segments=3, seed=5)
    b = make_dataset("synthetic", latents=4, graph="er", mechanism="nonlinear", segments=3, seed=5)
    c = make_dataset("synthetic", latents=4, graph="er", mechanism="nonlinear", segments=3, seed=6)
    fa, xa = a.sample(200, 1)
    fb, xb = b.sample(200, 1)
    np.testing.assert_array_equal(fa, fb)
    np.testing.assert_array_equal(xa, xb)
    assert not np.allclose(c.sample(200, 1)[1], xa)
    assert a.factor_sizes is None and a.observation_shape == (4,) and a.num_segments == 3
    assert xa.dtype == np.float32 and fa.shape == (200, 4)
    np.testing.assert_array_equal(a.graph, a.scm.adjacency)
    # exact mixing: observations_from_factors inverts back to the factors
    np.testing.assert_allclose(a.inverse(xa), fa, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(a.mixing.inverse(a.mixing(fa)), fa, atol=1e-10)
    # device= returns a tensor with the same values
    xt = a.observations_from_factors(fa, device="cpu")
    assert isinstance(xt, torch.Tensor)
    np.testing.assert_allclose(xt.numpy(), xa, rtol=1e-6)
    info = a.info()
    assert info["factor_sizes"] is None and info["num_segments"] == 3


def test_observed_dim_obs_noise_and_presets():
    ds = make_dataset("synthetic", latents=3, observed_dim=7, mixing="linear", obs_noise=0.1, seed=0)
    z = ds.sample_factors(5000, 0)
    x = ds.observations_from_factors(z, np.random.default_rng(1))
    assert x.shape == (5000, 7)
    resid = x - ds.mixing(z)
    assert abs(resid.std() - 0.1) < 0.005
    with pytest.raises(CrlkitError, match="rng"):
        ds.observations_from_factors(z)
    iv = make_dataset("ivae_segments", seed=1)
    assert iv.num_segments == 40 and iv.num_factors == 5 and iv.mixing.n_layers == 3
    assert iv.scm.segment_scale.min() >= 0.5 and iv.scm.segment_scale.max() <= 3.0
    cu = make_dataset("contrastive_uniform", latents=4)
    lo, hi = cu.latent_bounds
    np.testing.assert_allclose(hi - lo, 1.0)
    z = cu.sample_factors(2000, 0)
    assert z.min() >= lo.min() and z.max() <= hi.max()


def test_dataset_options_are_validated():
    with pytest.raises(CrlkitError, match="latent"):
        make_dataset("synthetic", latnets=3)
    with pytest.raises(CrlkitError, match="mixing"):
        make_dataset("synthetic", mixing="mpl")
    with pytest.raises(CrlkitError, match="graph"):
        make_dataset("synthetic", graph="dag")
    with pytest.raises(CrlkitError, match="observed_dim"):
        make_dataset("synthetic", latents=4, observed_dim=3)
    with pytest.raises(CrlkitError, match="mixing_layers"):
        make_dataset("synthetic", mixing_layers=0)


def test_xtanh_mixing_option():
    ds = make_dataset("synthetic", latents=3, mixing_layers=3, slope=0.1, mixing_activation="xtanh", seed=0)
    assert ds.mixing.activation == "xtanh" and ds.options["mixing_activation"] == "xtanh"
    z, x = ds.sample(500, np.random.default_rng(0))
    np.testing.assert_allclose(ds.inverse(x), z, atol=1e-4)  # x is float32
    lrelu = make_dataset("synthetic", latents=3, mixing_layers=3, slope=0.1, seed=0)
    assert not np.allclose(np.asarray(lrelu.observations_from_factors(z)), np.asarray(x))
    with pytest.raises(CrlkitError, match="activation"):
        make_dataset("synthetic", latents=3, mixing_activation="gelu")


def test_segment_batches():
    ds = make_dataset("synthetic", latents=3, segments=6, seed=0)
    s = make_sampler("segment", ds, batch_size=600, seed=3)
    b = next(s)
    assert b["u"].shape == (600, 6) and torch.all(b["u"].sum(1) == 1)
    assert torch.equal(b["u"].argmax(1), b["segment"])
    # per-segment variance follows the segment's scale
    seg, z = b["segment"].numpy(), b["factors"].numpy()
    for k in range(6):
        sd = z[seg == k].std(axis=0)
        assert np.all(np.abs(np.log(sd / ds.scm.segment_scale[k])) < 0.35)
    with pytest.raises(CrlkitError, match="segments"):
        make_sampler("segment", make_dataset("synthetic", latents=3), batch_size=4, seed=0)


def test_sampler_state_resumes_the_same_stream():
    ds = make_dataset("synthetic", latents=3, segments=4, seed=0)
    s = make_sampler("intervention_pair", ds, batch_size=16, seed=9)
    next(s)
    state = s.state_dict()
    after = next(s)
    t = make_sampler("intervention_pair", ds, batch_size=16, seed=123)
    t.load_state_dict(state)
    again = next(t)
    for k in after:
        assert torch.equal(after[k], again[k])


@pytest.mark.parametrize("conditional", ["gaussian", "laplace"])
def test_positive_pairs_are_near_and_truncated_to_the_box(conditional):
    ds = make_dataset("contrastive_uniform", latents=4, seed=0)
    b = next(make_sampler("positive_pair", ds, batch_size=4000, seed=0, conditional=conditional, sigma=0.05))
    z, z2 = b["factors"].numpy(), b["factors2"].numpy()
    lo, hi = ds.latent_bounds
    assert z2.min() >= lo.min() and z2.max() <= hi.max()
    diff = z2 - z
    # away from the walls the conditional is untruncated: its std is sigma (Laplace(0, b): sqrt(2) b)
    inner = np.all((z > lo + 0.3) & (z < hi - 0.3), axis=1)
    expected = 0.05 if conditional == "gaussian" else 0.05 * np.sqrt(2)
    assert abs(diff[inner].std() / expected - 1) < 0.1
    # x2 renders z2
    np.testing.assert_allclose(ds.inverse(b["x2"].numpy()), z2, atol=1e-4)
    # untruncated Gaussian latents: plain additive noise
    g = make_dataset("synthetic", latents=3, seed=0)
    bg = next(make_sampler("positive_pair", g, batch_size=2000, seed=1, conditional="gaussian", sigma=0.2))
    assert abs((bg["factors2"] - bg["factors"]).std().item() - 0.2) < 0.01


def test_views_share_content_exactly_and_change_style():
    ds = make_dataset("synthetic", latents=6, graph="full", mechanism="nonlinear", seed=2)
    b = next(make_sampler("views", ds, batch_size=2000, seed=0, content=3, p_change=0.5))
    z, z2, changed = b["factors"].numpy(), b["factors2"].numpy(), b["changed"].numpy().astype(bool)
    np.testing.assert_array_equal(z2[:, :3], z[:, :3])          # content identical
    assert not changed[:, :3].any()
    assert abs(changed[:, 3:].mean() - 0.5) < 0.03
    # style node 3 (only content parents) changes exactly when its noise was re-drawn
    moved = np.abs(z2[:, 3] - z[:, 3]) > 1e-12
    np.testing.assert_array_equal(moved, changed[:, 3])
    # a style node changes if its own noise or a style parent changed
    assert np.all(np.abs(z2 - z)[:, 3:][changed[:, 3:]] > 0)
    # the re-drawn style keeps its conditional: the marginal variance is unchanged
    np.testing.assert_allclose(z2[:, 3:].std(axis=0), z[:, 3:].std(axis=0), rtol=0.1)


@pytest.mark.parametrize("intervention", ["perfect", "hard", "shift"])
def test_intervention_pairs_differ_only_in_target_and_descendants(intervention):
    ds = make_dataset("synthetic", latents=5, graph="er", expected_degree=2.0, mechanism="nonlinear", seed=4)
    b = next(make_sampler("intervention_pair", ds, batch_size=500, seed=0, intervention=intervention))
    z, z2, t = b["factors"].numpy(), b["factors2"].numpy(), b["target"].numpy()
    assert set(np.unique(t)) == set(range(5))
    for i in range(len(t)):
        affected = {int(t[i]), *ds.scm.descendants(int(t[i]))}
        for j in range(5):
            if j not in affected:
                assert z2[i, j] == z[i, j]
    # the target itself moves (almost surely)
    rows = np.arange(len(t))
    assert np.mean(z2[rows, t] != z[rows, t]) > 0.98
    if intervention == "shift":
        np.testing.assert_allclose(np.abs(z2[rows, t] - z[rows, t]), 2.0, atol=1e-5)  # float32 batches


def test_perfect_intervention_cuts_the_parents():
    ds = make_dataset("synthetic", latents=2, graph="chain", seed=0)  # z0 -> z1, linear
    b = next(make_sampler("intervention_pair", ds, batch_size=4000, seed=0, targets=[1]))
    z, z2 = b["factors"].numpy(), b["factors2"].numpy()
    assert abs(np.corrcoef(z[:, 0], z[:, 1])[0, 1]) > 0.4
    assert abs(np.corrcoef(z2[:, 0], z2[:, 1])[0, 1]) < 0.05
    np.testing.assert_allclose(z2[:, 1].std(), 1.0, rtol=0.05)  # its own noise scale
