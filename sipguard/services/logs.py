"""Log lines a NOC can read and a log shipper can parse, that a flood cannot drown.

Three parts:
- formats: readable lines by default, JSON lines on request (`sipguard run --log-format json`);
  every message and field passes through `clean`, so attacker bytes arrive escaped and cut;
- `LineGate`: a logging filter that lets each kind of line (logger + message template) through at
  most `burst` times per interval and then counts, so a per-connection or per-packet line under a
  flood becomes one "N more like this" line per interval;
- `EventLog` and `ActivityLog`: a line per ban and per security event (with the same budget and an
  aggregated remainder), and one traffic summary per minute from the counters the proxy keeps
  anyway, instead of a line per packet.

The store is the record; logs are what an engineer tails. Nothing here runs per packet.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import enum
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from sipguard.core.text import clean
from sipguard.engine.effects import BanIssued, BanLifted, Effect, SecurityEvent
from sipguard.io.counters import Counters
from sipguard.policy.model import Severity

__all__ = [
    "ACTIVITY_INTERVAL",
    "ActivityLog",
    "EventLog",
    "JsonFormatter",
    "LineGate",
    "LogFormat",
    "TextFormatter",
    "configure",
    "run_log_tasks",
]

MESSAGE_LIMIT = 1_000  # characters of one log message
FIELD_LIMIT = 200  # characters of one structured field
GATE_INTERVAL = 10.0  # seconds: the window of `LineGate` and `EventLog`
GATE_BURST = 10  # lines of one kind per window before they are only counted
EVENT_BURST = 20  # security-event lines per window (bans have their own budget)
BAN_BURST = 50  # ban lines per window
ACTIVITY_INTERVAL = 60.0  # seconds between traffic summaries
BAN_EVENT = "ban"  # SecurityEvent.kind the engine adds to each ban it issues
RELOAD_EVENT = "policy_reload"  # app.py records each policy load and reload as this kind

log = logging.getLogger("sipguard.logs")
event_log = logging.getLogger("sipguard.events")
activity_log = logging.getLogger("sipguard.activity")

_LEVEL_OF: Mapping[Severity, int] = {
    Severity.INFO: logging.INFO,
    Severity.NOTICE: logging.INFO,
    Severity.WARNING: logging.WARNING,
    Severity.ERROR: logging.ERROR,
    Severity.CRITICAL: logging.CRITICAL,
}


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


# ------------------------------------------------------------------------------------ formats


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields of a record (`extra={"fields": {...}}`), text cleaned."""
    raw = getattr(record, "fields", None)
    if not isinstance(raw, Mapping):
        return {}
    return {str(k): _clean_value(v) for k, v in raw.items()}


def _clean_value(value: object) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {str(k): _clean_value(v) for k, v in value.items()}
    return clean(str(value), FIELD_LIMIT)


def _utc(created: float) -> str:
    moment = datetime.datetime.fromtimestamp(created, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class TextFormatter(logging.Formatter):
    """`2026-11-29T16:33:27.123Z WARNING sipguard.events: ban 203.0.113.7 ... key=value`."""

    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"{_utc(record.created)} {record.levelname} {record.name}: "
            f"{clean(record.getMessage(), MESSAGE_LIMIT)}"
        )
        pairs = [f"{k}={_text(v)}" for k, v in _fields(record).items() if v not in (None, "")]
        if pairs:
            line += " [" + " ".join(pairs) + "]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)  # our own traceback, not input
        return line


def _text(value: object) -> str:
    if isinstance(value, Mapping):
        return ",".join(f"{k}:{v}" for k, v in value.items())
    text = str(value)
    return json.dumps(text) if (" " in text or not text) else text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": clean(record.getMessage(), MESSAGE_LIMIT),
        }
        for key, value in _fields(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, separators=(",", ":"))


# ------------------------------------------------------------------------------- line gate


class LineGate(logging.Filter):
    """At most `burst` records per (logger, message template) per `interval`; the rest counted.

    A record is one `log.x("template %s", args)` call: the template, not the rendered text, is the
    key, so a line carrying a different attacker address each time still shares one budget. The
    count of what was held back is logged by `flush` (called each interval and at shutdown) as
    one line per template. Records logged with `extra={"ungated": True}` always pass.
    """

    def __init__(
        self,
        *,
        interval: float = GATE_INTERVAL,
        burst: int = GATE_BURST,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 1_000,
    ) -> None:
        super().__init__()
        self._interval = interval
        self._burst = burst
        self._clock = clock
        self._max_keys = max_keys
        self._window_start = clock()
        self._passed: Counter[tuple[str, str]] = Counter()
        self._held: Counter[tuple[str, str]] = Counter()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "ungated", False):
            return True
        now = self._clock()
        if now - self._window_start >= self._interval:
            self.flush(now)
        key = (record.name, str(record.msg))
        if self._passed[key] < self._burst and len(self._passed) < self._max_keys:
            self._passed[key] += 1
            return True
        self._held[key] += 1
        return False

    def flush(self, now: float | None = None) -> None:
        """Log what was held back in the window that ends now, and start a new window."""
        now = self._clock() if now is None else now
        held, self._held = self._held, Counter()
        self._passed = Counter()
        span = max(1, round(now - self._window_start))
        self._window_start = now
        for (name, template), count in held.most_common():
            log.warning(
                "%d more lines like this in the last %d s were not logged: %s: %s",
                count,
                span,
                name,
                template,
                extra={"ungated": True, "fields": {"suppressed": count, "logger": name}},
            )


_installed_gate: list[LineGate] = []


def configure(
    level: str = "info",
    fmt: LogFormat = LogFormat.TEXT,
    *,
    stream: TextIO | None = None,
    gate: LineGate | None = None,
) -> LineGate:
    """Send every log record to `stream` (stderr: journald and containers collect it) in `fmt`,
    through a `LineGate`; replaces handlers from an earlier call. Returns the gate."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt is LogFormat.JSON else TextFormatter())
    gate = gate or LineGate()
    handler.addFilter(gate)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "sipguard", False):
            root.removeHandler(old)
    handler.sipguard = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    _installed_gate[:] = [gate]
    return gate


# ------------------------------------------------------------------------------- event lines


def _event_line(
    effect: BanIssued | BanLifted | SecurityEvent, ban_event: SecurityEvent | None = None
) -> tuple[int, str, dict[str, Any]]:
    """(level, message, fields) of one effect; `ban_event` is the engine's event of a ban."""
    if isinstance(effect, BanIssued):
        seconds = max(0, round(effect.until - effect.issued_at))
        country = ban_event.country if ban_event is not None else None
        return (
            logging.WARNING,
            f"ban {effect.ip}"
            + (f" ({country})" if country else "")
            + f" for {_duration(seconds)}: {effect.reason}"
            + (f" ({effect.rule})" if effect.rule else "")
            + (f": {effect.evidence}" if effect.evidence else ""),
            {
                "event": "ban",
                "ip": effect.ip,
                "country": country,
                "reason": effect.reason,
                "rule": effect.rule,
                "seconds": seconds,
                "offences": effect.offences,
                "actor": effect.actor,
            },
        )
    if isinstance(effect, BanLifted):
        return (
            logging.INFO,
            f"ban of {effect.ip} lifted: {effect.why}",
            {"event": "unban", "ip": effect.ip, "why": effect.why, "actor": effect.actor},
        )
    if effect.kind == RELOAD_EVENT:  # sipguard's own audit event: the rule names the actor
        return (
            _LEVEL_OF[effect.severity],
            f"policy ({effect.rule}): {effect.detail}",
            {"event": effect.kind, "severity": effect.severity.value, "actor": effect.rule},
        )
    where = f" from {effect.ip}" + (f":{effect.port}" if effect.port else "") if effect.ip else ""
    return (
        _LEVEL_OF[effect.severity],
        f"{effect.kind}{where}"
        + (f" ({effect.country})" if effect.country else "")
        + (f" account {effect.account}" if effect.account else "")
        + (f" rule {effect.rule}" if effect.rule else "")
        + (f": {effect.detail}" if effect.detail else ""),
        {
            "event": effect.kind,
            "severity": effect.severity.value,
            "ip": effect.ip,
            "country": effect.country,
            "account": effect.account,
            "method": effect.method,
            "rule": effect.rule,
        },
    )


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass
class _Budget:
    burst: int
    used: int = 0
    held: Counter[str] = field(default_factory=Counter)  # by kind
    sources: set[str] = field(default_factory=set)  # bounded: see EventLog.MAX_SOURCES


class EventLog:
    """One line per ban and per security event, up to a budget per window; the rest summed up.

    The engine already records an event once per (kind, source, rule) per minute, so this budget
    only bites when many sources act at once (a distributed flood): then the NOC reads "and 9,950
    more: rate_limited 9,950 from 9,950 sources", once per window.
    """

    MAX_SOURCES = 100_000

    def __init__(
        self,
        *,
        interval: float = GATE_INTERVAL,
        event_burst: int = EVENT_BURST,
        ban_burst: int = BAN_BURST,
    ) -> None:
        self._interval = interval
        self._events = _Budget(event_burst)
        self._bans = _Budget(ban_burst)
        self._window_start: float | None = None

    def submit(self, effects: Iterable[Effect], now: float) -> None:
        if self._window_start is None:
            self._window_start = now
        elif now - self._window_start >= self._interval:
            self.flush(now)
        batch = list(effects)
        # The engine follows each BanIssued with a "ban" SecurityEvent (for alerts): one line
        # per ban, the BanIssued's, with the event's country and port.
        ban_events = {
            e.ip: e for e in batch if isinstance(e, SecurityEvent) and e.kind == BAN_EVENT
        }
        for effect in batch:
            if not isinstance(effect, BanIssued | BanLifted | SecurityEvent):
                continue
            if isinstance(effect, SecurityEvent) and effect.kind == BAN_EVENT:
                continue
            budget = self._events if isinstance(effect, SecurityEvent) else self._bans
            if budget.used < budget.burst:
                budget.used += 1
                level, message, fields = _event_line(effect, ban_events.get(effect.ip))
                event_log.log(level, "%s", message, extra={"fields": fields, "ungated": True})
                continue
            kind = effect.kind if isinstance(effect, SecurityEvent) else _ban_kind(effect)
            budget.held[kind] += 1
            if len(budget.sources) < self.MAX_SOURCES:
                budget.sources.add(effect.ip)

    def flush(self, now: float) -> None:
        """Log the remainder of the window that ends now; start a new window."""
        span = max(1, round(now - (self._window_start or now)))
        self._window_start = now
        for budget in (self._bans, self._events):
            held, sources = budget.held, budget.sources
            budget.used, budget.held, budget.sources = 0, Counter(), set()
            if not held:
                continue
            total = sum(held.values())
            parts = ", ".join(f"{kind} {count:,}" for kind, count in held.most_common())
            event_log.warning(
                "%s more in the last %d s, not logged one by one: %s, from %s sources",
                f"{total:,}",
                span,
                parts,
                f"{len(sources):,}",
                extra={
                    "ungated": True,
                    "fields": {
                        "event": "summary",
                        "suppressed": total,
                        "by_kind": dict(held),
                        "sources": len(sources),
                    },
                },
            )


def _ban_kind(effect: BanIssued | BanLifted) -> str:
    return "ban" if isinstance(effect, BanIssued) else "unban"


# ---------------------------------------------------------------------------- traffic summary


class ActivityLog:
    """One line per interval on what the proxy did, from the dispatcher's counters (no per-packet
    work): messages in by side, forwarded, dropped and rejected by reason. Quiet minutes are not
    logged; a minute where drops outnumber forwards is a warning (under attack, or a bad policy).
    """

    def __init__(self, counters: Counters) -> None:
        self._counters = counters
        self._last: Counter[tuple[str, str, str, str]] = Counter(counters.messages)

    def summary(self, span: float) -> None:
        now = Counter(self._counters.messages)
        delta = now - self._last  # counters only grow; `-` keeps the positive differences
        self._last = now
        if not delta:
            return
        sides: Counter[str] = Counter()
        by_action: dict[str, Counter[str]] = {
            "forward": Counter(),
            "drop": Counter(),
            "reject": Counter(),
        }
        for (side, _kind, action, reason), count in delta.items():
            sides[side] += count
            by_action.setdefault(action, Counter())[reason] += count
        forwarded = sum(by_action["forward"].values())
        dropped = sum(by_action["drop"].values())
        rejected = sum(by_action["reject"].values())
        message = (
            f"last {round(span)} s: {sum(sides.values()):,} messages in "
            f"({', '.join(f'{side} {n:,}' for side, n in sorted(sides.items()))}); "
            f"forwarded {forwarded:,}; dropped {dropped:,}{_reasons(by_action['drop'])}; "
            f"rejected {rejected:,}{_reasons(by_action['reject'])}"
        )
        activity_log.log(
            logging.WARNING if dropped > forwarded else logging.INFO,
            "%s",
            message,
            extra={
                "ungated": True,
                "fields": {
                    "event": "activity",
                    "seconds": round(span),
                    "received": dict(sides),
                    "forwarded": forwarded,
                    "dropped": dict(by_action["drop"]),
                    "rejected": dict(by_action["reject"]),
                },
            },
        )


def _reasons(reasons: Counter[str]) -> str:
    if not reasons:
        return ""
    return " (" + ", ".join(f"{r} {n:,}" for r, n in reasons.most_common()) + ")"


# ----------------------------------------------------------------------------------- the task


async def run_log_tasks(
    events: EventLog,
    activity: ActivityLog,
    clock: Callable[[], float],
    stop: asyncio.Event,
    *,
    tick: float = GATE_INTERVAL,
    activity_every: float = ACTIVITY_INTERVAL,
) -> None:
    """Each `tick`: close the windows of the event log and the line gate; each `activity_every`:
    the traffic summary. A last round at stop, so nothing held back is lost."""
    last_activity = clock()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), tick)
        now = clock()
        events.flush(now)
        for gate in _installed_gate:
            gate.flush()
        if now - last_activity >= activity_every or stop.is_set():
            activity.summary(now - last_activity)
            last_activity = now
