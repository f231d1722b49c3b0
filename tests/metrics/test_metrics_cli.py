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
    rc = main(["evaluate", str(run_dir), "--metrics", "mig", "mcc", "irs", "--n-train", "200", "--n-test", "100",
               "--out", str(out)])
    assert rc == 0
    scores = json.loads(out.read_text())
    assert set(scores) == {"mig", "mcc", "irs"}
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in scores.values())
    assert "wrote" in capsys.readouterr().out


def test_evaluate_cli_errors_without_traceback(run_dir, tmp_path, capsys):
    assert main(["evaluate", str(run_dir), "--metrics", "dci_fast", "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert "unknown metric 'dci_fast'" in err and "Traceback" not in err
    assert main(["evaluate", str(run_dir), "--dci-bins", "many", "--out", str(tmp_path / "x.json")]) == 2
    assert "--dci-bins" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path), "--out", str(tmp_path / "x.json")]) == 2
    assert "not a crlkit run directory" in capsys.readouterr().err
