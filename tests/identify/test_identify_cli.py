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
               "--steps", "30", "--eval-samples", "300", "--seed", "1", "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    for key in ("method", "mcc", "r2_linear", "r2_nonlinear", "baseline_mcc"):
        assert key in res
    assert res["method"] == "ivae" and res["latents"] == 3 and res["segments"] == 7
    assert 0.0 <= res["mcc"] <= 1.0 and 0.5 < res["baseline_mcc"] < 1.0
    assert (out / "model" / "checkpoint.pt").exists()  # trained through the shared trainer


def test_mixing_activation_reaches_the_data(tmp_path):
    rc = main(["identify", "--method", "ivae", "--latents", "3", "--segments", "7", "--mixing-layers", "2",
               "--mixing-activation", "xtanh", "--steps", "20", "--restarts", "1", "--eval-samples", "300",
               "--out", str(tmp_path / "x")])
    assert rc == 0
    res = json.loads((tmp_path / "x" / "results.json").read_text())
    assert res["mixing_activation"] == "xtanh" and res["setting"]["data"]["mixing_activation"] == "xtanh"
    assert res["setting"]["model"]["posterior"] == "full"  # the benchmark's iVAE default


def test_posterior_flag_reaches_the_model(tmp_path):
    rc = main(["identify", "--method", "ivae", "--latents", "3", "--segments", "7", "--mixing-layers", "1",
               "--posterior", "diagonal", "--decoder-var", "0.001", "--importance-samples", "3", "--steps", "20",
               "--eval-samples", "300", "--out", str(tmp_path / "d")])
    assert rc == 0
    res = json.loads((tmp_path / "d" / "results.json").read_text())
    assert res["setting"]["model"]["posterior"] == "diagonal"
    cfg = json.loads((tmp_path / "d" / "model" / "config.json").read_text())
    assert cfg["model_config"]["posterior"] == "diagonal" and cfg["model_config"]["decoder_var"] == 0.001
    assert cfg["model_config"]["importance_samples"] == 3


def test_content_style_and_interventional_add_their_keys(tmp_path):
    rc = main(["identify", "--method", "content_style", "--latents", "4", "--mixing-layers", "1", "--steps", "20",
               "--eval-samples", "300", "--out", str(tmp_path / "cs")])
    assert rc == 0
    res = json.loads((tmp_path / "cs" / "results.json").read_text())
    assert {"r2_content", "r2_style"} <= set(res)
    rc = main(["identify", "--method", "interventional", "--latents", "3", "--mixing-layers", "1", "--steps", "20",
               "--batch-size", "64", "--eval-samples", "300", "--graph-pairs", "1000", "--out", str(tmp_path / "int")])
    assert rc == 0
    res = json.loads((tmp_path / "int" / "results.json").read_text())
    assert res["setting"]["graph_pairs"] == 1000 and res["setting"]["eval_samples"] == 300
    assert isinstance(res["shd"], int) and len(res["graph"]) == 3 and len(res["true_graph"]) == 3
    assert res["setting"]["model"].get("known_targets", False) is False
    assert res["setting"]["model"]["refine_from"] == 15  # the last quarter of the steps refines
    assert res["setting"]["model"]["recon_weight"] == 1.0  # the runner's reconstruction term
    rc = main(["identify", "--method", "interventional", "--no-refine", "--recon-weight", "0", "--latents", "3",
               "--mixing-layers", "1", "--steps", "20", "--batch-size", "64", "--eval-samples", "300", "--restarts",
               "1", "--out", str(tmp_path / "nr")])
    assert rc == 0
    model_setting = json.loads((tmp_path / "nr" / "results.json").read_text())["setting"]["model"]
    assert model_setting["refine_from"] == 0 and model_setting["recon_weight"] == 0.0
    rc = main(["identify", "--method", "interventional", "--known-targets", "--latents", "3", "--mixing-layers", "1",
               "--steps", "20", "--batch-size", "64", "--eval-samples", "300", "--restarts", "1",
               "--out", str(tmp_path / "kt")])
    assert rc == 0
    res = json.loads((tmp_path / "kt" / "results.json").read_text())
    assert res["setting"]["model"]["known_targets"] is True and isinstance(res["shd"], int)


def test_user_errors_print_without_traceback(tmp_path, capsys):
    assert main(["identify", "--method", "ivea", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown method 'ivea'" in err and "ivae" in err and "Traceback" not in err
    assert main(["identify", "--out", str(tmp_path)]) == 2
    assert "--method is required" in capsys.readouterr().err
    assert main(["identify", "--method", "ivae", "--compare", "--out", str(tmp_path)]) == 2
    assert main(["identify", "--method", "contrastive", "--conditional", "cauchy", "--out", str(tmp_path)]) == 2
    assert "conditional" in capsys.readouterr().err
    assert main(["identify", "--method", "ivae", "--mixing-activation", "relu", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "mixing-activation 'relu'" in err and "xtanh" in err and "Traceback" not in err
    assert main(["identify", "--method", "ivae", "--posterior", "lowrank", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "posterior 'lowrank'" in err and "diagonal" in err and "full" in err and "Traceback" not in err
    assert main(["identify", "--method", "contrastive", "--posterior", "full", "--out", str(tmp_path)]) == 2
    assert "--method ivae only" in capsys.readouterr().err
    assert main(["identify", "--method", "ivae", "--known-targets", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--method interventional only" in err and "Traceback" not in err
    assert main(["identify", "--method", "contrastive", "--no-refine", "--out", str(tmp_path)]) == 2
    assert "--no-refine applies to --method interventional only" in capsys.readouterr().err
    assert main(["identify", "--method", "contrastive", "--graph-pairs", "1000", "--out", str(tmp_path)]) == 2
    assert "--graph-pairs applies to --method interventional only" in capsys.readouterr().err
    assert main(["identify", "--method", "ivae", "--recon-weight", "1", "--out", str(tmp_path)]) == 2
    assert "--recon-weight applies to --method interventional only" in capsys.readouterr().err
    assert main(["identify", "--method", "interventional", "--recon-weight", "-1", "--out", str(tmp_path)]) == 2
    assert "--recon-weight must be >= 0" in capsys.readouterr().err
    assert main(["identify", "--method", "interventional", "--graph-pairs", "50", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "graph_pairs must be >= 100; got 50" in err and "Traceback" not in err
    assert main(["identify", "--method", "ivae", "--decoder-var", "0", "--out", str(tmp_path)]) == 2
    assert "--decoder-var must be > 0" in capsys.readouterr().err
    assert main(["identify", "--method", "vae", "--decoder-var", "0.1", "--out", str(tmp_path)]) == 2
    assert "--method ivae only" in capsys.readouterr().err
    assert main(["identify", "--method", "iflow", "--importance-samples", "4", "--out", str(tmp_path)]) == 2
    assert "--importance-samples applies to --method ivae only" in capsys.readouterr().err
    assert main(["identify", "--method", "ivae", "--importance-samples", "0", "--out", str(tmp_path)]) == 2
    assert "--importance-samples must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists()


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
