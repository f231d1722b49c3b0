"""The results store and one run without Ray: records, idempotent writes, status / export, and a
run resumed from the checkpoint in its directory."""

import numpy as np
import pandas as pd

import crlkit.study as study
from crlkit.cli import main
from crlkit.study.execute import execute_run
from crlkit.study.grid import load_grid
from crlkit.study.store import Store

GRID = {"dataset": "synthetic", "data_set": {"latents": 3}, "steps": 20,
        "set": {"batch_size": 16, "checkpoint_every": 10, "log_every": 10},
        "models": {"beta_vae": {"beta": [1, 4]}}, "seeds": [0, 1], "metrics": ["mig", "udr"],
        "evaluation": {"n_train": 200, "n_test": 100, "udr_samples": 100}}


def test_store_records_runs_once_and_status_export_read_it(tmp_path, capsys):
    runs = load_grid(GRID).runs()
    with Store(tmp_path) as store:
        assert store.plan(runs) == 4 and store.plan(runs) == 0
        rng = np.random.default_rng(0)
        for k, r in enumerate(runs[:3]):
            res = {"metrics": {"mig": 0.1 * k}, "train_seconds": 1.0, "eval_seconds": 0.5,
                   "codes": {"mean": rng.standard_normal((100, 4)), "kl": np.ones(4)}}
            store.record(r.run_id, r.config, res, status="done", version="0.1.0", commit="abc")
        store.record(runs[0].run_id, runs[0].config, {"metrics": {"mig": 0.0}, "train_seconds": 1.0},
                     status="done")  # written again: replaced, not duplicated
        store.record(runs[3].run_id, runs[3].config, {}, status="failed", error="TrainingDiverged: loss is nan")
        store.mark_started(runs[3].run_id)
        assert len(store.rows()) == 4 and store.done_ids() == {r.run_id for r in runs[:3]}
        assert {"hp_beta", "m_mig"} <= set(store.columns())
    df = study.load(tmp_path)
    assert len(df) == 4 and set(df["status"]) == {"done", "failed"}
    assert df.attrs["metrics"] == ["mig", "udr"] and df.attrs["hyperparameters"] == ["beta"]
    done = df[df["status"] == "done"]
    assert done.loc[done["beta"] == 1.0, "udr"].notna().all()   # two seeds: UDR defined
    assert done.loc[done["beta"] == 4.0, "udr"].isna().all()    # one seed: no UDR
    assert main(["study", "status", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "4 runs planned: 3 done, 1 running, 1 failed" in text and "TrainingDiverged" in text
    assert main(["study", "export", str(tmp_path), "--out", str(tmp_path / "runs.csv")]) == 0
    csv = pd.read_csv(tmp_path / "runs.csv")
    assert len(csv) == 4 and list(csv.columns[:4]) == ["run_id", "model", "seed", "status"]
    assert main(["study", "export", str(tmp_path), "--out", str(tmp_path / "runs.txt")]) == 2
    assert main(["study", "status", str(tmp_path / "nothing")]) == 2


def test_execute_run_resumes_from_the_checkpoint_in_its_directory(tmp_path):
    run = load_grid(GRID).runs()[0]
    first = execute_run(run.config, tmp_path / "r", udr=True)
    assert first["resumed_from"] == 0 and 0 <= first["metrics"]["mig"] <= 1
    assert first["codes"]["mean"].shape == (100, 10) and first["codes"]["kl"].shape == (10,)
    longer = {**run.config, "steps": 30}
    second = execute_run(longer, tmp_path / "r")
    assert second["resumed_from"] == 20 and second["steps"] == 30


#: ivae on synthetic with 3 segments for 2 latents: fewer than 2n + 1 = 5 values of u.
BROKEN = {"kind": "identify", "steps": 3, "seeds": [0], "metrics": ["mcc"], "evaluation": {"eval_samples": 200},
          "models": {"ivae": {"latents": [2], "segments": [3], "mixing_layers": [1], "batch_size": [16]}}}


def test_a_grid_that_breaks_a_contract_is_refused_in_one_line_before_anything_is_created(tmp_path, capsys):
    import pytest
    import yaml

    from crlkit.errors import CrlkitError

    with pytest.raises(CrlkitError, match=r"models\.ivae.*2n \+ 1 = 5.*--allow-mismatch"):
        study.run(BROKEN, tmp_path / "s")
    assert not (tmp_path / "s").exists()
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(BROKEN))
    assert main(["study", "run", "--grid", str(path), "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "grid run" in err and "ivae" in err and "2n + 1" in err
    assert not (tmp_path / "s").exists()


def test_with_allow_mismatch_the_grid_validates_and_the_row_carries_the_mismatch(tmp_path):
    import json

    from crlkit.study.grid import check_contracts

    g = load_grid(BROKEN)
    contracts, lines = check_contracts(g, allow_mismatch=True)
    assert len(lines) == 1 and "ivae on synthetic" in lines[0] and "MISMATCH" in lines[0]
    good, good_lines = check_contracts(load_grid(GRID))
    assert good_lines[0].startswith("contract: beta_vae on synthetic: guarantee: none")
    run = g.runs()[0]
    res = execute_run(run.config, tmp_path / "runs" / run.run_id, allow_mismatch=True)
    assert res["contract"]["allow_mismatch"] and res["contract"]["mismatches"]
    with Store(tmp_path) as store:
        store.plan([run])
        store.record(run.run_id, run.config, res, status="done", contract=contracts[run.run_id])
        g_run = load_grid(GRID).runs()[0]
        store.record(g_run.run_id, g_run.config, {}, status="failed", contract=good[g_run.run_id])
        rows = {r["run_id"]: r for r in store.rows()}
    row = rows[run.run_id]
    assert row["mismatch"] == ("an auxiliary variable u with >= 2n + 1 values (n latents): "
                               "u takes 3 values, fewer than 2n + 1 = 5")
    assert json.loads(row["contract"])["method"] == "ivae" and rows[g_run.run_id]["mismatch"] == ""
    assert main(["study", "export", str(tmp_path), "--out", str(tmp_path / "runs.csv")]) == 0
    csv = pd.read_csv(tmp_path / "runs.csv", keep_default_na=False).set_index("run_id")
    assert "2n + 1 = 5" in csv.loc[run.run_id, "mismatch"] and csv.loc[g_run.run_id, "mismatch"] == ""
    assert json.loads(csv.loc[run.run_id, "contract"])["guarantee"].startswith("none")


def test_a_store_written_before_the_contract_columns_still_opens(tmp_path):
    import sqlite3

    db = sqlite3.connect(tmp_path / "study.sqlite")
    db.executescript("""
    CREATE TABLE runs (run_id TEXT PRIMARY KEY, kind TEXT, model TEXT, seed INTEGER, dataset TEXT, steps INTEGER,
        status TEXT, params TEXT, metrics TEXT, config TEXT, started REAL, finished REAL,
        train_seconds REAL, eval_seconds REAL, attempts INTEGER, resumed_from INTEGER, error TEXT,
        crlkit_version TEXT, git_commit TEXT, host TEXT);
    INSERT INTO runs (run_id, model, seed, status, params, metrics) VALUES ('old', 'beta_vae', 0, 'done', '{}',
        '{"mig": 0.5}');""")
    db.commit()
    db.close()
    with Store(tmp_path, create=False) as store:
        assert {"contract", "mismatch"} <= set(store.columns())
        run = load_grid(GRID).runs()[0]
        store.record(run.run_id, run.config, {"metrics": {"mig": 0.1}}, status="done",
                     contract={"method": "beta_vae", "mismatches": []})
    df = study.load(tmp_path)
    assert len(df) == 2 and pd.isna(df.set_index("run_id").loc["old", "mismatch"])
    assert main(["study", "export", str(tmp_path), "--out", str(tmp_path / "runs.csv")]) == 0
