"""The report as one self-contained HTML file, to send to a customer or to management.

Self-contained: styles inline, charts inline SVG, system fonts only, no script at all. A
Content-Security-Policy in the file forbids loading anything, so even a mistake cannot make it
fetch from the network. Print-friendly: A4 pages, sections kept together where they fit.
"""

from __future__ import annotations

from typing import Final

from sipguard.report.layout import Document, Section, Table
from sipguard.report.svg import chart_svg
from sipguard.report.text import esc_html

__all__ = ["CSP", "to_html"]

CSP: Final = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_CSS: Final = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f5f7; color: #1d2330;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; }
main { max-width: 1040px; margin: 0 auto; padding: 28px 32px 48px; background: #fff; }
header { border-bottom: 3px solid #3b6ea5; padding-bottom: 12px; margin-bottom: 20px; }
h1 { font-size: 24px; margin: 0 0 6px; }
h3 { font-size: 14px; margin: 14px 0 4px; color: #2c3445; }
h2 { font-size: 18px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #dde1e7; }
.meta { margin: 0; color: #4a5263; font-size: 13px; }
.meta li { list-style: none; }
.meta ul { margin: 0; padding: 0; }
.cards { display: grid; grid-template-columns: repeat(4, 1fr); gap: 10px; }
.card { border: 1px solid #dde1e7; border-radius: 6px; padding: 10px 12px; background: #fafbfc; }
.card .v { font-size: 20px; font-weight: 600; }
.card .l { font-size: 12px; color: #4a5263; }
table { width: 100%; border-collapse: collapse; margin: 8px 0 4px; font-size: 12.5px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e6e9ee; vertical-align: top;
  overflow-wrap: break-word; }
td:last-child { overflow-wrap: anywhere; }
th { background: #eef1f5; font-weight: 600; }
table.narrow { width: auto; min-width: 50%; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
p.note { color: #666; font-size: 12px; margin: 2px 0 12px; font-style: italic; }
p.none { color: #666; }
figure { margin: 10px 0 14px; }
figcaption { font-size: 12px; color: #4a5263; margin-top: 2px; }
svg.chart { display: block; max-width: 100%; height: auto; }
footer { margin-top: 32px; color: #777; font-size: 12px; }
@page { size: A4; margin: 14mm; }
@media print {
  body { background: #fff; }
  main { max-width: none; padding: 0; }
  h2, h3 { break-after: avoid; }
  figure, tr, .card { break-inside: avoid; }
  .cards { grid-template-columns: repeat(3, 1fr); }
}
"""


def _table(table: Table) -> str:
    caption = f"<h3>{esc_html(table.caption)}</h3>" if table.caption else ""
    note = f'<p class="note">{esc_html(table.note)}</p>' if table.note else ""
    if not table.rows:
        return f'{caption}<p class="none">None.</p>{note}'

    def cls(i: int) -> str:
        return ' class="n"' if i in table.numeric else ""

    head = "".join(f"<th{cls(i)}>{esc_html(h)}</th>" for i, h in enumerate(table.headers))
    body = "".join(
        "<tr>" + "".join(f"<td{cls(i)}>{esc_html(c)}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in table.rows
    )
    narrow = ' class="narrow"' if len(table.headers) <= 2 else ""
    return (
        f"{caption}<table{narrow}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"
    )


def _section(section: Section) -> str:
    parts = [f'<section id="{esc_html(section.id)}"><h2>{esc_html(section.title)}</h2>']
    parts.extend(f"<p>{esc_html(p)}</p>" for p in section.text)
    parts.extend(
        f"<figure>{chart_svg(c)}<figcaption>{esc_html(c.title)}</figcaption></figure>"
        for c in section.charts
    )
    parts.extend(_table(t) for t in section.tables)
    parts.append("</section>")
    return "".join(parts)


def to_html(doc: Document) -> str:
    cards = "".join(
        f'<div class="card"><div class="v">{esc_html(value)}</div>'
        f'<div class="l">{esc_html(label)}</div></div>'
        for label, value in doc.headline
    )
    meta = "".join(f"<li>{esc_html(line)}</li>" for line in doc.subtitle)
    body = "".join(_section(s) for s in doc.sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{esc_html(CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="sipguard">'
        f"<title>{esc_html(doc.title)}</title><style>{_CSS}</style></head>"
        f"<body><main><header><h1>{esc_html(doc.title)}</h1>"
        f'<div class="meta"><ul>{meta}</ul></div></header>'
        f'<section id="summary"><h2>Summary</h2><div class="cards">{cards}</div></section>'
        f"{body}"
        "<footer>Made by sipguard from its own records. Times are UTC.</footer>"
        "</main></body></html>\n"
    )
