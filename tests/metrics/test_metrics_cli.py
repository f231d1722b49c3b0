import json

import pytest

from crlkit.cli import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from crlkit.train import train

    out = tmp_path_factory.mktemp("run")
    train("beta_vae", "synthetic", steps=3, seed=0, out_dir=out, progress=False)
    return out


def test_evaluate_cli_writes_flat_json(run_dir, tmp_path, capsys):
    out = tmp_path / "m.json"
    rc = main(["evaluate", str(run_dir), "--metrics", "mig", "mcc", "irs", "--samples", "200", "--test-samples", "100",
               "--no-progress",
               "--out", str(out)])
    assert rc == 0
    scores = json.loads(out.read_text())
    assert set(scores) == {"mig", "mcc", "irs"}
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in scores.values())
    assert "wrote" in capsys.readouterr().out


def test_evaluate_cli_errors_without_traceback(run_dir, tmp_path, capsys):
    assert main(["evaluate", str(run_dir), "--metrics", "dci_fast", "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'dci_fast'" in err and "mig" in err and "Traceback" not in err
    assert err.count("\n") == 1
    assert main(["evaluate", str(run_dir), "--dci-bins", "many", "--out", str(tmp_path / "x.json")]) == 2
    assert "--dci-bins" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path), "--out", str(tmp_path / "x.json")]) == 2
    assert "not a crlkit run directory" in capsys.readouterr().err


def test_evaluate_progress_lines_with_time_left(run_dir, tmp_path, capsys, monkeypatch):
    """Not on a terminal, the slow scores print progress lines (one at least, at the end) on stderr."""
    from crlkit.metrics import _progress

    monkeypatch.setattr(_progress, "INTERVAL", 0.0)
    out = tmp_path / "m.json"
    assert main(["evaluate", str(run_dir), "--metrics", "beta_vae", "--samples", "64", "--test-samples", "32",
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "beta_vae: done in" in err
    assert " left" in err and "points" in err
    assert main(["evaluate", str(run_dir), "--metrics", "beta_vae", "--samples", "64", "--test-samples", "32",
                 "--no-progress", "--out", str(out)]) == 0
    assert "beta_vae" not in capsys.readouterr().err


def test_evaluate_writes_strict_json_for_infinite_scores(run_dir, tmp_path, monkeypatch):
    import importlib

    ev = importlib.import_module("crlkit.metrics.evaluate")  # the module (the package exports its function)

    real = ev.evaluate
    monkeypatch.setattr(ev, "evaluate", lambda *a, **k: {**real(*a, **k), "gaussian_total_correlation": float("inf")})
    out = tmp_path / "m.json"
    assert main(["evaluate", str(run_dir), "--metrics", "mig", "--samples", "50", "--test-samples", "20",
                 "--out", str(out)]) == 0
    text = out.read_text()
    assert "Infinity" not in text
    scores = json.loads(text)
    assert scores["gaussian_total_correlation"] is None and scores["nonfinite"] == {"gaussian_total_correlation": "inf"}


def test_dci_progress_counts_boosting_stages(capsys, monkeypatch):
    import numpy as np

    from crlkit.metrics import _progress, dci_scores

    monkeypatch.setattr(_progress, "INTERVAL", 0.0)
    rng = np.random.default_rng(0)
    f = rng.integers(0, 3, size=(120, 2))
    c = f + 0.1 * rng.standard_normal(f.shape)
    quiet = dci_scores(c[:80], f[:80], c[80:], f[80:], seed=0)
    assert capsys.readouterr().err == ""                                   # off by default
    shown = dci_scores(c[:80], f[:80], c[80:], f[80:], seed=0, progress=True)
    err = capsys.readouterr().err
    assert shown == quiet                                                  # progress never changes a score
    assert "dci: 1/100 stages" in err and "dci: 99/100 stages" in err and " left" in err
    assert err.rstrip().splitlines()[-1].startswith("dci: done in")
