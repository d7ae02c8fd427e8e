"""One entry point for the three formats of a report."""

from __future__ import annotations

from typing import Literal, get_args

from sipguard.report.html import to_html
from sipguard.report.jsonout import to_json
from sipguard.report.layout import layout
from sipguard.report.markdown import to_markdown
from sipguard.report.model import Report

__all__ = ["FORMATS", "ReportFormat", "render"]

ReportFormat = Literal["md", "json", "html"]
FORMATS: tuple[str, ...] = get_args(ReportFormat)


def render(report: Report, fmt: ReportFormat) -> str:
    """`report` as Markdown, JSON or one self-contained HTML file."""
    if fmt == "json":
        return to_json(report)
    if fmt == "md":
        return to_markdown(layout(report))
    if fmt == "html":
        return to_html(layout(report))
    raise ValueError(f"unknown report format {fmt!r} (one of {', '.join(FORMATS)})")
