"""HTML pages (Jinja2): one set of templates for the demo, the dataset pages and study reports.

``templates/base.html`` is the layout every page extends (blocks ``title``, ``head``,
``header``, ``nav``, ``content``, ``footer``); ``templates/page.html`` is a page of sections.
A new kind of page adds a template that starts ``{% extends "base.html" %}`` and renders it
with :func:`render`.
"""

from __future__ import annotations

import datetime as _dt
import html
from pathlib import Path

import jinja2

from crlkit.files import atomic_write_text  # noqa: F401  (re-exported)

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("crlkit.report", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
)


def _now() -> str:
    return _dt.datetime.now().strftime("%Y-%m-%d %H:%M")


def render(template: str, **context) -> str:
    """Render ``templates/<template>`` with ``context`` (``generated`` defaults to now)."""
    context.setdefault("generated", _now())
    return _ENV.get_template(template).render(**context)


def render_page(title: str, sections: list[dict], *, subtitle: str = "", home: str = "") -> str:
    """``sections``: dicts with ``title``, ``html`` (trusted fragment) and optional ``id``,
    ``why`` (motivation, plain text) and ``seconds``."""
    return render("page.html", title=title, subtitle=subtitle, sections=sections, home=home)


def write_page(path, title: str, sections: list[dict], *, subtitle: str = "", home: str = "") -> Path:
    atomic_write_text(path, render_page(title, sections, subtitle=subtitle, home=home))
    return Path(path)


def scroll(fragment: str) -> str:
    """Wrap a wide fragment (a table) in a box that scrolls sideways instead of the page."""
    return f'<div class="scroll">{fragment}</div>'


def table_html(rows: list[dict], *, columns: list[str] | None = None, floatfmt: str = "{:.3f}",
               raw: tuple[str, ...] = ()) -> str:
    """An HTML table of dict rows (values escaped, floats formatted, text columns left-aligned),
    inside a box that scrolls sideways when it is wider than the page. Columns named in
    ``raw`` hold trusted HTML (links, thumbnails) and are not escaped."""
    if not rows:
        return "<p><em>no rows</em></p>"
    columns = columns or list(rows[0])
    text_cols = {c for c in columns if any(isinstance(r.get(c), str) for r in rows)}

    def cls(c):
        return ' class="text"' if c in text_cols or c in raw else ""

    head = "".join(f"<th{cls(c)}>{html.escape(str(c))}</th>" for c in columns)
    body = []
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c, "")
            if c in raw:
                s = str(v)
            elif v is None:
                s = "&ndash;"
            else:
                s = html.escape(floatfmt.format(v) if isinstance(v, float) else str(v))
            cells.append(f"<td{cls(c)}>{s}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return scroll(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def figure_html(src: str, caption: str = "", *, width: int | None = None, pixels: bool = False) -> str:
    """A figure: the image at its natural size (never wider than the column, or ``width`` px)
    and a caption. ``pixels`` keeps small images sharp when the browser scales them."""
    w = f' style="max-width:{width}px"' if width else ""
    c = ' class="pixels"' if pixels else ""
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{html.escape(src)}"{c}{w} alt="{html.escape(caption)}">{cap}</figure>'


def command_html(*lines: str) -> str:
    """The command(s) that reproduce what a section shows."""
    return "<pre>" + html.escape("\n".join(lines)) + "</pre>"
