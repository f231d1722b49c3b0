"""``crlkit identify``: results.json with the documented keys, the comparison table, errors."""

import json

import numpy as np
import pytest

from crlkit.cli import main
from crlkit.errors import CrlkitError
from crlkit.identify import make_setting


def test_identify_writes_results_json(tmp_path):
    out = tmp_path / "ivae"
    rc = main(["identify", "--method", "ivae", "--latents", "3", "--segments", "7", "--mixing-layers", "1",
               "--steps", "30", "--set", "eval_samples=300", "--seed", "1", "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    for key in ("method", "mcc", "r2_linear", "r2_nonlinear", "baseline_mcc"):
        assert key in res
    assert res["method"] == "ivae" and res["latents"] == 3 and res["segments"] == 7
    assert 0.0 <= res["mcc"] <= 1.0 and 0.5 < res["baseline_mcc"] < 1.0
    assert (out / "model" / "checkpoint.pt").exists()  # trained through the shared trainer


def test_mixing_activation_reaches_the_data(tmp_path):
    rc = main(["identify", "--method", "ivae", "--latents", "3", "--segments", "7", "--mixing-layers", "2",
               "--data-set", "mixing_activation=xtanh", "--steps", "20", "--restarts", "1", "--set", "eval_samples=300",
               "--out", str(tmp_path / "x")])
    assert rc == 0
    res = json.loads((tmp_path / "x" / "results.json").read_text())
    assert res["mixing_activation"] == "xtanh" and res["setting"]["data"]["mixing_activation"] == "xtanh"
    cfg = json.loads((tmp_path / "x" / "model" / "config.json").read_text())
    assert cfg["model_config"]["posterior"] == "full"  # IVAEConfig's default preset: the benchmark's
    assert cfg["train_config"]["lr"] == 1e-2 and cfg["train_config"]["batch_size"] == 256


def test_method_options_reach_the_model(tmp_path):
    rc = main(["identify", "--method", "ivae", "--latents", "3", "--segments", "7", "--mixing-layers", "1",
               "--set", "posterior=diagonal", "--set", "decoder_var=0.001", "--set", "importance_samples=3",
               "--steps", "20", "--set", "eval_samples=300", "--out", str(tmp_path / "d")])
    assert rc == 0
    res = json.loads((tmp_path / "d" / "results.json").read_text())
    assert res["setting"]["model"]["posterior"] == "diagonal"
    cfg = json.loads((tmp_path / "d" / "model" / "config.json").read_text())
    assert cfg["model_config"]["posterior"] == "diagonal" and cfg["model_config"]["decoder_var"] == 0.001
    assert cfg["model_config"]["importance_samples"] == 3


def test_content_style_and_interventional_add_their_keys(tmp_path):
    rc = main(["identify", "--method", "content_style", "--latents", "4", "--mixing-layers", "1", "--steps", "20",
               "--set", "eval_samples=300", "--out", str(tmp_path / "cs")])
    assert rc == 0
    res = json.loads((tmp_path / "cs" / "results.json").read_text())
    assert {"r2_content", "r2_style"} <= set(res)
    rc = main(["identify", "--method", "interventional", "--latents", "3", "--mixing-layers", "1", "--steps", "20",
               "--set", "batch_size=64", "--set", "eval_samples=300", "--set", "graph_pairs=1000",
               "--out", str(tmp_path / "int")])
    assert rc == 0
    res = json.loads((tmp_path / "int" / "results.json").read_text())
    assert res["setting"]["graph_pairs"] == 1000 and res["setting"]["eval_samples"] == 300
    assert isinstance(res["shd"], int) and len(res["graph"]) == 3 and len(res["true_graph"]) == 3
    assert res["setting"]["model"].get("known_targets", False) is False
    assert res["setting"]["model"]["refine_from"] == 15  # the last quarter of the steps refines
    assert res["setting"]["model"]["recon_weight"] == 1.0  # the runner's reconstruction term
    rc = main(["identify", "--method", "interventional", "--set", "refine_from=0", "--set", "recon_weight=0",
               "--latents", "3", "--mixing-layers", "1", "--steps", "20", "--set", "batch_size=64",
               "--set", "eval_samples=300", "--restarts", "1", "--out", str(tmp_path / "nr")])
    assert rc == 0
    model_setting = json.loads((tmp_path / "nr" / "results.json").read_text())["setting"]["model"]
    assert model_setting["refine_from"] == 0 and model_setting["recon_weight"] == 0.0
    rc = main(["identify", "--method", "interventional", "--set", "known_targets=true", "--latents", "3",
               "--mixing-layers", "1", "--steps", "20", "--set", "batch_size=64", "--set", "eval_samples=300",
               "--restarts", "1", "--out", str(tmp_path / "kt")])
    assert rc == 0
    res = json.loads((tmp_path / "kt" / "results.json").read_text())
    assert res["setting"]["model"]["known_targets"] is True and isinstance(res["shd"], int)


def test_user_errors_print_without_traceback(tmp_path, capsys):
    def fails(*argv):
        """exit 2, one line naming the problem, no traceback, nothing written"""
        assert main(["identify", *argv, "--out", str(tmp_path / "never")]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        return err

    assert "unknown method 'ivea'" in (err := fails("--method", "ivea")) and "ivae" in err
    assert "--method is required" in fails()
    assert "not both" in fails("--method", "ivae", "--compare")
    assert "conditional" in fails("--method", "contrastive", "--set", "conditional=cauchy")
    err = fails("--method", "ivae", "--data-set", "mixing_activation=relu")
    assert "relu" in err and "xtanh" in err
    assert "--data-set latents: set it with --latents" in fails("--method", "ivae", "--data-set", "latents=3")
    err = fails("--method", "ivae", "--set", "posterior=lowrank")
    assert "posterior 'lowrank'" in err and "diagonal" in err and "full" in err
    err = fails("--method", "ivae", "--set", "preset=original")
    assert "preset 'original'" in err and "benchmark" in err and "paper" in err
    # a key of another method's config: unknown for this one, with the valid keys listed
    err = fails("--method", "contrastive", "--set", "posterior=full")
    assert "unknown key 'posterior'" in err and "normalization" in err
    assert "unknown key 'known_targets'" in fails("--method", "ivae", "--set", "known_targets=true")
    assert "unknown key 'graph_pairs'" in fails("--method", "contrastive", "--set", "graph_pairs=1000")
    assert "recon_weight must be >= 0" in fails("--method", "interventional", "--set", "recon_weight=-1")
    assert "graph_pairs must be >= 100; got 50" in fails("--method", "interventional", "--set", "graph_pairs=50")
    assert "decoder_var must be > 0" in fails("--method", "ivae", "--set", "decoder_var=0", "--steps", "1")
    assert "importance_samples must be an integer >= 1" in fails("--method", "ivae", "--set", "importance_samples=0",
                                                                 "--steps", "1")
    assert "expected a float" in fails("--method", "ivae", "--set", "lr=fast")
    assert "--set expects key=value" in fails("--method", "ivae", "--set", "posterior")
    assert "--quick applies to --compare only" in fails("--method", "ivae", "--quick")
    assert "not to --compare" in fails("--compare", "--set", "lr=0.1")
    assert not (tmp_path / "never" / "results.json").exists()


def test_presets_reach_train_and_identify_alike(tmp_path):
    """--set preset=paper: the same model config from `crlkit identify` and `crlkit train`, and the
    preset's training options (lr 1e-3, batch 64) in the identify runner."""
    from crlkit.identify.benchmark import split_options
    from crlkit.train import resolve_settings

    model_options, run_options = split_options("ivae", {"preset": "paper", "importance_samples": "2"})
    assert model_options == {"preset": "paper", "importance_samples": 2} and run_options == {}
    s = make_setting("ivae", model_options=model_options)
    assert (s.lr, s.batch_size) == (1e-3, 64)
    assert (make_setting("ivae").lr, make_setting("ivae").batch_size) == (1e-2, 256)
    _, via_train, _, _ = resolve_settings("ivae", {"preset": "paper", "importance_samples": "2"})
    assert via_train.posterior == "diagonal" and via_train.importance_samples == 2 and via_train.whiten is False
    rc = main(["identify", "--method", "ivae", "--latents", "3", "--segments", "7", "--mixing-layers", "1",
               "--set", "preset=paper", "--steps", "10", "--set", "eval_samples=300", "--out", str(tmp_path / "p")])
    assert rc == 0
    cfg = json.loads((tmp_path / "p" / "model" / "config.json").read_text())
    assert cfg["model_config"]["preset"] == "paper" and cfg["model_config"]["posterior"] == "diagonal"
    assert cfg["model_config"]["lr_schedule"] == "constant" and cfg["train_config"]["lr"] == 1e-3


def test_setting_validation():
    with pytest.raises(CrlkitError, match="segments"):
        make_setting("ivae", segments=0)
    with pytest.raises(CrlkitError, match="latents"):
        make_setting("contrastive", latents=1)
    s = make_setting("content_style", latents=8)
    assert s.sampler["content"] == 4 and s.model["num_latents"] == 4
    s = make_setting("contrastive", conditional="gaussian")
    assert s.model["p"] == 2.0 and s.sampler["conditional"] == "gaussian"
    # interventional: 16,000 steps from 7 latents on (schedule and refinement follow), unless given
    assert make_setting("interventional", latents=6).steps == 8000
    s = make_setting("interventional", latents=7)
    assert s.steps == 16000 and s.model["lr_decay_steps"] == 16000 and s.model["refine_from"] == 12000
    assert make_setting("interventional", latents=8, steps=500).steps == 500


def test_ivae_restarts_select_by_heldout_elbo(tmp_path):
    from crlkit.identify import run_identify

    res = run_identify("ivae", latents=3, segments=7, mixing_layers=1, steps=20, eval_samples=300, seed=1,
                       restarts=2, out_dir=tmp_path / "rs")
    runs = res["restarts"]
    assert [r["seed"] for r in runs] == [1, 1001] and sum(r["selected"] for r in runs) == 1
    best = max(runs, key=lambda r: r["heldout_elbo"])
    assert best["selected"] and (tmp_path / "rs" / "model_restart1" / "checkpoint.pt").exists()
    with pytest.raises(CrlkitError, match="restarts.*ivae, iflow, interventional"):
        run_identify("contrastive", latents=3, mixing_layers=1, steps=5, restarts=2, out_dir=tmp_path / "c")


def test_interventional_restarts_are_adaptive_and_select_by_target_balance(tmp_path, monkeypatch):
    """Restarts stop at the first run whose held-out target balance reaches the bar; with a bar no
    run can reach, all of them train and the most balanced is kept."""
    from crlkit.identify import benchmark, run_identify

    kw = dict(latents=3, mixing_layers=1, steps=20, eval_samples=300, graph_pairs=1000, seed=2, restarts=3)
    monkeypatch.setattr(benchmark, "INTERVENTIONAL_BALANCE", 0.0)  # any run is balanced enough
    res = run_identify("interventional", out_dir=tmp_path / "one", **kw)
    assert [r["seed"] for r in res["restarts"]] == [2] and res["restarts"][0]["selected"]
    assert not (tmp_path / "one" / "model_restart1").exists()
    monkeypatch.setattr(benchmark, "INTERVENTIONAL_BALANCE", 1.01)  # none is: all three train
    res = run_identify("interventional", out_dir=tmp_path / "all", **kw)
    runs = res["restarts"]
    assert [r["seed"] for r in runs] == [2, 1002, 2002] and sum(r["selected"] for r in runs) == 1
    assert all(r["criterion"] == "target_balance" and 1 / 3 <= r["target_balance"] <= 1 for r in runs)
    kept = max(runs, key=lambda r: r["target_balance"])
    assert kept["selected"] and res["model_dir"] == kept["model_dir"]
    assert 1 / 3 <= res["target_balance"] <= 1 and 1 / 3 <= res["change_share"] <= 1


def test_iflow_restarts_select_by_heldout_log_likelihood(tmp_path):
    from crlkit.identify import run_identify

    res = run_identify("iflow", latents=3, segments=7, mixing_layers=1, steps=20, eval_samples=300, seed=2,
                       restarts=2, out_dir=tmp_path / "rf")
    runs = res["restarts"]
    assert [r["criterion"] for r in runs] == ["heldout_log_likelihood"] * 2
    best = max(runs, key=lambda r: r["heldout_log_likelihood"])
    assert best["selected"] and np.isfinite(best["heldout_log_likelihood"])
    assert res["method"] == "iflow" and res["setting"]["model"]["aux_dim"] == 7
