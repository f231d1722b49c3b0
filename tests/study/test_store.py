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
