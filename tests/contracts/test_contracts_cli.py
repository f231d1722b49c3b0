"""The contracts on the command line and the misspecification runner."""

from __future__ import annotations

import json

import numpy as np
import pytest

from crlkit.cli import main
from crlkit.contracts import check
from crlkit.data import make_dataset
from crlkit.identify.misspecify import BREAKS, break_options, run_misspecify


def test_methods_command_prints_every_model_and_checks_a_dataset(capsys):
    from crlkit.models import list_models

    assert main(["methods", "--dataset", "synthetic", "--data-set", "segments=5"]) == 0
    out = capsys.readouterr().out
    for m in list_models():
        assert f"\n{m}\n" in "\n" + out
    assert "ivae on synthetic: assumption not met: an auxiliary variable u with >= 2n + 1 values" in out
    assert "Khemakhem et al. 2020" in out


def test_data_list_shows_contracts(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "contract: offers iid, segment" in out and "mixing not_injective" in out


def test_identify_stops_with_one_line_and_runs_with_allow_mismatch(tmp_path, capsys):
    args = ["identify", "--method", "ivae", "--latents", "2", "--segments", "3", "--mixing-layers", "1",
            "--steps", "3", "--eval-samples", "200", "--out", str(tmp_path / "r")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "2n + 1 = 5" in err and "--allow-mismatch" in err
    assert main(args + ["--allow-mismatch"]) == 0
    out = capsys.readouterr().out
    assert "MISMATCH" in out
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    assert res["contract"]["mismatches"][0]["reason"] == "u takes 3 values, fewer than 2n + 1 = 5"


def test_each_break_breaks_exactly_one_requirement():
    """Applied to each method's setting, a break leaves the other requirements met."""
    from crlkit.identify.benchmark import make_setting, train_overrides
    from crlkit.train import resolve_settings

    small = {"latents": 3, "mixing_layers": 1}
    for method, breaks in BREAKS.items():
        for brk in breaks:
            kw = break_options(method, brk, seed=0, setting_kwargs=small)
            s = make_setting(method, seed=0, **small, **{k: v for k, v in kw.items() if k != "dataset"})
            ds = make_dataset(kw.get("dataset", "synthetic"), **s.data)
            _, cfg, _, sopts = resolve_settings(method, train_overrides(s))
            c = check(method, ds, model_config=cfg, sampler_options=sopts)
            assert c.admitted, (method, brk)
            assert (len(c.mismatches) == 0) == (brk == "met"), (method, brk, c.mismatches)
            if brk != "met":
                assert len(c.mismatches) == 1, (method, brk, c.mismatches)


def test_run_misspecify_writes_table_and_figure(tmp_path):
    rows = run_misspecify(tmp_path, methods=["interventional"], seeds=[0], steps={"interventional": 5},
                          batch_size=16, latents=3, mixing_layers=1, eval_samples=200, nonlinear_max_train=50)
    assert [r["break"] for r in rows] == list(BREAKS["interventional"])
    assert rows[0]["mismatch"] == "" and rows[1]["mismatch"] == "perfect single-node interventions"
    assert all(np.isfinite(r["mcc"]) and 0 <= r["mcc"] <= 1 for r in rows)
    for f in ("misspecify.csv", "misspecify.md", "misspecify.png"):
        assert (tmp_path / f).stat().st_size > 0
