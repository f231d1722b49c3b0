"""Assumption contracts: every registered method and dataset declares one; every pair the
contracts admit trains a few steps; every pair they refuse is refused with one line."""

from __future__ import annotations

import numpy as np
import pytest

from crlkit.contracts import METHOD_CONTRACTS, check, dataset_contract, enforce
from crlkit.data import list_datasets, make_dataset
from crlkit.data.chamber import chamber_available
from crlkit.errors import CrlkitError
from crlkit.models import list_models
from crlkit.train import train

#: small options for each registered dataset (what the test trains on)
SMALL = {"cows_camels": {"image_size": 16}, "synthetic": {"latents": 3, "mixing_layers": 2},
         "synthetic_folded": {"latents": 3, "segments": 8}, "ivae_segments": {"latents": 3, "segments": 7},
         "contrastive_uniform": {"latents": 3}, "chamber_f1": {"image_size": 16},
         "chamber_f2": {"image_size": 16}, "chamber_f3": {"image_size": 16}, "chamber_sensors": {"segments": 11}}


@pytest.fixture(scope="module")
def arrays_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    z = rng.standard_normal((200, 3))
    path = tmp_path_factory.mktemp("arrays") / "world.npz"
    np.savez(path, factors=z, observations=np.tanh(z @ rng.standard_normal((3, 6))), segments=rng.integers(0, 4, 200))
    return str(path)


@pytest.fixture(scope="module")
def datasets(arrays_file):
    out = {}
    for name in list_datasets():
        if name.startswith("chamber_") and not chamber_available():
            continue
        opts = {"path": arrays_file} if name == "arrays" else SMALL.get(name, {})
        out[name] = make_dataset(name, **opts)
    return out


def _overrides(model: str, ds) -> dict:
    c = dataset_contract(ds)
    d = c.latents
    base = {"batch_size": 4, "log_every": 1, "checkpoint_every": 1000}
    if model in ("ivae", "iflow"):
        return {**base, "num_latents": d, "aux_dim": max(c.segments, 1)}
    if model == "content_style":
        return {**base, "num_latents": max(d // 2, 1)}
    if model in ("contrastive", "interventional"):
        return {**base, "num_latents": d}
    return {**base, "num_latents": 3}


def test_every_registered_method_and_dataset_has_a_contract(datasets):
    assert set(list_models()) <= set(METHOD_CONTRACTS)
    for name, ds in datasets.items():
        c = dataset_contract(ds)
        assert "single" in c.structures and c.latents == ds.num_factors
        assert c.mixing != "unknown" or name == "arrays", name  # a file cannot say; everything else declares


def test_contract_facts(datasets):
    ivae = datasets["ivae_segments"]
    assert check("ivae", ivae, model_config={"num_latents": 3}).ok  # 7 >= 2 * 3 + 1
    few = check("ivae", make_dataset("synthetic", latents=3, segments=5), model_config={"num_latents": 3})
    assert few.admitted and not few.ok and "2n + 1" in few.mismatches[0][0]
    folded = check("ivae", datasets["synthetic_folded"], model_config={"num_latents": 3})
    assert [m[0] for m in folded.mismatches] == ["an injective mixing"]
    gauss = check("contrastive", datasets["contrastive_uniform"], sampler_options={"conditional": "gaussian"})
    assert "conditional" in gauss.mismatches[0][0] or "Laplace" in gauss.mismatches[0][0]
    matched = check("contrastive", datasets["contrastive_uniform"], sampler_options={"conditional": "gaussian"},
                    model_config={"num_latents": 3, "p": 2.0})
    assert matched.ok and "orthogonal" in matched.guarantee
    soft = check("interventional", datasets["synthetic"], sampler_options={"intervention": "shift"})
    assert soft.mismatches[0][0] == "perfect single-node interventions"
    assert not check("ivae", datasets["dsprites"]).admitted
    assert check("vae", datasets["dsprites"]).guarantee.startswith("none")


def _pairs(datasets):
    for name in sorted(datasets):
        for model in sorted(METHOD_CONTRACTS):
            yield name, model


def test_admitted_pairs_train_and_refused_pairs_stop_with_one_line(datasets, tmp_path):
    import torch

    torch.set_num_threads(1)
    trained = refused = 0
    for name, model in _pairs(datasets):
        ds = datasets[name]
        over = _overrides(model, ds)
        from crlkit.train import resolve_settings

        _, cfg, _, sopts = resolve_settings(model, over)
        c = check(model, ds, model_config=cfg, sampler_options=sopts)
        if not c.admitted:
            with pytest.raises(CrlkitError) as e:
                train(model, ds, steps=1, seed=0, out_dir=tmp_path / f"{name}_{model}", overrides=over,
                      allow_mismatch=True)
            msg = str(e.value)
            assert "\n" not in msg and "refused: needs" in msg, msg
            refused += 1
            continue
        if c.mismatches:  # stops with one line naming the requirement, runs with allow_mismatch
            with pytest.raises(CrlkitError) as e:
                enforce(model, ds, model_config=cfg, sampler_options=sopts)
            assert "\n" not in str(e.value) and c.mismatches[0][0] in str(e.value)
        s = train(model, ds, steps=2, seed=0, out_dir=tmp_path / f"{name}_{model}", overrides=over,
                  allow_mismatch=True, progress=False)
        assert np.isfinite(s["final_loss"]), (name, model)
        assert s["contract"]["ok"] == c.ok and s["contract"]["guarantee"] == c.guarantee
        trained += 1
    assert trained > 50 and refused > 20


def test_train_stops_on_a_mismatch_unless_allowed(tmp_path):
    with pytest.raises(CrlkitError, match="2n \\+ 1"):
        train("ivae", "synthetic", data_options={"latents": 3, "segments": 4}, steps=1, seed=0, out_dir=tmp_path / "a",
              overrides={"num_latents": 3, "aux_dim": 4, "batch_size": 4})
    s = train("ivae", "synthetic", data_options={"latents": 3, "segments": 4}, steps=1, seed=0, out_dir=tmp_path / "b",
              overrides={"num_latents": 3, "aux_dim": 4, "batch_size": 4}, allow_mismatch=True, progress=False)
    assert not s["contract"]["ok"] and s["contract"]["allow_mismatch"]
    assert "2n + 1" in s["contract"]["mismatches"][0]["requirement"]
