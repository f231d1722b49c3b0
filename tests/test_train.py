"""The trainer: determinism, resume equivalence, files written, NaN detection, load, CLI."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from crlkit.cli import main
from crlkit.errors import CrlkitError
from crlkit.train import TrainingDiverged, load_model, train
from models.toy import ToySquares, ToyVectors  # tests/models/toy.py; pytest puts tests/ on sys.path

IMG = {"batch_size": 8, "log_every": 2, "num_latents": 4}
VEC = {"batch_size": 16, "log_every": 2, "mlp_hidden": 16, "mlp_depth": 1, "num_latents": 3,
       "discriminator_hidden": 16, "discriminator_depth": 2}


def _weights(path):
    return torch.load(path / "checkpoint.pt", weights_only=True)


def _same_state(a, b):
    """Model tensors and optimizer states equal bit for bit."""
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for name in a["optimizers"]:
        sa, sb = a["optimizers"][name]["state"], b["optimizers"][name]["state"]
        for i in sa:
            for k in sa[i]:
                assert torch.equal(torch.as_tensor(sa[i][k]), torch.as_tensor(sb[i][k])), (name, i, k)


def test_writes_run_directory(tmp_path):
    s = train("beta_vae", ToySquares(16), steps=6, seed=0, out_dir=tmp_path, overrides={**IMG, "beta": 2}, progress=False)
    assert {p.name for p in tmp_path.iterdir()} >= {"config.json", "checkpoint.pt", "log.csv", "summary.json"}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary == json.loads(json.dumps(s))
    assert {"model", "dataset", "steps", "seed", "final_loss", "terms", "images_per_second"} <= set(summary)
    assert summary["steps"] == 6 and summary["images_per_second"] > 0
    assert summary["terms"]["regularizer"] == pytest.approx(2 * summary["terms"]["kl"], rel=1e-5)
    log = (tmp_path / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,loss,reconstruction,kl,regularizer") and len(log) == 7
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["model_config"]["beta"] == 2.0 and cfg["train_config"]["batch_size"] == 8


def test_seeded_runs_are_deterministic(tmp_path):
    for d, seed in (("a", 3), ("b", 3), ("c", 4)):
        train("factor_vae", ToyVectors(), steps=5, seed=seed, out_dir=tmp_path / d, overrides=VEC, progress=False)
    _same_state(_weights(tmp_path / "a"), _weights(tmp_path / "b"))
    a, c = _weights(tmp_path / "a")["model"], _weights(tmp_path / "c")["model"]
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert (tmp_path / "a" / "log.csv").read_text() == (tmp_path / "b" / "log.csv").read_text()


@pytest.mark.parametrize("model,data,opts", [
    ("beta_vae", ToySquares(16), IMG),  # conv, channels_last
    ("factor_vae", ToyVectors(), VEC),  # two optimizers, permutation noise
    ("ada_gvae", ToySquares(16), {**IMG, "k": -1}),  # pair sampler
])
def test_resume_matches_uninterrupted_run(tmp_path, model, data, opts):
    overrides = {**opts, "checkpoint_every": 4}
    train(model, data, steps=10, seed=1, out_dir=tmp_path / "full", overrides=overrides, progress=False)
    train(model, data, steps=6, seed=1, out_dir=tmp_path / "part", overrides=overrides, progress=False)
    s = train(model, data, steps=10, seed=1, out_dir=tmp_path / "part", overrides=overrides, progress=False,
              resume=True)
    assert s["resumed_from"] == 6
    _same_state(_weights(tmp_path / "full"), _weights(tmp_path / "part"))
    assert (tmp_path / "full" / "log.csv").read_text() == (tmp_path / "part" / "log.csv").read_text()


def test_resume_refuses_a_different_config(tmp_path):
    train("vae", ToyVectors(), steps=2, seed=0, out_dir=tmp_path, overrides={"mlp_hidden": 8}, progress=False)
    with pytest.raises(CrlkitError, match="model_config differs"):
        train("vae", ToyVectors(), steps=4, seed=0, out_dir=tmp_path, overrides={"mlp_hidden": 9}, resume=True,
              progress=False)


class NaNAfter(ToyVectors):
    """Observations become NaN from the ``bad``-th batch on (1-based)."""

    def __init__(self, bad):
        self.bad, self.calls = bad, 0

    def observations_from_factors(self, factors, rng=None, *, device=None):
        self.calls += 1
        out = super().observations_from_factors(factors, rng, device=device)
        return out * float("nan") if self.calls >= self.bad else out


def test_nan_stops_with_step_and_term_and_keeps_last_good_checkpoint(tmp_path):
    with pytest.raises(TrainingDiverged, match=r"'reconstruction' is nan at step 7"):
        train("vae", NaNAfter(7), steps=20, seed=0, out_dir=tmp_path,
              overrides={"checkpoint_every": 5, "log_every": 1, "mlp_hidden": 8}, progress=False)
    state = _weights(tmp_path)
    assert state["step"] == 5
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert not (tmp_path / "summary.json").exists()


def test_load_model_rebuilds_trained_weights(tmp_path):
    import crlkit

    opts = {k: v for k, v in VEC.items() if not k.startswith("discriminator")}
    train("dip_vae_ii", ToyVectors(), steps=3, seed=0, out_dir=tmp_path, overrides=opts, progress=False)
    m = crlkit.load(tmp_path)
    assert not m.training and m.run_config["model"] == "dip_vae_ii"
    saved = _weights(tmp_path)["model"]
    assert all(torch.equal(v, saved[k]) for k, v in m.state_dict().items())
    assert m.encode(torch.zeros(5, 8)).shape == (5, 3)


def test_unknown_settings_name_the_key(tmp_path):
    with pytest.raises(CrlkitError, match="did you mean 'beta'"):
        train("beta_vae", ToyVectors(), steps=1, seed=0, out_dir=tmp_path, overrides={"betta": 1})
    with pytest.raises(CrlkitError, match="expected an int"):
        train("beta_vae", ToyVectors(), steps=1, seed=0, out_dir=tmp_path, overrides={"batch_size": "1.5"})
    with pytest.raises(CrlkitError, match="option for sampler|unknown key"):
        train("beta_vae", ToyVectors(), steps=1, seed=0, out_dir=tmp_path, overrides={"k": 2})  # pair-only option


def test_cli_train_and_traverse_on_dsprites(tmp_path, capsys):
    run = tmp_path / "run"
    rc = main(["train", "--model", "beta_vae", "--dataset", "dsprites", "--steps", "2", "--out", str(run),
               "--set", "batch_size=4", "--set", "beta=8", "--no-progress"])
    assert rc == 0 and "beta_vae on dsprites: 2 steps" in capsys.readouterr().out
    assert json.loads((run / "config.json").read_text())["model_config"]["beta"] == 8.0
    png = tmp_path / "t.png"
    assert main(["traverse", str(run), "--out", str(png), "--values", "3"]) == 0
    from PIL import Image

    w, h = Image.open(png).size
    assert w > 100 and h > 100


@pytest.mark.parametrize("argv,needle", [
    (["--model", "beta_vea"], "unknown model 'beta_vea'; valid choices: "),
    (["--set", "gama=3"], "unknown key 'gama'"),
    (["--set", "beta=high"], "invalid value 'high' for 'beta': expected a float"),
    (["--set", "beta"], "--set expects key=value"),
    (["--dataset", "dsprite"], "unknown dataset 'dsprite'"),
    (["--set", "architecture=mlp"], "needs vector observations"),
    (["--device", "tpu"], "unknown device 'tpu'; valid choices: cpu, cuda"),
])
def test_cli_errors_exit_2_with_a_message(tmp_path, capsys, argv, needle):
    base = {"--model": "beta_vae", "--dataset": "dsprites", "--steps": "1", "--out": str(tmp_path)}
    args = ["train"]
    for k, v in base.items():
        if k not in argv:
            args += [k, v]
    assert main(args + argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    if needle.startswith("unknown model"):
        assert "beta_vae" in err and "factor_vae" in err


def test_cli_error_has_no_traceback_in_a_subprocess(tmp_path):
    r = subprocess.run([sys.executable, "-m", "crlkit", "train", "--model", "beta_vae", "--dataset", "dsprites",
                        "--steps", "1", "--out", str(tmp_path), "--set", "batch_size=x"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "batch_size" in r.stderr


def test_config_coercion():
    from dataclasses import dataclass

    from crlkit.config import build_config, parse_assignments

    @dataclass(frozen=True)
    class C:
        a: int = 1
        b: float | None = None
        c: bool = False
        d: tuple[float, float] = (0.5, 0.9)
        e: str = "x"

    cfg = build_config(C, parse_assignments(["a=3", "b=none", "c=true", "d=0.1,0.2", "e=hello"]))
    assert cfg == C(3, None, True, (0.1, 0.2), "hello")
    assert build_config(C, {"b": "2"}).b == 2.0 and build_config(C, {"a": 4.0}).a == 4
    for bad in ({"a": "2.5"}, {"c": "maybe"}, {"d": "1,2,3"}, {"a": True}):
        with pytest.raises(CrlkitError):
            build_config(C, bad)
    assert np.isclose(build_config(C, {"d": [1, 2]}).d[1], 2.0)


def test_demo_section_trains_and_hands_over_the_run(tmp_path):
    from types import SimpleNamespace

    from crlkit.commands.train import demo_section

    ctx = SimpleNamespace(out_dir=tmp_path, seed=0, shared={}, log=lambda msg: None, train_steps=3,
                          train_max_steps=4)
    frag = demo_section(ctx)
    # 3 steps cannot leave the all-latents-unused phase, so the section resumed to the maximum
    assert "resumed from its checkpoint to 4 steps" in frag
    assert json.loads((tmp_path / "train_beta_vae" / "summary.json").read_text())["steps"] == 4
    assert ctx.shared["dataset"] == "dsprites" and (tmp_path / "train_beta_vae" / "checkpoint.pt").exists()
    assert 'src="train_traversals.png"' in frag and (tmp_path / "train_traversals.png").stat().st_size > 1000
    assert (tmp_path / "train_loss.png").exists()


def test_resume_after_a_crash_matches_uninterrupted_run(tmp_path):
    opts = {"checkpoint_every": 5, "log_every": 1, "mlp_hidden": 8}
    train("vae", ToyVectors(), steps=10, seed=2, out_dir=tmp_path / "full", overrides=opts, progress=False)
    with pytest.raises(TrainingDiverged, match="step 8"):  # same stream until the 8th batch turns NaN
        train("vae", NaNAfter(8), steps=10, seed=2, out_dir=tmp_path / "crash", overrides=opts, progress=False)
    assert len((tmp_path / "crash" / "log.csv").read_text().splitlines()) == 1 + 7
    assert not (tmp_path / "crash" / "summary.json").exists()
    train("vae", ToyVectors(), steps=10, seed=2, out_dir=tmp_path / "crash", overrides=opts, progress=False,
          resume=True)
    _same_state(_weights(tmp_path / "full"), _weights(tmp_path / "crash"))
    assert (tmp_path / "full" / "log.csv").read_text() == (tmp_path / "crash" / "log.csv").read_text()
    with pytest.raises(CrlkitError, match="past --steps"):
        train("vae", ToyVectors(), steps=3, seed=2, out_dir=tmp_path / "crash", overrides=opts, resume=True)


def test_tensorboard_is_optional(tmp_path):
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(CrlkitError, match="pip install 'crlkit\\[tensorboard\\]'"):
            train("vae", ToyVectors(), steps=2, seed=0, out_dir=tmp_path, overrides={"tensorboard": True})
    else:
        train("vae", ToyVectors(), steps=2, seed=0, out_dir=tmp_path, overrides={"tensorboard": True},
              progress=False)
        assert any((tmp_path / "tensorboard").iterdir())


def test_loaded_image_model_encodes_like_the_trained_one(tmp_path):
    train("beta_vae", ToySquares(16), steps=2, seed=0, out_dir=tmp_path, overrides=IMG, progress=False)
    x = torch.as_tensor(ToySquares(16).sample(6, np.random.default_rng(0))[1])
    fast, plain = load_model(tmp_path), load_model(tmp_path, channels_last=False)
    with torch.no_grad():
        assert torch.allclose(fast.encode(x), plain.encode(x), atol=1e-5)
