"""The report as Markdown (GitHub-flavoured tables): what `sipguard report` prints by default."""

from __future__ import annotations

from sipguard.report.layout import Document, Table
from sipguard.report.text import esc_md

__all__ = ["to_markdown"]


def _table(table: Table) -> list[str]:
    lines = [f"**{esc_md(table.caption)}**", ""] if table.caption else []
    note = [f"*{esc_md(table.note)}*", ""] if table.note else []
    if not table.rows:
        return [*lines, "None.", "", *note]
    cols = len(table.headers)
    lines += [
        "| " + " | ".join(esc_md(h) for h in table.headers) + " |",
        "|" + "|".join("---:" if i in table.numeric else "---" for i in range(cols)) + "|",
    ]
    lines.extend("| " + " | ".join(esc_md(cell) for cell in row) + " |" for row in table.rows)
    lines.append("")
    return lines + note


def to_markdown(doc: Document) -> str:
    lines = [f"# {esc_md(doc.title)}", ""]
    lines.extend(f"- {esc_md(line)}" for line in doc.subtitle)
    lines.extend(["", "## Summary", ""])
    lines.extend(_table(Table(("Measure", "Value"), doc.headline, frozenset({1}))))
    for section in doc.sections:
        lines.extend([f"## {esc_md(section.title)}", ""])
        for paragraph in section.text:
            lines.extend([esc_md(paragraph), ""])
        for table in section.tables:
            lines.extend(_table(table))
    return "\n".join(lines).rstrip("\n") + "\n"
