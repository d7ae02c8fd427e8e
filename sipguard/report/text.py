"""Making stored text safe for a report: visible, bounded, and escaped for Markdown or HTML.

Accounts, details, rule names and reload summaries can hold attacker bytes. Each renderer passes
every string through one of these, its own words included, so nothing is shown raw.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from typing import Final

from sipguard.core.text import clean

__all__ = ["CELL_LIMIT", "esc_html", "esc_md", "number", "visible", "when"]

CELL_LIMIT: Final = 300  # characters of one shown field
# Markdown that could turn text inside a line into markup: emphasis, code, links and images,
# table cells, strikethrough. A backslash in front makes each one literal (CommonMark 2.4); raw
# HTML and entities are written as entities. Line-start markup (headings, lists) cannot occur:
# stored text never starts a line of a report.
_MD_SPECIAL: Final = re.compile(r"([\\`*_\[\]|~])")


def visible(text: str | None, limit: int = CELL_LIMIT) -> str:
    """`text` with every non-printable character written as an escape (`\\n`, `\\x1b`,
    `\\u202e`) and cut to `limit` characters (ending in `...`): the same rule as logs and
    alerts."""
    return clean(text, limit)


def esc_html(text: str | None, limit: int = CELL_LIMIT) -> str:
    """Visible, then HTML-escaped (quotes included: safe in text and in attribute values)."""
    return html.escape(visible(text, limit), quote=True)


def esc_md(text: str | None, limit: int = CELL_LIMIT) -> str:
    """Visible, then inert in Markdown (a table cell, a paragraph): no markup, no raw HTML."""
    shown = visible(text, limit)
    shown = shown.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", shown)


def when(epoch: float | None) -> str:
    """`2026-11-01 08:00:00Z`, or "-"."""
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def number(value: float) -> str:
    """`12,345`, `7.5`: thousands separated, a fraction only when there is one."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"
