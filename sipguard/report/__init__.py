"""sipguard.report: a period of sipguard's records summarised as Markdown, JSON or HTML.

`build_report(policy, since, until)` reads the policy's store (and the age of its GeoIP data) and
returns a `Report`; `render(report, "md" | "json" | "html")` lays it out. The model and its
aggregation are pure (`model.py`, `aggregate.py`); `gather.py` is the only module that reads.
"""

from sipguard.report.gather import build_report
from sipguard.report.model import Report
from sipguard.report.period import PeriodError, parse_period
from sipguard.report.render import FORMATS, ReportFormat, render

__all__ = [
    "FORMATS",
    "PeriodError",
    "Report",
    "ReportFormat",
    "build_report",
    "parse_period",
    "render",
]
