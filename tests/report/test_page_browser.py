"""The demo page in a real browser (Debian's chromium through Playwright's Python package).

Under CI (``CI=true``) a missing chromium fails the test; elsewhere it is skipped with a line
that says how to install it. The quick demo is built once for the module.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crlkit.report.browser import INSTALL_HINT, find_chromium

WIDTH = 1280


def _require_chromium() -> str:
    path = find_chromium()
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"chromium is missing under CI: {INSTALL_HINT}")
        pytest.skip(f"chromium not found: {INSTALL_HINT}")
    pytest.importorskip("playwright.sync_api")
    return path


@pytest.fixture(scope="module")
def demo_page(tmp_path_factory) -> Path:
    """``crlkit demo --quick``'s page, built once per session: under pytest-xdist the workers
    share one build through a lock in their common temporary directory."""
    _require_chromium()
    from filelock import FileLock

    from crlkit.report.demo import build_demo

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # this session's directory
    out = root / "demo_quick"
    with FileLock(str(root / "demo_quick.lock")):
        if not (out / "done").exists():
            res = build_demo(out, seed=0, quick=True, log=lambda m: None)
            assert res["failed"] == 0, (out / "index.html").read_text()[-3000:]
            (out / "done").write_text("ok")
    return out / "index.html"


@pytest.fixture(scope="module")
def facts(demo_page) -> dict:
    from crlkit.report.browser import check_page

    return check_page(demo_page, width=WIDTH)


def test_every_section_present(facts):
    from crlkit.report.demo import SECTIONS

    ids = [s["id"] for s in facts["sections"]]
    assert ids == [s[0] for s in SECTIONS]
    for (sid, title, *_), shown in zip(SECTIONS, facts["sections"]):
        assert shown["title"].startswith(title)


def test_every_image_loads(facts):
    assert facts["images"] >= 20
    assert facts["broken_images"] == []


def test_no_console_error(facts):
    assert facts["console_errors"] == []


def test_no_horizontal_overflow(facts):
    assert facts["scroll_width"] <= WIDTH


def test_internal_links_resolve(facts, demo_page):
    assert facts["broken_links"] == []
    # the gallery links a page per dataset that builds without options, and each page links back
    from crlkit.data import list_datasets, make_dataset

    for name in list_datasets():
        try:
            make_dataset(name)
        except Exception:  # noqa: BLE001 - e.g. a user's file that needs path=: listed, no page
            continue
        assert (demo_page.parent / "data" / name / "index.html").is_file()


def test_figures_are_not_shrunk_below_legibility(facts):
    assert facts["shrunk_figures"] == []


def test_checks_catch_a_broken_page(tmp_path):
    """The checks themselves: a page with a missing image, a dead link, a script error and a
    too-wide element fails each of them."""
    _require_chromium()
    from crlkit.report.browser import check_page

    page = tmp_path / "bad.html"
    page.write_text('<!doctype html><html><body><section id="a"><h2>A</h2>'
                    '<img src="missing.png"><a href="nowhere.html">x</a><a href="#nope">y</a>'
                    '<div style="width:3000px">wide</div><script>undefined_function();</script>'
                    '</section></body></html>')
    facts = check_page(page, width=WIDTH)
    assert facts["broken_images"] == ["missing.png"]
    assert len(facts["broken_links"]) == 2
    assert facts["console_errors"]
    assert facts["scroll_width"] > WIDTH
