"""Section 6's misspecification table: rendered from bench/results/misspecify.json, never typed in."""

import json
from pathlib import Path

import pytest

from crlkit.identify.misspecify import BREAKS
from crlkit.report import demo

ROOT = Path(__file__).resolve().parents[2]


def _summary():
    return [
        {"method": "contrastive", "break": "met", "seeds": 3, "mcc_mean": 0.9871, "mcc_min": 0.98, "mcc_max": 0.99,
         "chance_mean": 0.7012, "met_mcc_mean": 0.9871, "mismatch": "", "r2_content_mean": None,
         "r2_style_mean": None, "failed": 0},
        {"method": "contrastive", "break": "gaussian_pairs", "seeds": 3, "mcc_mean": 0.6543, "mcc_min": 0.61,
         "mcc_max": 0.7, "chance_mean": 0.7012, "met_mcc_mean": 0.9871, "mismatch": "a Laplace conditional",
         "r2_content_mean": None, "r2_style_mean": None, "failed": 0},
        {"method": "iflow", "break": "met", "seeds": 3, "mcc_mean": 0.5, "mcc_min": 0.4, "mcc_max": 0.6,
         "chance_mean": 0.7, "met_mcc_mean": 0.5, "mismatch": "", "r2_content_mean": None, "r2_style_mean": None,
         "failed": 0},
    ]


def _ctx(tmp_path):
    return demo.DemoContext(out=tmp_path / "page", seed=0, sizes=demo.QUICK)


def test_table_and_figure_come_from_the_file(tmp_path, monkeypatch):
    from PIL import Image

    from crlkit.report import style

    f = tmp_path / "misspecify.json"
    f.write_text(json.dumps({"command": "python bench/bench_misspecify.py --combine X --json Y",
                             "summary": _summary()}))
    monkeypatch.setattr(demo, "_shortcut_bench_json", lambda ctx, name="shortcut.json": f)
    h = demo.misspecify_findings(_ctx(tmp_path))
    assert "0.987" in h and "0.654" in h and "0.701" in h          # numbers read from the file
    assert "--combine X --json Y" in h                              # the command that made it
    assert demo.BREAK_EXPLAINED["gaussian_pairs"][:30] in h.replace("&#x27;", "'")
    assert "iflow did not beat chance" in h                         # derived from the met row, not typed
    png = tmp_path / "page" / "crl" / "misspecify.png"
    assert png.is_file() and Image.open(png).size[0] <= style.MAX_FIGURE_PX


@pytest.mark.parametrize("content", [None, "not json", json.dumps({"summary": []})])
def test_missing_or_broken_file_is_a_note_with_the_command(tmp_path, monkeypatch, content):
    f = tmp_path / "misspecify.json"
    if content is not None:
        f.write_text(content)
    monkeypatch.setattr(demo, "_shortcut_bench_json", lambda ctx, name="shortcut.json": f if content else None)
    h = demo.misspecify_findings(_ctx(tmp_path))
    assert 'class="note"' in h and "bench_misspecify.py" in h and "<table" not in h


def test_every_break_is_explained():
    assert {b for bs in BREAKS.values() for b in bs if b != "met"} <= set(demo.BREAK_EXPLAINED)


def test_committed_results_cover_every_method_and_break():
    obj = json.loads((ROOT / "bench" / "results" / "misspecify.json").read_text())
    assert obj["command"].startswith("python bench/bench_misspecify.py --combine")
    have = {(r["method"], r["break"]) for r in obj["summary"]}
    assert have == {(m, b) for m, bs in BREAKS.items() for b in bs}
    assert len(obj["runs"]) == sum(r["seeds"] for r in obj["summary"])
