"""Grids: presets expand to the right runs, run ids are stable, bad grids fail in one line
before anything trains; the analysis functions on hand-made tables."""

import numpy as np
import pandas as pd
import pytest

from crlkit.cli import main
from crlkit.errors import CrlkitError
from crlkit.study import analysis as A
from crlkit.study.grid import PRESETS, load_grid

SMALL = {"dataset": "synthetic", "data_set": {"latents": 3}, "steps": 20, "set": {"batch_size": 16},
         "models": {"beta_vae": {"beta": [1, 4]}}, "seeds": [0, 1], "metrics": ["mig", "udr"],
         "evaluation": {"n_train": 200, "n_test": 100}}


def test_locatello_preset_is_six_methods_by_six_values():
    g = load_grid("locatello", seeds=[0])
    runs = g.runs()
    assert len(runs) == 36 and len({r.run_id for r in runs}) == 36
    assert {r.model for r in runs} == {"beta_vae", "annealed_vae", "factor_vae", "dip_vae_i", "dip_vae_ii",
                                       "beta_tcvae"}
    assert sorted(r.params["c_max"] for r in runs if r.model == "annealed_vae") == [5, 10, 25, 50, 75, 100]
    assert all(r.config["steps"] == 300000 for r in runs)
    assert len(load_grid("locatello_weak", seeds=[0, 1]).runs()) == 24
    ident = load_grid("identify", seeds=[0], steps=500).runs()
    assert {r.model for r in ident} == set(PRESETS["identify"]["models"]) and len(ident) == 16


def test_run_ids_hash_the_config_and_a_larger_grid_keeps_them(tmp_path):
    small = {r.run_id for r in load_grid(SMALL).runs()}
    bigger = {**SMALL, "models": {"beta_vae": {"beta": [1, 4, 8]}}, "seeds": [0, 1, 2]}
    big = {r.run_id for r in load_grid(bigger).runs()}
    assert small < big and len(big) == 9
    path = tmp_path / "g.yaml"
    path.write_text("dataset: synthetic\ndata_set: {latents: 3}\nsteps: 20\nset: {batch_size: 16}\n"
                    "models:\n  beta_vae: {beta: ['1', 4.0]}\nseeds: [1, 0]\nmetrics: [mig, udr]\n"
                    "evaluation: {n_train: 200, n_test: 100}\n")
    assert {r.run_id for r in load_grid(path).runs()} == small  # same runs however they are written
    assert len({r.run_id for r in load_grid({**SMALL, "steps": 21}).runs()} & small) == 0


@pytest.mark.parametrize("change, message", [
    ({"models": {"beta_vea": {"beta": [1]}}}, "grid model (models.*) 'beta_vea'"),
    ({"models": {"beta_vae": {"gamma": [1]}}}, "grid models.beta_vae.gamma: unknown key 'gamma'"),
    ({"models": {"beta_vae": {"beta": ["high"]}}}, "grid models.beta_vae.beta: invalid value 'high'"),
    ({"models": {"beta_vae": {"beta": []}}}, "grid models.beta_vae.beta: empty grid"),
    ({"models": {}}, "grid models: empty grid"),
    ({"seeds": []}, "grid seeds: empty grid"),
    ({"steps": "many"}, "grid steps: expected an integer"),
    ({"set": {"batch_sise": 8}}, "grid set (for beta_vae): unknown key 'batch_sise'"),
    ({"metrics": ["mig", "mgi"]}, "unknown grid metric 'mgi'"),
    ({"data_set": {"latent": 3}}, "grid data_set key"),
    ({"extra": 1}, "unknown grid key 'extra'"),
])
def test_bad_grids_fail_in_one_line_before_training(tmp_path, capsys, change, message):
    import yaml

    grid = tmp_path / "bad.yaml"
    grid.write_text(yaml.safe_dump({**SMALL, **change}))
    out = tmp_path / "study"
    with pytest.raises(CrlkitError, match=None) as err:
        load_grid(grid)
    assert message in str(err.value)
    assert main(["study", "run", "--grid", str(grid), "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert not out.exists()  # nothing was created, let alone trained


def _table(rng, effect_method, effect_hp, noise, seeds=4):
    rows = []
    for mi, m in enumerate(["a", "b", "c"]):
        for h in range(3):
            for s in range(seeds):
                rows.append({"model": m, "setting": f"h={h}", "seed": s, "status": "done",
                             "mig": effect_method * mi + effect_hp * h + noise * rng.standard_normal()})
    return pd.DataFrame(rows)


def test_variance_shares_find_the_source_of_variation():
    rng = np.random.default_rng(0)
    by_method = A.variance_shares(_table(rng, 1.0, 0.0, 0.01), "mig")
    by_seed = A.variance_shares(_table(rng, 0.0, 0.0, 1.0), "mig")
    by_hp = A.variance_shares(_table(rng, 0.0, 1.0, 0.01), "mig")
    assert by_method["method"] > 0.99 and by_seed["seed"] > 0.7 and by_hp["hyperparameter"] > 0.99
    for s in (by_method, by_seed, by_hp):
        assert sum(s.values()) == pytest.approx(1.0)
    row = A.variance_table(_table(rng, 1.0, 0.0, 0.3), ["mig"], n_boot=200)[0]
    est, lo, hi = row["method"]
    assert lo <= est <= hi and lo > 0.5


def test_selection_against_a_random_pick():
    rng = np.random.default_rng(1)
    df = _table(rng, 0.0, 0.0, 1.0)
    df["udr"] = df["mig"]                          # a perfect label-free score
    df["gaussian_total_correlation"] = df["mig"]   # lower is better: picks the worst run
    df["mutual_info"] = 1.0                        # constant: a tie, broken at random
    n = 12
    assert A.selection_beats_random(df, "udr", "mig") == pytest.approx((n - 1 + 0.5) / n)
    assert A.selection_beats_random(df, "gaussian_total_correlation", "mig") == pytest.approx(0.5 / n)
    assert A.selection_beats_random(df, "mutual_info", "mig") == pytest.approx(0.5)
    est, lo, hi = A.selection_beats_random(df, "udr", "mig", n_boot=200)
    assert lo <= est <= hi


def test_findings_are_sentences_from_the_data():
    rng = np.random.default_rng(2)
    df = _table(rng, 0.0, 0.0, 1.0)
    df["factor_vae"] = df["mig"] + 0.1 * rng.standard_normal(len(df))
    df["udr"] = rng.standard_normal(len(df))
    df.attrs["metrics"] = ["mig", "factor_vae", "udr"]
    found = {f["topic"]: f for f in A.findings(df, n_boot=200)}
    assert found["Seeds and hyperparameters against the method"]["verdict"] == "agrees"
    assert found["Do the metrics agree?"]["verdict"] == "agrees"
    assert "36 runs" in found["Seeds and hyperparameters against the method"]["ours"]
    assert "chance is 0.50" in found["Unsupervised model selection"]["ours"]
