"""The period of a report from the command line: `--since 7d`, or `--from DATE [--to DATE]`.

Pure: the caller passes `now`. Dates are ISO 8601 (`2026-11-01`, `2026-11-01T08:00`, with
seconds or a UTC offset if wanted); a date or time without an offset is UTC. A `--to` that is a
date alone means the end of that day, so `--from 2026-11-01 --to 2026-11-30` is all of November.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final

from sipguard.policy import parse_duration

__all__ = ["DEFAULT_SINCE", "PeriodError", "parse_date", "parse_period"]

DEFAULT_SINCE: Final = "7d"
_DATE_ONLY: Final = re.compile(r"\d{4}-\d{2}-\d{2}")


class PeriodError(ValueError):
    """A period that cannot be read; the message is one line for the user."""


def parse_date(text: str, *, end_of_day: bool = False) -> float:
    """ISO 8601 date or date and time -> epoch seconds (UTC unless an offset is given)."""
    value = text.strip()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PeriodError(
            f"not a date: {text!r} (use ISO 8601: 2026-11-01 or 2026-11-01T08:00)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if end_of_day and _DATE_ONLY.fullmatch(value):
        parsed += timedelta(days=1)
    return parsed.timestamp()


def parse_period(
    since: str | None, start: str | None, end: str | None, now: float
) -> tuple[float, float]:
    """(from, to) in epoch seconds, from `--since`, `--from` and `--to` (each None when absent)."""
    if since is not None and (start is not None or end is not None):
        raise PeriodError("--since and --from/--to do not mix: give one or the other")
    if end is not None and start is None:
        raise PeriodError("--to needs --from")
    if start is None:
        try:
            seconds = parse_duration((since or DEFAULT_SINCE).strip())
        except ValueError as exc:
            raise PeriodError(f"--since: {exc}") from None
        if seconds <= 0:
            raise PeriodError("--since must be longer than 0s")
        return now - seconds, now
    begin = parse_date(start)
    finish = parse_date(end, end_of_day=True) if end is not None else now
    if finish <= begin:
        raise PeriodError("the period is empty: --to must come after --from")
    return begin, finish
