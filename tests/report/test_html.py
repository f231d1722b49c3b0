"""The page building blocks: templates, tables, figures, link checks, result rows from JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from crlkit.report import html as rh


def test_table_scrolls_in_its_own_box_and_escapes():
    out = rh.table_html([{"method": "<b>x</b>", "score": 0.12345, "link": '<a href="a.html">a</a>'}],
                        raw=("link",))
    assert out.startswith('<div class="scroll"><table>')
    assert "&lt;b&gt;x&lt;/b&gt;" in out          # escaped
    assert "0.123" in out and "0.1234" not in out  # floats formatted
    assert '<a href="a.html">a</a>' in out         # raw column kept


def test_render_page_extends_the_base_layout():
    page = rh.render_page("T", [{"id": "one", "title": "One", "why": "Because.", "html": "<p>body</p>"},
                                {"title": "Two", "html": "<p>2</p>", "seconds": 1.5}], subtitle="sub")
    assert '<section class="part" id="one">' in page and 'id="s2"' in page
    assert '<p class="why">Because.</p>' in page
    assert 'href="#one"' in page and "(1.5 s)" in page
    assert "overflow-x: auto" in page  # the scroll box style comes from base.html


def test_a_new_template_can_extend_base(tmp_path):
    import jinja2

    env = jinja2.Environment(loader=jinja2.ChoiceLoader([
        jinja2.DictLoader({"study.html": '{% extends "base.html" %}{% block content %}<p>findings</p>{% endblock %}'}),
        rh._ENV.loader]))
    page = env.get_template("study.html").render(title="Study")
    assert "<p>findings</p>" in page and "<h1>Study</h1>" in page


def test_broken_links_finds_missing_files_and_anchors(tmp_path):
    from crlkit.report.browser import broken_links

    (tmp_path / "a.html").write_text('<section id="x"></section>')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "index.html").write_text('<p id="y"></p>')
    page = tmp_path / "a.html"
    bad = broken_links(page, ["#x", "sub/index.html#y", "sub/", "https://example.org", "#nope",
                              "missing.html", "sub/index.html#z"])
    assert len(bad) == 3
    assert any("#nope" in b for b in bad) and any("missing.html" in b for b in bad)
    assert any("#z" in b for b in bad)


@pytest.mark.parametrize("obj", [
    [{"method": "erm", "worst_group_accuracy": 0.1}],
    {"command": "python bench/bench_shortcut.py", "rows": [{"method": "erm", "worst_group_accuracy": 0.1}]},
    {"erm": {"worst_group_accuracy": 0.1}},
])
def test_bench_json_rendered_from_any_nesting(tmp_path, obj):
    from crlkit.report.demo import _bench_table

    p = tmp_path / "shortcut.json"
    p.write_text(json.dumps(obj))
    out = _bench_table(p)
    assert "erm" in out and "0.100" in out
    assert "bench_shortcut.py" in out


def test_bench_json_unreadable_is_a_note(tmp_path):
    from crlkit.report.demo import _bench_table

    p = tmp_path / "shortcut.json"
    p.write_text("{not json")
    assert "could not be read" in _bench_table(p)


def test_figures_fit_the_column_with_legible_text(tmp_path):
    """Figures are saved at 100 dpi no wider than the column, with no text under 10 pt
    (13.9 px at natural size)."""
    from PIL import Image

    from crlkit.report import plots, style

    rng = np.random.default_rng(0)
    a = np.triu(rng.random((5, 5)) < 0.5, 1).astype(int)
    paths = [plots.graph_plot(a, [f"z{i}" for i in range(5)], tmp_path / "g.png"),
             plots.grouped_bars([{"method": "a", "x": 0.5}, {"method": "b", "x": 0.7}], ["x"], tmp_path / "b.png"),
             plots.scatter_pairs(rng.normal(size=(50, 6)), [f"x{i}" for i in range(6)], tmp_path / "s.png",
                                 color=rng.normal(size=50), color_label="z"),
             plots.image_rows([("row", rng.random((12, 3, 8, 8)))], tmp_path / "i.png")]
    for p in paths:
        assert Image.open(p).size[0] <= style.MAX_FIGURE_PX
    plt = style.pyplot()
    sizes = [plt.rcParams[k] for k in ("font.size", "axes.labelsize", "xtick.labelsize", "ytick.labelsize",
                                        "legend.fontsize", "axes.titlesize")]
    assert min(sizes) * style.DPI / 72 >= 10


def test_model_zoo_reads_objective_and_paper():
    from crlkit.report.demo import model_zoo

    rows = {r["method"]: r for r in model_zoo()}
    assert "beta_vae" in rows and "ivae" not in rows
    assert "beta" in rows["beta_vae"]["objective"] and "2017" in rows["beta_vae"]["paper"]
