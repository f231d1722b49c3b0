"""``chamber_*``: the Causal Chamber's light-tunnel simulators as mixing functions (optional extra)."""

from __future__ import annotations

import numpy as np
import pytest

from crlkit.contracts import check, dataset_contract
from crlkit.data import list_datasets, make_dataset
from crlkit.data.chamber import INPUTS, chamber_available, published_graph, simulator, to_inputs

pytestmark = [pytest.mark.skipif(not chamber_available(), reason="needs the optional causalchamber package"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]  # the package's np.cross on 2-d vectors


def test_chamber_datasets_are_registered():
    assert {"chamber_sensors", "chamber_f1", "chamber_f2", "chamber_f3"} <= set(list_datasets())


def test_latent_model_follows_the_published_graph():
    g = published_graph()
    ds = make_dataset("chamber_sensors")
    assert g.shape == (5, 5) and np.array_equal(ds.graph != 0, g != 0)
    assert ds.factor_names == INPUTS
    z = ds.sample_factors(2000, np.random.default_rng(0))
    phys = to_inputs(z)
    assert 0 <= phys["red"].min() and phys["red"].max() <= 255 and phys["pol_1"].min() >= -180


def test_sensor_world_matches_the_package_and_is_injective():
    import pandas as pd

    from crlkit.data.chamber import _SENSOR_FIXED

    ds = make_dataset("chamber_sensors")
    z = ds.sample_factors(16, np.random.default_rng(1))
    x = ds.observations_from_factors(z)
    sim = simulator("sensors")
    ref = np.stack(sim.simulate_from_inputs(pd.DataFrame({**to_inputs(z), **_SENSOR_FIXED})), 1)
    np.testing.assert_allclose(x, ((ref - ds.mixing.mean) / ds.mixing.std).astype(np.float32), rtol=1e-5, atol=1e-5)
    # injective: the inputs are recovered from the readings by least squares on the linear part
    z2 = ds.sample_factors(500, np.random.default_rng(2))
    x2 = ds.observations_from_factors(z2)
    coef, *_ = np.linalg.lstsq(np.c_[x2, np.ones(len(x2))], z2, rcond=None)
    assert np.abs(np.c_[x2, np.ones(len(x2))] @ coef - z2).max() < 0.2
    c = dataset_contract(ds)
    assert c.mixing == "injective" and c.independent and c.observations == "vector"
    assert check("contrastive", ds, model_config={"num_latents": 5}).ok


@pytest.mark.parametrize("kind", ["f1", "f2", "f3"])
def test_image_models_match_the_package_and_are_declared_not_injective(kind):
    import pandas as pd

    ds = make_dataset(f"chamber_{kind}", image_size=16)
    z = ds.sample_factors(6, np.random.default_rng(3))
    x = ds.observations_from_factors(z)
    assert x.shape == (6, 3, 16, 16) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    sim = simulator(kind)
    sim.image_size = 16
    ref = sim.simulate_from_inputs(pd.DataFrame(to_inputs(z))).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(x, ref, atol=1e-6)
    # not injective: rotating both polarizers by the same angle leaves the image unchanged
    same = z.copy()
    same[:, 3] = z[:, 3] - 0.05
    same[:, 4] = z[:, 4] - 0.05
    keep = (np.abs(same[:, 3:]) <= 0.5).all(1)
    np.testing.assert_allclose(ds.observations_from_factors(same[keep]), x[keep], atol=1e-6)
    c = dataset_contract(ds)
    assert c.mixing == "not_injective" and "cos^2(pol_1 - pol_2)" in c.mixing_note
    assert check("vae", ds).admitted and not check("contrastive", ds).admitted
