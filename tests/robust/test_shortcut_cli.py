"""``crlkit shortcut``: results files, the comparison, and user errors without tracebacks."""

import json
import subprocess
import sys

import pytest

from crlkit.cli import main

FAST = ["--steps", "2", "--n-train", "64", "--n-test", "40"]


@pytest.mark.parametrize("argv, needle", [
    (["--method", "erm", "--rho", "1.5"], "rho"),
    (["--method", "erm", "--rho", "-0.2"], "rho"),
    (["--method", "ermm"], "valid choices"),
    (["--compare", "--methods", "erm,nope"], "nope"),
    (["--method", "erm", "--eta", "3"], "eta"),
    ([], "--method"),
])
def test_user_errors_exit_2_with_a_message(tmp_path, capsys, argv, needle):
    assert main(["shortcut", *argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not (tmp_path / "results.json").exists()


def test_bad_rho_in_a_subprocess_has_no_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "crlkit", "shortcut", "--method", "erm", "--rho", "2",
                        "--out", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "rho" in r.stderr


def test_single_method_and_compare_write_their_files(tmp_path):
    out = tmp_path / "one"
    assert main(["shortcut", "--method", "erm", "--seed", "1", "--out", str(out), *FAST]) == 0
    res = json.loads((out / "results.json").read_text())
    assert list(res) == ["method", "id_accuracy", "ood_accuracy", "reversed_accuracy", "worst_group_accuracy",
                         "mean_group_accuracy", "background_flip_rate"]
    assert res["method"] == "erm"
    assert json.loads((out / "details.json").read_text())["config"]["steps"] == 2
    cmp = tmp_path / "cmp"
    assert main(["shortcut", "--compare", "--methods", "erm,dfr", "--out", str(cmp), *FAST]) == 0
    lines = (cmp / "comparison.csv").read_text().splitlines()
    assert lines[0].startswith("method,id_accuracy") and [l.split(",")[0] for l in lines[1:]] == ["erm", "dfr"]
    assert "| dfr |" in (cmp / "comparison.md").read_text()
    assert (cmp / "comparison.png").stat().st_size > 1000
    assert json.loads((cmp / "dfr" / "results.json").read_text())["method"] == "dfr"


def test_counterfactual_grid_image(tmp_path):
    import numpy as np
    from PIL import Image

    from crlkit.commands.shortcut import counterfactual_grid

    counterfactual_grid(tmp_path / "cf.png", seed=0, n=3)
    img = np.asarray(Image.open(tmp_path / "cf.png"))
    assert img.shape == (5 * 66 * 2, 3 * 66 * 2, 3)
    # row 4 (foreground only) is mostly the neutral grey; rows 1-2 (grass / sand swapped) are not
    h = 66 * 2
    grey = np.abs(img[3 * h:4 * h - 4].astype(int) - 128).max(axis=2) <= 1
    assert grey.mean() > 0.8
    assert np.abs(img[:h - 4].astype(int) - img[h:2 * h - 4].astype(int)).mean() > 20
