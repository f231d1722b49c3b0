"""``crlkit shortcut``: results files, selection rules, the comparison, and user errors without tracebacks."""

import json
import subprocess
import sys

import pytest

from crlkit.cli import main

FAST = ["--steps", "2", "--data-set", "n_train=64", "--data-set", "n_val=32", "--data-set", "n_test=40",
        "--set", "evals=1", "--set", "width=4", "--set", "batch_size=16"]


@pytest.mark.parametrize("argv, needle", [
    (["--method", "erm", "--data-set", "rho=1.5"], "rho"),
    (["--method", "erm", "--data-set", "rhos=0.9,x"], "rhos"),
    (["--method", "erm", "--data-set", "colour=3"], "valid choices"),
    (["--method", "ermm"], "valid choices"),
    (["--compare", "--methods", "erm,nope"], "nope"),
    (["--method", "erm", "--data-set", "eta=3"], "eta"),
    (["--method", "jtt", "--set", "up_weight=3"], "upweight"),
    (["--method", "erm", "--set", "lr=abc"], "lr"),
    (["--method", "dfr", "--set", "C=-1"], "C must be in (0.0, inf)"),
    (["--method", "jtt", "--set", "first_fraction=1.5"], "first_fraction"),
    (["--method", "irm", "--set", "penalty_weight=nan"], "penalty_weight"),
    (["--method", "erm", "--set", "evals=0"], "evals"),
    (["--method", "erm", "--selection", "best"], "worst_group"),
    ([], "--method"),
])
def test_user_errors_exit_2_with_a_message(tmp_path, capsys, argv, needle):
    assert main(["shortcut", *argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not (tmp_path / "results.json").exists()


def test_bad_seed_is_refused_by_the_parser(tmp_path, capsys):
    assert main(["shortcut", "--method", "erm", "--seed", "-1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--seed" in err and "Traceback" not in err and not (tmp_path / "results.json").exists()


def test_bad_rho_in_a_subprocess_has_no_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "crlkit", "shortcut", "--method", "erm", "--data-set", "rho=2",
                        "--out", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "rho" in r.stderr


def test_single_method_and_compare_write_their_files(tmp_path):
    import torch

    out = tmp_path / "one"
    threads = torch.get_num_threads()
    assert main(["shortcut", "--method", "groupdro", "--seed", "1", "--set", "step_size=0.1", "--out", str(out),
                 *FAST]) == 0
    assert torch.get_num_threads() == threads  # --threads is restored
    res = json.loads((out / "results.json").read_text())
    assert res["method"] == "groupdro" and res["selection"] == "worst_group"
    assert res["selected"]["params"]["step_size"] == 0.1 and res["selected"]["step"] == 2
    assert set(res["validation"]) == {"worst_group", "worst_class", "average"}
    assert "group" in res["labels"]["method"] and 0 <= res["worst_group_accuracy"] <= 1
    assert json.loads((out / "details.json").read_text())["config"]["steps"] == 2
    assert main(["shortcut", "--method", "erm", "--out", str(out), *FAST]) == 2  # no silent overwrite
    cmp = tmp_path / "cmp"
    assert main(["shortcut", "--compare", "--methods", "erm,dfr", "--selection", "all", "--set", "dfr.C=0.3",
                 "--data-set", "rhos=0.9,0.8", "--data-set", "test_rho=0.1", "--out", str(cmp), *FAST]) == 0
    lines = (cmp / "comparison.csv").read_text().splitlines()
    assert lines[0].startswith("method,selection,id_accuracy")
    assert [tuple(l.split(",")[:2]) for l in lines[1:]] == [(m, r) for m in ("erm", "dfr")
                                                           for r in ("worst_group", "worst_class", "average", "oracle")]
    assert "| dfr | oracle |" in (cmp / "comparison.md").read_text()
    assert (cmp / "comparison.png").stat().st_size > 1000
    dfr = json.loads((cmp / "dfr" / "results.json").read_text())
    assert set(dfr) == {"worst_group", "worst_class", "average", "oracle"}
    assert dfr["average"]["selected"]["params"]["C"] == 0.3
    details = json.loads((cmp / "erm" / "details.json").read_text())
    assert details["config"]["rhos"] == [0.9, 0.8] and details["config"]["test_rho"] == 0.1


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
