"""The contract every registered model keeps (scikit-learn's ``check_estimator`` in spirit):
it trains a few steps through the shared trainer, resumes exactly (weights and optimizer
states equal an uninterrupted run's, bit for bit on CPU), loads with ``crlkit.load`` from a
checkpoint read with ``weights_only=True``, and encodes a batch to ``(n, latents)``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import crlkit
from crlkit.data.samplers import make_sampler
from crlkit.identify.benchmark import METHODS, SETTING_OF, make_setting, train_overrides
from crlkit.models import get_model_class, list_models
from crlkit.train import read_checkpoint, train
from models.toy import ToyVectors  # tests/models/toy.py; pytest puts tests/ on sys.path

STEPS, PART = 6, 3
SMALL = {"mlp_hidden": 16, "mlp_depth": 1, "hidden": 16, "depth": 1, "prior_depth": 1, "flow_layers": 2,
         "flow_hidden": 16, "discriminator_hidden": 16, "discriminator_depth": 1, "num_latents": 3}


def _small(cls) -> dict:
    """The keys of SMALL that ``cls.Config`` has (tiny networks, so each case takes ~1 s)."""
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    return {k: v for k, v in SMALL.items() if k in fields}


def case(name: str):
    """(dataset, data_options, overrides) of a compatible small set-up for model ``name``."""
    cls = get_model_class(name)
    common = {"batch_size": 16, "log_every": 1, "checkpoint_every": PART}
    if cls.batch_kind in ("segment", "positive_pair", "views", "intervention_pair"):
        # the identifiable methods: the synthetic data of their benchmark setting, made small
        assert name in METHODS, f"add {name} to crlkit.identify.benchmark (its data setting) or to this test"
        setting = make_setting(name, latents=4, segments=4 if SETTING_OF[name] == "segments" else None,
                               mixing_layers=1, steps=STEPS, batch_size=16, seed=0)
        small = {k: v for k, v in _small(cls).items() if k != "num_latents"}
        return "synthetic", setting.data, {**train_overrides(setting), **small, **common}
    return ToyVectors(), None, {**_small(cls), **common}


def _same(a: dict, b: dict) -> None:
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for name, opt in a["optimizers"].items():
        for i, st in opt["state"].items():
            for k, v in st.items():
                assert torch.equal(torch.as_tensor(v), torch.as_tensor(b["optimizers"][name]["state"][i][k])), (name, k)


@pytest.mark.parametrize("name", list_models())
def test_model_contract(tmp_path, name):
    data, data_options, overrides = case(name)
    run = dict(seed=3, overrides=overrides, data_options=data_options, progress=False, threads=1)
    full = train(name, data, steps=STEPS, out_dir=tmp_path / "full", **run)
    assert np.isfinite(full["final_loss"]) and full["steps"] == STEPS
    train(name, data, steps=PART, out_dir=tmp_path / "part", **run)
    resumed = train(name, data, steps=STEPS, out_dir=tmp_path / "part", resume=True, **run)
    assert resumed["resumed_from"] == PART
    a, b = read_checkpoint(tmp_path / "full" / "checkpoint.pt"), read_checkpoint(tmp_path / "part" / "checkpoint.pt")
    assert a["step"] == b["step"] == STEPS
    _same(a, b)
    assert (tmp_path / "full" / "log.csv").read_text() == (tmp_path / "part" / "log.csv").read_text()

    model = crlkit.load(tmp_path / "full")
    assert not model.training and all(torch.equal(v, a["model"][k]) for k, v in model.state_dict().items())
    ds = data if data_options is None else crlkit.train.load_dataset(tmp_path / "full")
    batch = next(make_sampler(model.batch_kind, ds, batch_size=5, seed=0, **{
        k.split(".", 1)[1]: v for k, v in overrides.items() if k.startswith("sampler.")}))
    with torch.no_grad():
        z = model.encode(batch["x"])
    latents = model.run_config["model_config"]["num_latents"]
    assert z.shape == (5, latents) and torch.isfinite(z).all()
