"""Loaders of the official files, on tiny files written in the same format."""

import h5py
import numpy as np
import pytest

from crlkit.data import make_dataset
from crlkit.errors import CrlkitError


def _tiny_dsprites(path, sizes=(3, 2, 2, 3, 4)):
    n = int(np.prod(sizes))
    classes = np.stack(np.unravel_index(np.arange(n), sizes), axis=1)
    latents_classes = np.concatenate([np.zeros((n, 1), int), classes], axis=1)
    values = latents_classes.astype(float) / 10.0
    rng = np.random.default_rng(0)
    imgs = (rng.random((n, 64, 64)) < 0.1).astype(np.uint8)
    np.savez_compressed(path, imgs=imgs, latents_values=values, latents_classes=latents_classes,
                        metadata=np.array({"description": "tiny"}, dtype=object))
    return imgs, sizes


def test_dsprites_npz_round_trip(tmp_path):
    path = tmp_path / "d.npz"
    imgs, sizes = _tiny_dsprites(path)
    ds = make_dataset("dsprites", path=str(path))
    assert ds.factor_sizes == sizes and ds.observation_shape == (1, 64, 64)
    f = ds.sample_factors(30, np.random.default_rng(0))
    x = ds.observations_from_factors(f)
    flat = np.ravel_multi_index(tuple(f.T), sizes)  # C order, posY fastest
    np.testing.assert_array_equal(x[:, 0], imgs[flat].astype(np.float32))
    np.testing.assert_allclose(ds.file_values["posY"], np.arange(4) / 10.0)
    # the variants apply to the file's sprites too
    c = make_dataset("color_dsprites", path=str(path)).observations_from_factors(f, np.random.default_rng(1))
    assert c.shape == (30, 3, 64, 64) and np.all((c > 0) == (x > 0))
    with pytest.raises(CrlkitError, match="posY"):
        ds.observations_from_factors(np.array([[0, 0, 0, 0, 4]]))


def test_dsprites_npz_wrong_order_is_rejected(tmp_path):
    path = tmp_path / "d.npz"
    _tiny_dsprites(path)
    with np.load(path, allow_pickle=True) as f:
        arrays = dict(f)
    arrays["latents_classes"] = arrays["latents_classes"][::-1]
    np.savez(path, **arrays)
    with pytest.raises(CrlkitError, match="C order"):
        make_dataset("dsprites", path=str(path))


def test_shapes3d_h5_round_trip(tmp_path):
    sizes = (2, 3, 2, 2, 4, 3)
    n = int(np.prod(sizes))
    classes = np.stack(np.unravel_index(np.arange(n), sizes), axis=1)
    labels = classes * np.array([0.1, 0.1, 0.1, 0.25, 1.0, 30.0]) + np.array([0, 0, 0, 0.75, 0, -30.0])
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 64, 64, 3), dtype=np.uint8)
    path = tmp_path / "3dshapes.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images)
        f.create_dataset("labels", data=labels)
    ds = make_dataset("shapes3d", path=str(tmp_path))  # a directory holding 3dshapes.h5 works too
    assert ds.factor_sizes == sizes and ds.observation_shape == (3, 64, 64)
    f = np.array([[1, 2, 1, 1, 3, 2], [0, 0, 0, 0, 0, 0], [1, 2, 1, 1, 3, 2]])
    x = ds.observations_from_factors(f)
    flat = np.ravel_multi_index(tuple(f.T), sizes)
    np.testing.assert_allclose(x, images[flat].transpose(0, 3, 1, 2) / 255.0, atol=1e-7)
    assert x.dtype == np.float32


def test_missing_files_say_where_they_looked(tmp_path):
    missing = tmp_path / "nowhere" / "dsprites.npz"
    with pytest.raises(CrlkitError, match="nowhere"):
        make_dataset("dsprites", path=str(missing))
    with pytest.raises(CrlkitError, match="3dshapes.h5"):
        make_dataset("shapes3d", path=str(tmp_path))
