"""The report as JSON: the `Report` itself, every field, for scripts and dashboards.

The same numbers as the Markdown and HTML (they render a layout of this same value). Text is
kept as stored; `ensure_ascii` escapes every non-ASCII and control character, so the file is
plain ASCII whatever an attacker sent.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, Final

from sipguard.report.model import Report

__all__ = ["FORMAT", "FORMAT_VERSION", "to_json"]

FORMAT: Final = "sipguard-report"
FORMAT_VERSION: Final = 1


def to_json(report: Report) -> str:
    data: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION, **asdict(report)}
    return json.dumps(data, indent=2, sort_keys=False, ensure_ascii=True) + "\n"
