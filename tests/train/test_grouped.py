"""Grouped training (crlkit.train_many): each member of a stacked group is its single run.

Members are compared with single runs of the same seeds trained by crlkit.train.train.
"""

import json
import logging

import numpy as np
import pytest
import torch

import crlkit
from crlkit.cli import main
from crlkit.errors import CrlkitError
from crlkit.train import train, train_many
from crlkit.train.grouped import _Group, parse_seeds
from crlkit.train.trainer import resolve_settings
from models.toy import ToySquares, ToyVectors  # tests/models/toy.py

SEEDS = [0, 1, 2, 3]
IMG = {"batch_size": 8, "log_every": 5, "num_latents": 4}
VEC = {"batch_size": 16, "log_every": 5, "mlp_hidden": 16, "mlp_depth": 1, "num_latents": 3}
SMALL_D = {"discriminator_hidden": 32, "discriminator_depth": 2}


def _state(run):
    return torch.load(run / "checkpoint.pt", weights_only=False)


def _worst_relative(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).norm() / b[k].norm().clamp_min(1e-12)) for k in a)


def _single_runs(tmp_path, model, data, opts, steps, seeds=SEEDS):
    for s in seeds:
        train(model, data, steps=steps, seed=s, out_dir=tmp_path / f"single_{s}", overrides=opts, progress=False)


@pytest.mark.parametrize("model,data,opts", [
    ("beta_vae", ToySquares(16), IMG),                        # conv encoder/decoder
    ("beta_tcvae", ToySquares(16), IMG),                      # minibatch TC over each member's batch
    ("factor_vae", ToySquares(16), {**IMG, **SMALL_D}),       # own training_step, two optimizers, permutations
    ("ada_gvae", ToyVectors(), {**VEC, "k": -1}),             # pair batches, adaptive shared dimensions
])
def test_each_member_equals_its_single_run_after_20_steps(tmp_path, model, data, opts):
    summaries = train_many(model, data, seeds=SEEDS, steps=20, out_dir=tmp_path / "group", overrides=opts,
                           mode="grouped", progress=False)
    assert [s["group"]["mode"] for s in summaries] == ["grouped"] * 4 and summaries[0]["group"]["size"] == 4
    _single_runs(tmp_path, model, data, opts, 20)
    for s in SEEDS:
        g, one = _state(tmp_path / "group" / f"seed_{s}"), _state(tmp_path / f"single_{s}")
        assert g["step"] == one["step"] == 20
        assert _worst_relative(g["model"], one["model"]) < 1e-4, s
        for name, opt in one["optimizers"].items():  # Adam moments too
            for i, st in opt["state"].items():
                assert torch.allclose(g["optimizers"][name]["state"][i]["exp_avg"], st["exp_avg"], rtol=1e-3,
                                      atol=1e-7)
        # each member saw its own batches and noise: per-step terms agree
        glog = np.loadtxt(tmp_path / "group" / f"seed_{s}" / "log.csv", delimiter=",", skiprows=1)
        slog = np.loadtxt(tmp_path / f"single_{s}" / "log.csv", delimiter=",", skiprows=1)
        np.testing.assert_allclose(glog, slog, rtol=1e-4, atol=1e-5)
    # and the members differ from each other (own initial weights and streams)
    a, b = _state(tmp_path / "group" / "seed_0")["model"], _state(tmp_path / "group" / "seed_1")["model"]
    assert _worst_relative(a, b) > 0.1


@pytest.mark.parametrize("model", ["vae", "annealed_vae", "dip_vae_i", "dip_vae_ii", "ada_mlvae"])
def test_the_rest_of_the_zoo_groups_and_matches_single_runs(tmp_path, model):
    opts = {**VEC, "k": -1} if model.startswith("ada") else VEC
    s = train_many(model, ToyVectors(), seeds=[0, 1], steps=6, out_dir=tmp_path / "g", overrides=opts,
                   mode="grouped", progress=False)
    assert s[0]["group"]["mode"] == "grouped"
    _single_runs(tmp_path, model, ToyVectors(), opts, 6, seeds=[0, 1])
    for seed in (0, 1):
        assert _worst_relative(_state(tmp_path / "g" / f"seed_{seed}")["model"],
                               _state(tmp_path / f"single_{seed}")["model"]) < 1e-4


def test_initial_weights_are_the_single_runs(tmp_path):
    train_many("factor_vae", ToySquares(16), seeds=[3, 5], steps=0, out_dir=tmp_path / "g",
               overrides={**IMG, **SMALL_D}, mode="grouped", progress=False)
    _single_runs(tmp_path, "factor_vae", ToySquares(16), {**IMG, **SMALL_D}, 0, seeds=[3, 5])
    for s in (3, 5):
        g, one = _state(tmp_path / "g" / f"seed_{s}")["model"], _state(tmp_path / f"single_{s}")["model"]
        assert all(torch.equal(g[k], one[k]) for k in one)


def test_ada_gvae_on_images_sees_the_single_runs_batches_and_noise(tmp_path):
    """On conv images the grouped convolution rounds differently (~1e-7), and at
    initialisation Ada-GVAE's per-dimension divergences between the two posteriors of a pair
    are ~1e-4 nats with that rounding in them, so the shared-dimension threshold can flip for
    a few dimensions; the weights then part by ~1e-3 after 20 steps. The first step, before
    any flip can feed back, matches exactly."""
    opts = {**IMG, "k": -1, "log_every": 1}
    train_many("ada_gvae", ToySquares(16), seeds=SEEDS, steps=1, out_dir=tmp_path / "g", overrides=opts,
               mode="grouped", progress=False)
    _single_runs(tmp_path, "ada_gvae", ToySquares(16), opts, 1)
    for s in SEEDS:
        glog = np.loadtxt(tmp_path / "g" / f"seed_{s}" / "log.csv", delimiter=",", skiprows=1)
        slog = np.loadtxt(tmp_path / f"single_{s}" / "log.csv", delimiter=",", skiprows=1)
        np.testing.assert_allclose(glog[1:4], slog[1:4], rtol=1e-5)  # loss, reconstruction, kl


def test_variants_train_each_members_own_hyperparameters(tmp_path):
    variants = [{"beta": 1.0}, {"beta": 16.0}]
    summaries = train_many("beta_vae", ToySquares(16), seeds=[0], variants=variants, steps=10, out_dir=tmp_path / "g",
                           overrides=IMG, mode="grouped", progress=False)
    assert [s["group"]["mode"] for s in summaries] == ["grouped", "grouped"]
    for i, v in enumerate(variants):
        train("beta_vae", ToySquares(16), steps=10, seed=0, out_dir=tmp_path / f"s{i}", overrides={**IMG, **v},
              progress=False)
        g = _state(tmp_path / "g" / f"variant_{i}" / "seed_0")["model"]
        assert _worst_relative(g, _state(tmp_path / f"s{i}")["model"]) < 1e-4
        cfg = json.loads((tmp_path / "g" / f"variant_{i}" / "seed_0" / "config.json").read_text())
        assert cfg["model_config"]["beta"] == v["beta"]


def test_group_resumes_exactly(tmp_path):
    opts = {**IMG, **SMALL_D, "checkpoint_every": 3}
    kw = dict(seeds=[0, 1, 2], overrides=opts, mode="grouped", progress=False)
    train_many("factor_vae", ToySquares(16), steps=10, out_dir=tmp_path / "full", **kw)
    train_many("factor_vae", ToySquares(16), steps=6, out_dir=tmp_path / "part", **kw)
    s = train_many("factor_vae", ToySquares(16), steps=10, out_dir=tmp_path / "part", resume=True, **kw)
    assert s[0]["resumed_from"] == 6
    for seed in (0, 1, 2):
        a, b = _state(tmp_path / "full" / f"seed_{seed}"), _state(tmp_path / "part" / f"seed_{seed}")
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
        for name in a["optimizers"]:
            for i, st in a["optimizers"][name]["state"].items():
                assert all(torch.equal(torch.as_tensor(v), torch.as_tensor(b["optimizers"][name]["state"][i][k]))
                           for k, v in st.items())
        assert ((tmp_path / "full" / f"seed_{seed}" / "log.csv").read_text()
                == (tmp_path / "part" / f"seed_{seed}" / "log.csv").read_text())


def test_member_is_a_single_run_for_load_and_resume(tmp_path):
    opts = {**IMG, "checkpoint_every": 4}
    train_many("beta_vae", ToySquares(16), seeds=[0, 1], steps=4, out_dir=tmp_path / "g", overrides=opts,
               mode="grouped", progress=False)
    member = tmp_path / "g" / "seed_1"
    assert {p.name for p in member.iterdir()} >= {"config.json", "checkpoint.pt", "log.csv", "summary.json"}
    net = crlkit.load(member)
    x = torch.as_tensor(ToySquares(16).sample(5, np.random.default_rng(0))[1])
    assert net.encode(x).shape == (5, 4)
    # a single run continues the member (--resume) and ends where an uninterrupted single run ends
    s = train("beta_vae", ToySquares(16), steps=8, seed=1, out_dir=member, overrides=opts, resume=True,
              progress=False)
    assert s["resumed_from"] == 4
    train("beta_vae", ToySquares(16), steps=8, seed=1, out_dir=tmp_path / "single", overrides=opts, progress=False)
    assert _worst_relative(_state(member)["model"], _state(tmp_path / "single")["model"]) < 1e-4


def test_groups_that_cannot_stack_fall_back_to_single_runs_with_the_reason(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="crlkit.train.grouped")
    summaries = train_many("beta_vae", ToySquares(16), seeds=[0], variants=[{"num_latents": 2}, {"num_latents": 3}],
                           steps=2, out_dir=tmp_path, overrides={**IMG, "log_every": 1}, mode="grouped",
                           progress=False)
    assert [s["group"]["mode"] for s in summaries] == ["sequential", "sequential"]
    assert "parameter shapes differ" in summaries[0]["group"]["reason"]
    assert "parameter shapes differ" in caplog.text
    saved = json.loads((tmp_path / "variant_1" / "seed_0" / "summary.json").read_text())
    assert saved["group"]["mode"] == "sequential"
    # differing training settings cannot share one stacked optimizer
    s = train_many("beta_vae", ToySquares(16), seeds=[0], variants=[{"lr": 1e-3}, {"lr": 1e-4}], steps=1,
                   out_dir=tmp_path / "lr", overrides=IMG, mode="grouped", progress=False)
    assert "training settings ['lr']" in s[0]["group"]["reason"]
    # on the CPU the default is sequential single runs (measured faster there)
    s = train_many("beta_vae", ToySquares(16), seeds=[0, 1], steps=1, out_dir=tmp_path / "auto", overrides=IMG,
                   progress=False)
    assert s[0]["group"]["mode"] == "sequential" and "CPU" in s[0]["group"]["reason"]


def test_a_method_with_its_own_step_and_no_counterpart_is_not_grouped():
    from crlkit.models.vae import BetaVAE

    class OwnStep(BetaVAE):
        name = "own_step"

        def training_step(self, batch, step, optimizers):
            return super().training_step(batch, step, optimizers)

    cls, cfg, tcfg, sopts = resolve_settings("beta_vae", VEC)
    group = _Group([(OwnStep, cfg, tcfg, sopts)] * 2, [0, 1], ToyVectors(), torch.device("cpu"))
    assert "own training_step and no grouped counterpart" in group.why_not()
    # members whose differing setting passes through Python control flow fail under vmap
    settings = [resolve_settings("annealed_vae", {**VEC, "c_max": c}) for c in (5.0, 25.0)]
    reason = _Group(settings, [0, 1], ToyVectors(), torch.device("cpu")).why_not()
    assert "fails under torch.func.vmap" in reason


def test_one_call_rendering_gives_each_member_its_own_batches():
    settings = [resolve_settings("beta_vae", IMG)] * 3
    fast = _Group(settings, [0, 1, 2], ToySquares(16), torch.device("cpu"))
    slow = _Group(settings, [0, 1, 2], ToySquares(16), torch.device("cpu"))
    slow._fast_render = False
    assert fast._fast_render
    for _ in range(2):
        a, b = fast.next_batch(), slow.next_batch()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert not torch.equal(a["x"][0], a["x"][1])


@pytest.mark.parametrize("model,opts", [("beta_vae", IMG), ("factor_vae", {**IMG, **SMALL_D})])
def test_bf16_trains_close_to_fp32(tmp_path, model, opts):
    opts = {**opts, "log_every": 1}
    fp = train_many(model, ToySquares(16), seeds=[0, 1], steps=2, out_dir=tmp_path / "fp", overrides=opts,
                    mode="grouped", progress=False)
    bf = train_many(model, ToySquares(16), seeds=[0, 1], steps=2, out_dir=tmp_path / "bf", overrides=opts,
                    mode="grouped", precision="bf16", progress=False)
    assert bf[0]["group"]["precision"] == "bf16"
    for a, b in zip(fp, bf):
        assert np.isfinite(b["final_loss"]) and b["final_loss"] == pytest.approx(a["final_loss"], rel=0.02)
        assert b["final_loss"] != a["final_loss"]  # the networks did run in bf16
        assert _state(tmp_path / "bf" / f"seed_{b['seed']}")["model"]["encoder.fc.1.weight"].dtype == torch.float32


def test_cli_seeds_writes_one_run_directory_per_seed(tmp_path, capsys):
    out = tmp_path / "runs"
    rc = main(["train", "--model", "beta_vae", "--dataset", "dsprites", "--steps", "2", "--seeds", "0-1",
               "--out", str(out), "--set", "batch_size=4", "--no-progress", "--threads", "1"])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["seed_0", "seed_1"]
    assert json.loads((out / "seed_1" / "config.json").read_text())["seed"] == 1
    assert "seed 1" in capsys.readouterr().out
    # crlkit evaluate reads a grouped member like a single run
    train_many("beta_vae", "dsprites", seeds=[0, 1], steps=2, out_dir=tmp_path / "g", overrides={"batch_size": 4},
               mode="grouped", progress=False)
    rc = main(["evaluate", str(tmp_path / "g" / "seed_1"), "--metrics", "mig", "--samples", "200", "--test-samples", "100",
               "--out", str(tmp_path / "m.json")])
    assert rc == 0 and 0 <= json.loads((tmp_path / "m.json").read_text())["mig"] <= 1


def test_parse_seeds_and_bad_options():
    assert parse_seeds("0-3") == [0, 1, 2, 3] and parse_seeds("2,5,7-8") == [2, 5, 7, 8]
    for bad in ("3-1", "a", "1,1", "-2"):
        with pytest.raises(CrlkitError, match="--seeds"):
            parse_seeds(bad)
    with pytest.raises(CrlkitError, match="mode must be one of"):
        train_many("beta_vae", ToySquares(16), seeds=[0], steps=1, out_dir="x", mode="stacked")
    with pytest.raises(CrlkitError, match="precision must be one of"):
        train_many("beta_vae", ToySquares(16), seeds=[0], steps=1, out_dir="x", precision="fp16")


def test_a_diverging_member_stops_alone(tmp_path):
    variants = [{"beta": 1.0}, {"beta": float("inf")}]
    with pytest.raises(crlkit.CrlkitError, match="member seed 0 .*variant_1.*'regularizer' is inf at step 1"):
        train_many("beta_vae", ToyVectors(), seeds=[0], variants=variants, steps=6, out_dir=tmp_path / "g",
                   overrides={**VEC, "log_every": 2}, mode="grouped", progress=False)
    good, bad = tmp_path / "g" / "variant_0" / "seed_0", tmp_path / "g" / "variant_1" / "seed_0"
    assert (good / "summary.json").exists() and not (bad / "summary.json").exists()
    assert not (bad / "checkpoint.pt").exists()  # no window of it was finite: nothing checkpointed
    train("beta_vae", ToyVectors(), steps=6, seed=0, out_dir=tmp_path / "single",
          overrides={**VEC, "beta": 1.0, "log_every": 2}, progress=False)
    assert _worst_relative(_state(good)["model"], _state(tmp_path / "single")["model"]) < 1e-4
