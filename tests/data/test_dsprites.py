"""dSprites: factor semantics, geometry, determinism, variants and the device path."""

import numpy as np
import pytest
import torch

from crlkit.data import make_dataset
from crlkit.data.dsprites import render_binary_numpy, render_binary_torch
from crlkit.errors import CrlkitError


def _centre_of_mass(img):
    """(row, col) centre of mass of a (H, W) image."""
    rows, cols = np.nonzero(img)
    return rows.mean(), cols.mean()


def _row(shape=0, scale=5, orientation=0, x=0, y=0):
    return [shape, scale, orientation, x, y]


@pytest.fixture(scope="module")
def ds():
    return make_dataset("dsprites")


def test_shapes_and_range(ds):
    f = ds.sample_factors(50, np.random.default_rng(0))
    x = ds.observations_from_factors(f)
    assert x.shape == (50, 1, 64, 64) and x.dtype == np.float32
    assert set(np.unique(x)) <= {0.0, 1.0}
    assert ds.factor_names == ("shape", "scale", "orientation", "posX", "posY")
    assert ds.factor_sizes == (3, 6, 40, 32, 32)


def test_posx_moves_right_and_posy_moves_down(ds):
    for shape in range(3):
        xs = ds.observations_from_factors(np.array([_row(shape, x=i, y=10) for i in range(32)]))[:, 0]
        ys = ds.observations_from_factors(np.array([_row(shape, x=10, y=j) for j in range(32)]))[:, 0]
        cols = np.array([_centre_of_mass(im)[1] for im in xs])
        rows = np.array([_centre_of_mass(im)[0] for im in ys])
        # one pixel per position index, right for posX and down for posY
        np.testing.assert_allclose(np.diff(cols), 1.0, atol=1e-9)
        np.testing.assert_allclose(np.diff(rows), 1.0, atol=1e-9)
        # the other coordinate does not move
        assert np.ptp([_centre_of_mass(im)[0] for im in xs]) < 1e-9


def test_scale_grows_area_monotonically(ds):
    for shape in range(3):
        for orientation in (0, 7):
            x = ds.observations_from_factors(np.array([_row(shape, s, orientation, 15, 15) for s in range(6)]))
            area = x.sum(axis=(1, 2, 3))
            assert np.all(np.diff(area) > 0), area
    # scale is linear in size: the area ratio of scale 1 to scale 0.5 is about 4
    x = ds.observations_from_factors(np.array([_row(0, 0), _row(0, 5)]))
    ratio = x[1].sum() / x[0].sum()
    assert 3.3 < ratio < 4.7


def test_sprite_size_matches_dsprites(ds):
    """At scale 1 a sprite covers several percent of the canvas, about 1/3 of its width."""
    x = ds.observations_from_factors(np.array([_row(s, 5, 0, 15, 15) for s in range(3)]))[:, 0]
    frac = x.sum(axis=(1, 2)) / 64 ** 2
    assert np.all((frac > 0.03) & (frac < 0.15)), frac
    width = np.array([np.ptp(np.nonzero(im)[1]) + 1 for im in x])
    assert np.all((width >= 16) & (width <= 32)), width


def test_shape_changes_mask_and_orientation_wraps(ds):
    x = ds.observations_from_factors(np.array([_row(0), _row(1), _row(2)]))
    assert not np.array_equal(x[0], x[1]) and not np.array_equal(x[1], x[2]) and not np.array_equal(x[0], x[2])
    f = np.array([_row(s, k, o, 7, 20) for s in range(3) for k in (0, 5) for o in (0, 39)])
    x = ds.observations_from_factors(f).reshape(3, 2, 2, 64, 64)
    np.testing.assert_array_equal(x[:, :, 0], x[:, :, 1])
    # while a quarter turn changes the heart and the ellipse
    q = ds.observations_from_factors(np.array([_row(1, 5, 10), _row(2, 5, 10)]))
    assert not np.array_equal(q[0], x[1, 1, 0]) and not np.array_equal(q[1], x[2, 1, 0])


def test_sprites_stay_inside_canvas(ds):
    grid = np.stack(np.meshgrid(range(3), [5], range(40), [0, 31], [0, 31], indexing="ij"), -1).reshape(-1, 5)
    x = ds.observations_from_factors(grid)[:, 0]
    border = x[:, 0].sum() + x[:, -1].sum() + x[:, :, 0].sum() + x[:, :, -1].sum()
    assert border == 0
    assert np.all(x.sum(axis=(1, 2)) > 0)


def test_deterministic_and_out_of_range(ds):
    f1, x1 = ds.sample(20, np.random.default_rng(3))
    f2, x2 = ds.sample(20, np.random.default_rng(3))
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(x1, x2)
    with pytest.raises(CrlkitError, match="orientation"):
        ds.observations_from_factors(np.array([_row(0, 0, 40)]))
    with pytest.raises(ValueError, match="posY"):
        ds.observations_from_factors(np.array([_row(0, 0, 0, 0, -1)]))


def test_torch_path_equals_numpy_path(ds):
    f = ds.sample_factors(100, np.random.default_rng(1))
    ref = ds.observations_from_factors(f)
    t = render_binary_torch(f, "cpu")  # the tensor-op path used on accelerators
    np.testing.assert_array_equal(t.numpy(), ref[:, 0])
    d = ds.observations_from_factors(f, device="cpu")
    assert isinstance(d, torch.Tensor) and d.dtype == torch.float32
    np.testing.assert_array_equal(d.numpy(), ref)
    np.testing.assert_array_equal(render_binary_numpy(f), ref[:, 0])


def test_color_and_noisy_variants(ds):
    f = ds.sample_factors(40, np.random.default_rng(2))
    binary = ds.observations_from_factors(f)[:, 0]
    c = make_dataset("color_dsprites")
    xc = c.observations_from_factors(f, np.random.default_rng(5))
    assert xc.shape == (40, 3, 64, 64)
    on = binary > 0
    # off-sprite pixels black; on-sprite a per-image colour in [0.5, 1]
    assert np.all(xc[:, :, ~on.any(axis=0)] == 0)
    per_image = xc.max(axis=(2, 3))
    assert per_image.min() >= 0.5 and per_image.max() <= 1.0 and per_image.std() > 0.05
    np.testing.assert_array_equal(xc, c.observations_from_factors(f, np.random.default_rng(5)))
    n = make_dataset("noisy_dsprites")
    xn = n.observations_from_factors(f, np.random.default_rng(6))
    assert xn.shape == (40, 3, 64, 64)
    assert np.all(xn[np.repeat(on[:, None], 3, axis=1)] == 1.0)
    bg = xn[~np.repeat(on[:, None], 3, axis=1)]
    assert 0.45 < bg.mean() < 0.55 and bg.min() >= 0.0 and bg.max() < 1.0
    dn = n.observations_from_factors(f, np.random.default_rng(6), device="cpu")
    np.testing.assert_array_equal(dn.numpy(), xn)
    with pytest.raises(CrlkitError, match="rng"):
        n.observations_from_factors(f)


def test_unavailable_device_is_a_clear_error(ds):
    f = ds.sample_factors(2, np.random.default_rng(0))
    with pytest.raises(CrlkitError, match="invalid device"):
        ds.observations_from_factors(f, device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(CrlkitError, match="CUDA is not available"):
            ds.observations_from_factors(f, device="cuda")
