"""Small HTML builders for the self-contained report: escaping, data-URI images, the metrics table, the page.

Everything is inline: one ``<style>`` block, images as ``data:image/png;base64,...`` URIs, no script, no link
to any other file or host, so the page opens offline, from an e-mail attachment or a CI artifact.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterable, Sequence

from .tables import MEAN_ROW, column_title, format_percent

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 1.5em;
       color: #222; background: #fff; max-width: 1400px; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.3em; border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.6em; }
h3 { font-size: 1.15em; margin-top: 1.4em; }
h4 { font-size: 1em; margin: 0.9em 0 0.4em 0; color: #444; }
.meta { color: #555; font-size: 0.92em; }
.meta td { padding: 0.1em 1em 0.1em 0; }
table.metrics { border-collapse: collapse; font-size: 0.92em; }
table.metrics th, table.metrics td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
table.metrics td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.metrics tr.mean td { font-weight: bold; background: #f2f2f2; }
table.metrics th { background: #e8e8e8; }
.curves img { margin: 0 1em 1em 0; border: 1px solid #ddd; }
.cases { display: flex; flex-wrap: wrap; gap: 0.8em; }
figure { margin: 0; border: 1px solid #ddd; padding: 0.3em; background: #fafafa; }
figcaption { font-size: 0.8em; color: #333; margin-top: 0.2em; word-break: break-all; max-width: 100%; }
.note { color: #777; font-size: 0.85em; }
.scale img { vertical-align: middle; border: 1px solid #ccc; }
nav a { margin-right: 0.8em; }
"""


def esc(text: object) -> str:
    """HTML-escape any value's string form (quotes included)."""
    return html.escape(str(text), quote=True)


def slug(text: str, index: int) -> str:
    """A unique, safe element id for the ``index``-th category."""
    return f"cat{index}-" + re.sub(r"[^A-Za-z0-9_-]+", "_", text)[:40]


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def img_tag(png: bytes, alt: str, width: int | None = None, height: int | None = None) -> str:
    """An ``<img>`` element embedding ``png``."""
    size = "" if width is None or height is None else f' width="{width}" height="{height}"'
    return f'<img src="{png_data_uri(png)}" alt="{esc(alt)}"{size}>'


def metrics_table(columns: Sequence[str], rows: Iterable[tuple[str, dict[str, float]]]) -> str:
    """The metrics table: a header row, one body row per category and the ``mean`` row (values ×100)."""
    head = "".join(f"<th>{esc(column_title(c))}</th>" for c in columns)
    body = []
    for name, values in rows:
        cls = ' class="mean"' if name == MEAN_ROW else ""
        cells = "".join(f'<td class="num">{format_percent(values.get(c))}</td>' for c in columns)
        body.append(f"<tr{cls}><td>{esc(name)}</td>{cells}</tr>")
    return (
        '<table class="metrics">\n<thead><tr><th>category</th>'
        + head
        + "</tr></thead>\n<tbody>\n"
        + "\n".join(body)
        + "\n</tbody>\n</table>"
    )


def page(title: str, body: str) -> str:
    """A complete HTML5 document with the inline style sheet."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"{body}\n</body>\n</html>\n"
    )
