"""3D Shapes: every factor visibly changes the image; determinism; device path."""

import numpy as np
import pytest
import torch

from crlkit.data import make_dataset
from crlkit.data.shapes3d import render_torch


@pytest.fixture(scope="module")
def ds():
    return make_dataset("shapes3d")


BASE = np.array([0, 3, 6, 4, 0, 7])


def test_every_factor_changes_the_image(ds):
    assert ds.factor_names == ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
    assert ds.factor_sizes == (10, 10, 10, 8, 4, 15)
    base = ds.observations_from_factors(BASE[None])[0]
    assert base.shape == (3, 64, 64) and base.dtype == np.float32
    assert 0.0 <= base.min() and base.max() <= 1.0
    for j, size in enumerate(ds.factor_sizes):
        for v in {0, size // 2 + 1, size - 1} - {BASE[j]}:
            f = BASE.copy()
            f[j] = v
            x = ds.observations_from_factors(f[None])[0]
            changed = np.abs(x - base).max(axis=0) > 0.1
            # visible: at least 20 pixels change by more than 0.1
            assert changed.sum() >= 20, (ds.factor_names[j], v, changed.sum())


def test_hue_factors_change_their_own_region(ds):
    base = ds.observations_from_factors(BASE[None])[0]
    f = BASE.copy()
    f[0] = 5  # floor hue only: the top rows (wall) stay the same
    x = ds.observations_from_factors(f[None])[0]
    np.testing.assert_allclose(x[:, :5], base[:, :5])
    assert np.abs(x[:, -5:] - base[:, -5:]).max() > 0.3
    f = BASE.copy()
    f[3] = 7  # a bigger object covers more pixels of its own hue
    big = ds.observations_from_factors(f[None])[0]
    f[3] = 0
    small = ds.observations_from_factors(f[None])[0]
    assert np.abs(big - base).sum() > 0 and np.abs(small - base).sum() > 0


def test_deterministic_and_device_path(ds):
    f = ds.sample_factors(12, np.random.default_rng(0))
    a = ds.observations_from_factors(f)
    b = ds.observations_from_factors(f)
    np.testing.assert_array_equal(a, b)
    t = render_torch(f, "cpu")
    np.testing.assert_allclose(t.numpy(), a, atol=1e-6)
    d = ds.observations_from_factors(f, device="cpu")
    assert isinstance(d, torch.Tensor)
    np.testing.assert_array_equal(d.numpy(), a)
    with pytest.raises(ValueError, match="shape"):
        ds.observations_from_factors(np.array([[0, 0, 0, 0, 4, 0]]))
