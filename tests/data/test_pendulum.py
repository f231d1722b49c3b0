"""Pendulum (CausalVAE): graph, geometry of the derived factors, interventions, rendering."""

import numpy as np
import pytest
import torch

from crlkit.data import make_dataset
from crlkit.data.pendulum import LIGHT_VALUES, PENDULUM_VALUES, shadow_geometry


@pytest.fixture(scope="module")
def ds():
    return make_dataset("pendulum")


def _shadow_columns(img):
    """Columns of the dark shadow in the bottom rows of an (3, H, W) image."""
    dark = (img[:, -3:].max(axis=0) < 0.3).any(axis=0)
    return np.nonzero(dark)[0]


def test_graph(ds):
    g = ds.graph
    assert g.shape == (4, 4)
    expected = np.zeros((4, 4), int)
    expected[np.ix_([0, 1], [2, 3])] = 1
    np.testing.assert_array_equal(g != 0, expected != 0)
    assert ds.info()["graph"] == expected.tolist()


def test_sampled_factors_follow_the_geometry(ds):
    f = ds.sample_factors(500, np.random.default_rng(0))
    np.testing.assert_array_equal(f[:, 2:], ds.derived_factors(f[:, :2]))
    length, pos = shadow_geometry(PENDULUM_VALUES[f[:, 0]], LIGHT_VALUES[f[:, 1]])
    np.testing.assert_array_equal(f[:, 2], np.floor((length - 3.0) / 0.25).astype(int))
    assert length.min() >= 3.0
    assert np.all(f < np.array(ds.factor_sizes)) and np.all(f >= 0)
    # a vertical pendulum under a vertical light casts the minimal shadow under the pivot
    length, pos = shadow_geometry(0, 100)
    assert length == pytest.approx(3.0) and pos == pytest.approx(10.0)


def test_moving_the_light_moves_the_shadow(ds):
    # light from the upper right (phi < 90 deg, sun right of the pivot) puts the shadow left
    # of the pivot (x = 10), a vertical light right under it, light from the left to the right
    p = np.where(PENDULUM_VALUES == 0)[0][0]
    lights = [np.where(LIGHT_VALUES == v)[0][0] for v in (70, 100, 130)]
    f = ds.intervene_factors(np.zeros((3, 4), int), {"pendulum_angle": p, "light_angle": np.array(lights)})
    assert f[0, 3] < f[1, 3] < f[2, 3]  # the shadow position factor grows as the light turns
    x = ds.observations_from_factors(f)
    centres = [(_shadow_columns(im).mean() + 0.5) * 20 / 64 for im in x]
    assert centres[0] < 10.0 - 2 and abs(centres[1] - 10.0) < 0.7 and centres[2] > 10.0 + 2
    _, pos = shadow_geometry(np.zeros(3), np.array([70, 100, 130]))
    np.testing.assert_allclose(centres, pos, atol=0.7)  # rendered where the geometry says


def test_swinging_the_pendulum_changes_shadow_length(ds):
    light = np.where(LIGHT_VALUES == 70)[0][0]
    pend = [np.where(PENDULUM_VALUES == v)[0][0] for v in (-40, 0, 40)]
    f = ds.intervene_factors(np.zeros((3, 4), int), {"pendulum_angle": np.array(pend), "light_angle": light})
    widths = [len(_shadow_columns(im)) for im in ds.observations_from_factors(f)]
    lengths, _ = shadow_geometry(PENDULUM_VALUES[pend], np.full(3, 70))
    assert len(set(f[:, 2])) == 3
    assert np.argsort(widths).tolist() == np.argsort(lengths).tolist()


def test_intervening_on_a_shadow_keeps_the_roots(ds):
    f = ds.sample_factors(6, np.random.default_rng(1))
    g = ds.intervene_factors(f, {"shadow_length": 39})
    np.testing.assert_array_equal(g[:, :2], f[:, :2])
    np.testing.assert_array_equal(g[:, 3], f[:, 3])
    assert np.all(g[:, 2] == 39)
    xf, xg = ds.observations_from_factors(f), ds.observations_from_factors(g)
    # the pendulum part (upper rows) is unchanged; the shadow is the long one now
    np.testing.assert_allclose(xf[:, :, :48], xg[:, :, :48])
    assert all(len(_shadow_columns(b)) > len(_shadow_columns(a)) for a, b in zip(xf, xg) if a is not b)
    with pytest.raises(ValueError, match="unknown intervention target"):
        ds.intervene_factors(f, {"sun": 1})


def test_render_determinism_and_device(ds):
    f = ds.sample_factors(8, np.random.default_rng(2))
    x = ds.observations_from_factors(f)
    assert x.shape == (8, 3, 64, 64) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    np.testing.assert_array_equal(x, ds.observations_from_factors(f))
    t = ds.observations_from_factors(f, device="cpu")
    assert isinstance(t, torch.Tensor)
    np.testing.assert_array_equal(t.numpy(), x)
    with pytest.raises(ValueError, match="light_angle"):
        ds.observations_from_factors(np.array([[0, 88, 0, 0]]))


def test_dataset_level_intervention(ds):
    light = int(np.where(LIGHT_VALUES == 120)[0][0])
    do = ds.intervene({"light_angle": light})
    f = do.sample_factors(200, np.random.default_rng(4))
    assert np.all(f[:, 1] == light) and len(np.unique(f[:, 0])) > 20
    np.testing.assert_array_equal(f[:, 2:], ds.derived_factors(f[:, :2]))  # descendants follow
    assert do.info()["interventions"] == {"light_angle": light}
    do2 = do.intervene({3: 5})  # do(shadow_position): not explained by the roots any more
    g = do2.sample_factors(50, np.random.default_rng(4))
    assert np.all(g[:, 3] == 5) and np.all(g[:, 1] == light)
    np.testing.assert_array_equal(g[:, 2], ds.derived_factors(g[:, :2])[:, 0])
    assert ds.interventions == {}  # the observational dataset is unchanged
    with pytest.raises(ValueError, match="light_angle"):
        ds.intervene({"light_angle": 88})
