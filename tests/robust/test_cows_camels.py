"""The cows_camels dataset: confounding rates, noise rates, counterfactuals, determinism."""

import numpy as np
import pytest

from crlkit.data import make_dataset
from crlkit.data.cows_camels import FACTOR_NAMES, CowsCamels
from crlkit.errors import CrlkitError

A, B, S, E = (FACTOR_NAMES.index(k) for k in ("animal", "background", "shape", "environment"))


def test_confounding_rate_matches_rho_per_environment():
    ds = CowsCamels((0.95, 0.7, 0.5, 0.1))
    f = ds.sample_factors(40000, np.random.default_rng(0))
    for k, rho in enumerate(ds.rhos):
        m = f[:, E] == k
        agree = np.mean(f[m, A] == f[m, B])
        assert abs(agree - rho) < 0.02, (k, agree, rho)
        assert abs(np.mean(f[m, A]) - 0.5) < 0.03  # classes stay balanced in every environment
    # nuisance factors are independent of the class
    pos = FACTOR_NAMES.index("pos_x")
    assert abs(f[f[:, A] == 0, pos].mean() - f[f[:, A] == 1, pos].mean()) < 0.1


def test_label_and_shape_noise_rates():
    ds = CowsCamels((0.9,), shape_noise=0.2, eta=0.25)
    rng = np.random.default_rng(1)
    f = ds.sample_factors(40000, rng)
    y = ds.sample_labels(f, rng)
    assert abs(np.mean(y != f[:, A]) - 0.25) < 0.01
    assert abs(np.mean(f[:, S] != f[:, A]) - 0.2) < 0.01
    clean = CowsCamels((0.9,))
    f0 = clean.sample_factors(5000, rng)
    assert np.all(clean.sample_labels(f0, rng) == f0[:, A]) and np.all(f0[:, S] == f0[:, A])


def test_background_swap_changes_only_background_pixels():
    ds = CowsCamels((0.5,), image_size=64)
    f = ds.sample_factors(24, np.random.default_rng(2))
    x = ds.observations_from_factors(f)
    xs = ds.observations_from_factors(ds.swap_background(f))
    mask = ds.animal_mask(f)[:, None]  # (n, 1, 64, 64)
    diff = np.abs(x - xs)
    assert diff[np.broadcast_to(mask, diff.shape)].max() == 0.0  # the animal is untouched
    changed = (diff.max(axis=1) > 0.05)[~mask[:, 0]]
    assert changed.mean() > 0.95  # grass and sand differ almost everywhere else
    assert 0.01 < mask.mean() < 0.2  # a small animal
    # foreground-only equals the image on the animal; background-only equals it elsewhere
    fg = ds.observations_from_factors(f, part="foreground")
    bg = ds.observations_from_factors(f, part="background")
    m3 = np.broadcast_to(mask, x.shape)
    assert np.array_equal(fg[m3], x[m3]) and np.array_equal(bg[~m3], x[~m3])
    assert np.all(fg[~m3] == 0.5)
    # the animal swap changes the silhouette but keeps the background
    xa = ds.observations_from_factors(ds.swap_animal(f))
    union = mask[:, 0] | ds.animal_mask(ds.swap_animal(f))
    assert np.abs(x - xa).max(axis=1)[~union].max() == 0.0
    assert np.abs(x - xa).max() > 0.05


def test_rendering_is_deterministic_and_seeded():
    ds = make_dataset("cows_camels", rhos=(0.9, 0.8), shape_noise=0.1, image_size=32)
    f1, x1 = ds.sample(16, np.random.default_rng(3))
    f2, x2 = make_dataset("cows_camels", rhos=(0.9, 0.8), shape_noise=0.1, image_size=32).sample(
        16, np.random.default_rng(3))
    assert np.array_equal(f1, f2) and np.array_equal(x1, x2)
    f3, x3 = ds.sample(16, np.random.default_rng(4))
    assert not np.array_equal(x1, x3)
    assert x1.shape == (16, 3, 32, 32) and x1.dtype == np.float32 and 0 <= x1.min() and x1.max() <= 1


def test_silhouettes_differ_between_classes():
    ds = CowsCamels((0.5,), image_size=64)
    f = ds.sample_factors(200, np.random.default_rng(5))
    m = ds.animal_mask(f)
    rows = np.nonzero(m.any(axis=2))
    height = np.array([np.ptp(rows[1][rows[0] == i]) for i in range(len(f))])
    camel = f[:, S] == 1
    # camels (long legs, upright neck) are taller than cows of the same size
    assert height[camel].mean() > 1.3 * height[~camel].mean()


def test_group_balanced_split_and_graph():
    ds = CowsCamels((0.95,), shape_noise=0.2)
    sp = ds.sample_split(40, np.random.default_rng(6), balanced_groups=True)
    assert np.bincount(sp.label_group.numpy(), minlength=4).tolist() == [10, 10, 10, 10]
    g = ds.graph
    idx = {n: i for i, n in enumerate(FACTOR_NAMES)}
    assert g[idx["place"], idx["animal"]] and g[idx["place"], idx["background"]]
    assert g[idx["environment"], idx["background"]] and g[idx["animal"], idx["shape"]]
    assert g.sum() == 5


@pytest.mark.parametrize("kw", [dict(rhos=(1.5,)), dict(rhos=(-0.1,)), dict(eta=2.0), dict(image_size=48),
                                dict(shape_noise=-1)])
def test_invalid_options_raise_crlkit_error(kw):
    with pytest.raises(CrlkitError):
        make_dataset("cows_camels", **kw)


def test_cause_pair_sampler_changes_one_cause():
    from crlkit.data.samplers import make_sampler

    ds = CowsCamels((0.9,), image_size=16)
    batch = make_sampler("cause_pair", ds, batch_size=32, seed=0).next_batch()
    ch = batch["changed"].numpy()
    bg_only = ch[:, B] & ~ch[:, A]
    animal_only = ch[:, A] & ch[:, S] & ~ch[:, B]
    assert np.all(bg_only | animal_only) and bg_only.any() and animal_only.any()
    assert np.all(ch.sum(1) == batch["k"].numpy())
    assert batch["x"].shape == batch["x2"].shape == (32, 3, 16, 16)
    with pytest.raises(CrlkitError):
        make_sampler("cause_pair", make_dataset("cows_camels"), batch_size=4, seed=0, p_background=2.0)
