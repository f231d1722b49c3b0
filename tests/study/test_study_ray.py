"""`crlkit study` end to end on Ray (CPU, tiny runs of ~20-40 steps): a study, a re-run that
trains nothing, a driver killed with SIGKILL and re-run with a larger grid, and a study joined
to a Ray cluster started with `ray start --head`."""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import crlkit.study as study
from crlkit.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _grid(path: Path, **change) -> Path:
    spec = {"dataset": "synthetic", "data_set": {"latents": 3}, "steps": 20,
            "set": {"batch_size": 16, "checkpoint_every": 10, "log_every": 10},
            "models": {"beta_vae": {"beta": [1, 4]}, "vae": {}}, "seeds": [0, 1],
            "metrics": ["mig", "unsupervised", "udr"], "evaluation": {"n_train": 200, "n_test": 100,
                                                                       "udr_samples": 200}}
    spec.update(change)
    path.write_text(yaml.safe_dump(spec))
    return path


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0"}


def _rows(directory: Path) -> list[tuple]:
    with sqlite3.connect(directory / "study.sqlite") as db:
        return db.execute("SELECT run_id, status, finished FROM runs ORDER BY run_id").fetchall()


@pytest.fixture(scope="module")
def done_study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("study")
    grid = _grid(tmp / "grid.yaml")
    out = tmp / "s"
    assert main(["study", "run", "--grid", str(grid), "--out", str(out), "--max-concurrent", "2"]) == 0
    return grid, out


def test_study_end_to_end(done_study, tmp_path):
    grid, out = done_study
    df = study.load(out)
    assert len(df) == 6 and set(df["status"]) == {"done"}
    assert sorted(df["model"].value_counts().to_dict().items()) == [("beta_vae", 4), ("vae", 2)]
    assert set(df.loc[df["model"] == "beta_vae", "beta"]) == {1.0, 4.0}
    assert df["mig"].between(0, 1).all() and df["gaussian_total_correlation"].notna().all()
    assert df["udr"].between(0, 1).all()           # every setting has two seeds
    assert df["git_commit"].notna().all() and (df["crlkit_version"] != "").all()
    assert (df["mismatch"] == "").all() and df["contract"].str.contains('"guarantee"').all()  # stored per run
    for run_id in df["run_id"]:
        assert (out / "runs" / run_id / "checkpoint.pt").exists()
    assert main(["study", "export", str(out), "--out", str(tmp_path / "runs.csv")]) == 0
    import pandas as pd

    csv = pd.read_csv(tmp_path / "runs.csv")
    assert list(csv.columns[:4]) == ["run_id", "model", "seed", "status"] and {"beta", "mig", "udr"} <= set(csv)
    assert main(["study", "report", str(out), "--bootstrap", "50"]) == 0
    page = (out / "report" / "index.html").read_text()
    assert "Locatello et al. (2019)" in page and "6 of 6 planned runs are done" in page
    assert (out / "report" / "strip_mig.png").exists()


def test_rerun_trains_nothing(done_study, capsys):
    grid, out = done_study
    before = _rows(out)
    capsys.readouterr()
    assert main(["study", "run", "--grid", str(grid), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "6 done, 0 to train" in text and "0 trained now" in text
    assert _rows(out) == before                    # not one row rewritten
    import ray

    assert not ray.is_initialized()                # nothing to train: Ray never started


def test_killed_driver_then_larger_grid(tmp_path):
    grid = _grid(tmp_path / "grid.yaml", steps=40, models={"beta_vae": {"beta": [1, 4]}}, metrics=["mig"])
    out = tmp_path / "s"
    proc = subprocess.Popen([sys.executable, "-m", "crlkit", "study", "run", "--grid", str(grid), "--out", str(out),
                             "--max-concurrent", "1"], env=_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            if (out / "study.sqlite").exists():
                try:
                    if len(_rows(out)) >= 1:
                        break
                except sqlite3.OperationalError:
                    pass
            time.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)          # the driver only
        proc.wait(timeout=30)
    finally:
        time.sleep(2)
        try:  # Ray's agents the killed driver left behind: its own process group, started here
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    first = {r[0]: r for r in _rows(out)}
    assert 1 <= len(first) < 4
    larger = _grid(tmp_path / "larger.yaml", steps=40, models={"beta_vae": {"beta": [1, 4]}}, metrics=["mig"],
                   seeds=[0, 1, 2])
    res = study.run(larger, out, max_concurrent=2, log=lambda s: None)
    assert res["planned"] == 6 and res["done_before"] == len(first) and res["failed"] == 0
    rows = _rows(out)
    assert len(rows) == 6 and len({r[0] for r in rows}) == 6 and {r[1] for r in rows} == {"done"}
    assert all(first[r[0]] == r for r in rows if r[0] in first)  # done runs were not trained again
    assert {r.run_id for r in study.load_grid(larger).runs()} == {r[0] for r in rows}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_study_on_a_ray_cluster(tmp_path):
    """`ray start --head` (blocking, in its own process group, stopped by its id afterwards: a
    plain `ray stop` would stop every Ray on a shared machine)."""
    ray_bin = Path(sys.executable).with_name("ray")
    port = _free_port()
    head = subprocess.Popen([str(ray_bin), "start", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1",
                             "--num-cpus", "2", "--include-dashboard", "false", "--block"], env=_env(),
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        grid = _grid(tmp_path / "grid.yaml", models={"beta_vae": {"beta": [2]}}, metrics=["mig"])
        address = f"127.0.0.1:{port}"
        deadline = time.time() + 120
        while time.time() < deadline:  # until the head's GCS answers
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.5)
        assert main(["study", "run", "--grid", str(grid), "--out", str(tmp_path / "s"), "--address", address]) == 0
        df = study.load(tmp_path / "s")
        assert len(df) == 2 and set(df["status"]) == {"done"}
        import ray

        assert not ray.is_initialized()
        assert head.poll() is None                 # the cluster outlives the study
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
