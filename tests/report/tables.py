"""Read the tables of a Markdown report back, so a test can compare them with the JSON."""

from __future__ import annotations

import html
import re

_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_ESCAPE = re.compile(r"\\(.)")


def _cell(text: str) -> str:
    return html.unescape(_ESCAPE.sub(r"\1", text.strip()))


def md_tables(text: str) -> list[list[list[str]]]:
    """Every table of `text`: rows (the header first, the rule line left out) of unescaped cells."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] | None = None
    for line in text.splitlines():
        if line.startswith("|") and line.endswith("|"):
            cells = [_cell(c) for c in _CELL_SPLIT.split(line[1:-1])]
            if all(set(c) <= set("-:") and c for c in cells):
                continue  # |---|---:|
            if current is None:
                current = []
                tables.append(current)
            current.append(cells)
        else:
            current = None
    return tables


def table_with(text: str, *headers: str) -> list[list[str]]:
    """The body of the first table whose header is `headers`."""
    for table in md_tables(text):
        if tuple(table[0]) == headers:
            return table[1:]
    raise LookupError(f"no table with headers {headers}")


def num(cell: str) -> float:
    return float(cell.replace(",", ""))
