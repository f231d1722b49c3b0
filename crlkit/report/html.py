"""HTML pages (Jinja2): the demo page and, later, study reports."""

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


def render_page(title: str, sections: list[dict], *, subtitle: str = "") -> str:
    """``sections``: dicts with ``title``, ``html`` (trusted fragment) and ``seconds``."""
    return _ENV.get_template("page.html").render(
        title=title, subtitle=subtitle, sections=sections,
        generated=_dt.datetime.now().strftime("%Y-%m-%d %H:%M"))


def write_page(path, title: str, sections: list[dict], *, subtitle: str = "") -> Path:
    atomic_write_text(path, render_page(title, sections, subtitle=subtitle))
    return Path(path)


def table_html(rows: list[dict], *, columns: list[str] | None = None, floatfmt: str = "{:.3f}") -> str:
    """A plain HTML table of dict rows (values escaped; floats formatted)."""
    if not rows:
        return "<p><em>no rows</em></p>"
    columns = columns or list(rows[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = []
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c, "")
            s = floatfmt.format(v) if isinstance(v, float) else str(v)
            cells.append(f"<td>{html.escape(s)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def figure_html(src: str, caption: str = "", *, width: int | None = None) -> str:
    w = f' style="max-width:{width}px"' if width else ""
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{html.escape(src)}"{w} alt="{html.escape(caption)}">{cap}</figure>'
