"""A real browser on crlkit's pages: Playwright's Python package driving the system's
Chromium (Debian's ``chromium``; Playwright's own browser download is not used).

:func:`check_page` opens a page at a given width and reports what a reader would hit: missing
sections, images that did not load, console errors, sideways overflow, links that lead
nowhere, and figures the page shrinks below legibility. :func:`screenshot_sections` writes one
PNG per section.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

from crlkit.errors import CrlkitError

INSTALL_HINT = "apt-get install chromium (Debian's package; Playwright's browser download is not used)"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
# A figure whose rendered width is below this share of its natural width has text under
# 10 px (figures use >= 10 pt at 100 dpi = 13.9 px; 0.72 * 13.9 = 10).
MIN_FIGURE_SCALE = 0.72


def find_chromium() -> str | None:
    """Path of a Chromium executable (``$CRLKIT_CHROMIUM`` first), or None."""
    env = os.environ.get("CRLKIT_CHROMIUM")
    if env and Path(env).exists():
        return env
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _launch(playwright, executable: str | None):
    executable = executable or find_chromium()
    if executable is None:
        raise CrlkitError(f"no chromium found on PATH; {INSTALL_HINT}")
    args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []  # root needs it
    return playwright.chromium.launch(executable_path=executable, headless=True, args=args)


def _url(path: Path) -> str:
    return Path(path).resolve().as_uri()


_ID_RE = re.compile(r"""\sid\s*=\s*["']([^"']+)["']""")


def _ids_in(path: Path) -> set[str]:
    return set(_ID_RE.findall(path.read_text(encoding="utf-8", errors="replace")))


def broken_links(page_path: Path, hrefs: list[str]) -> list[str]:
    """Internal links of the page at ``page_path`` that lead nowhere: a missing file, or an
    anchor that no element of the target page carries. External links are not followed."""
    page_path = Path(page_path).resolve()
    bad = []
    cache: dict[Path, set[str]] = {}
    for href in hrefs:
        u = urlparse(href)
        if u.scheme in ("http", "https", "mailto", "data", "javascript"):
            continue
        target = page_path if not u.path else (Path(unquote(u.path)) if u.scheme == "file"
                                               else page_path.parent / unquote(u.path))
        if target.is_dir():
            target = target / "index.html"
        if not target.exists():
            bad.append(f"{href} (no file {target})")
            continue
        if u.fragment and target.suffix in (".html", ".htm"):
            ids = cache.setdefault(target, _ids_in(target))
            if u.fragment not in ids:
                bad.append(f"{href} (no element with id {u.fragment!r} in {target.name})")
    return bad


_PAGE_FACTS = """() => {
  const imgs = Array.from(document.images).map(i => ({
      src: i.getAttribute('src'), complete: i.complete, natural: i.naturalWidth,
      shown: i.getBoundingClientRect().width, plot: !i.classList.contains('pixels')}));
  const links = Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href'));
  const sections = Array.from(document.querySelectorAll('section')).map(s => ({
      id: s.id, title: (s.querySelector('h2') || {}).textContent || ''}));
  return {imgs, links, sections, scrollWidth: document.documentElement.scrollWidth,
          clientWidth: document.documentElement.clientWidth};
}"""


def check_page(path, *, width: int = 1280, height: int = 900, executable: str | None = None) -> dict:
    """Open ``path`` in Chromium at ``width`` CSS px and return what a reader would hit.

    Returns a dict: ``sections`` (``[{id, title}]``), ``images`` (count), ``broken_images``
    (src of images with naturalWidth 0), ``console_errors`` (console messages of type error and
    uncaught page errors), ``scroll_width`` (``document.documentElement.scrollWidth``),
    ``broken_links`` (see :func:`broken_links`) and ``shrunk_figures`` (plots drawn below
    ``MIN_FIGURE_SCALE`` of their natural width, i.e. with text under 10 px).
    """
    from playwright.sync_api import sync_playwright

    path = Path(path)
    errors: list[str] = []
    with sync_playwright() as p:
        browser = _launch(p, executable)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(_url(path), wait_until="load")
            facts = page.evaluate(_PAGE_FACTS)
        finally:
            browser.close()
    imgs = facts["imgs"]
    return {
        "sections": facts["sections"],
        "images": len(imgs),
        "broken_images": [i["src"] for i in imgs if not i["complete"] or i["natural"] == 0],
        "console_errors": errors,
        "scroll_width": facts["scrollWidth"],
        "broken_links": broken_links(path, facts["links"]),
        "shrunk_figures": [f"{i['src']} ({i['shown']:.0f} of {i['natural']} px)" for i in imgs
                           if i["plot"] and i["natural"] > 0 and i["shown"] < MIN_FIGURE_SCALE * i["natural"]],
    }


def screenshot_sections(path, out_dir, *, width: int = 1280, executable: str | None = None,
                        selector: str = "section.part") -> list[Path]:
    """One PNG per section of the page (``NN_<id>.png``) at ``width`` CSS px, plus ``page.png``
    of the top of the page. Returns the paths written."""
    from playwright.sync_api import sync_playwright

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as p:
        browser = _launch(p, executable)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(_url(Path(path)), wait_until="load")
            page.screenshot(path=str(out / "page.png"))
            written.append(out / "page.png")
            for i, el in enumerate(page.query_selector_all(selector), 1):
                sid = el.get_attribute("id") or f"s{i}"
                target = out / f"{i:02d}_{sid}.png"
                el.screenshot(path=str(target))
                written.append(target)
        finally:
            browser.close()
    return written
