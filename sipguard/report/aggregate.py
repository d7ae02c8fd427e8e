"""From records to a `Report`: pure code, no I/O, no clock (the gatherer passes every time in).

Bounds: the time series has at most `MAX_BUCKETS` steps (hours for up to a week, else whole days);
every list is cut to a fixed length and says how long it was; rollups are added a chunk at a time
(`RollupTally`), so a long period never holds all its rows at once; the events are the newest
`EVENT_LIMIT` of the period (the gatherer's read), and the report says when there were more.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sipguard.report.model import (
    BanEntry,
    BanSummary,
    Blocked,
    Bucket,
    Count,
    CountryRow,
    DrillResult,
    DrillRun,
    GeoState,
    Incident,
    Listing,
    Reload,
    Report,
    Source,
    Target,
    Traffic,
)
from sipguard.store import BanRecord, Dimension, DrillRecord, EventRecord, ReloadRecord, RollupRow

__all__ = [
    "BRUTE_FORCE_KINDS",
    "EVENT_LIMIT",
    "MAX_BUCKETS",
    "SYSTEM_KINDS",
    "TOP",
    "Inputs",
    "RollupTally",
    "bucket_seconds",
    "summarise",
]

MINUTE: Final = 60
MINUTELY_UP_TO: Final = 3 * 3600  # a short period (a test, a demo) is shown per minute
HOUR: Final = 3600
DAY: Final = 86400
HOURLY_UP_TO: Final = 7 * DAY  # longer periods are shown per day
MAX_BUCKETS: Final = 400  # steps of the time series, at most
EVENT_LIMIT: Final = 50_000  # events read for one report (the newest of the period)
TOP: Final = 10  # rows of a "top" table
INCIDENTS: Final = 50  # rows of an incident list
BAN_ROWS: Final = 50
RELOAD_ROWS: Final = 200
DRILL_RUNS: Final = 5
DRILL_RESULTS: Final = 50
ACTIVITY: Final = 4  # event kinds named per source or account
TEXT_LIMIT: Final = 200  # characters of a drill result field kept

BRUTE_FORCE_KINDS: Final = frozenset(
    {"brute_force", "distributed_brute_force", "account_blocked", "enumeration"}
)
FRAUD_PREFIX: Final = "fraud_"
UNUSUAL_LOGIN: Final = "unusual_login"
SYSTEM_KINDS: Final = frozenset({"policy_reload", "geo_stale"})  # not about a source


def bucket_seconds(since: float, until: float) -> int:
    """Minutes for up to three hours, hours for up to a week, else days (several when the period
    is long): the series stays within `MAX_BUCKETS` steps."""
    span = max(0.0, until - since)
    if span <= MINUTELY_UP_TO:
        return MINUTE
    if span <= HOURLY_UP_TO:
        return HOUR
    return DAY * max(1, math.ceil(span / DAY / (MAX_BUCKETS - 1)))


def _series_start(since: float, size: int) -> int:
    return int(since // size) * size  # UTC hour or day boundaries


def _buckets(since: float, until: float, size: int) -> int:
    start = _series_start(since, size)
    return max(1, math.ceil((until - start) / size))


class RollupTally:
    """Sums rollup rows as they are read, chunk by chunk, in minute order."""

    def __init__(self, since: float, until: float) -> None:
        self.since = since
        self.until = until
        self.size = bucket_seconds(since, until)
        self.start = _series_start(since, self.size)
        n = _buckets(since, until, self.size)
        self.messages = [0.0] * n
        self.blocked = [0.0] * n
        self.totals: defaultdict[tuple[Dimension, str], float] = defaultdict(float)
        self.minutes = 0
        self._last_minute: int | None = None

    def add(self, rows: Iterable[RollupRow]) -> None:
        last = len(self.messages) - 1
        for row in rows:
            if not self.since <= row.minute < self.until:
                continue
            if row.minute != self._last_minute:
                self.minutes += 1
                self._last_minute = row.minute
            self.totals[(row.dimension, row.key)] += row.value
            index = min(last, max(0, int((row.minute - self.start) // self.size)))
            if row.dimension is Dimension.MESSAGES:
                self.messages[index] += row.value
            elif row.dimension in (Dimension.DROPS, Dimension.REJECTS):
                self.blocked[index] += row.value

    def dimension(self, dimension: Dimension) -> dict[str, float]:
        return {key: v for (d, key), v in self.totals.items() if d is dimension}

    def total(self, dimension: Dimension) -> float:
        return sum(self.dimension(dimension).values())


@dataclass(frozen=True, slots=True)
class Inputs:
    """What the gatherer read for a period."""

    since: float
    until: float
    generated_at: float
    version: str
    policy_path: str
    policy_sha256: str
    store_path: str
    rollups: RollupTally
    events: Sequence[EventRecord]  # of the period, oldest first
    events_cut: bool
    bans: Sequence[BanRecord]  # issued in the period, and earlier ones that may be lifted in it
    reloads: Sequence[ReloadRecord]
    drills: Sequence[DrillRecord]
    geo: GeoState


def summarise(data: Inputs) -> Report:
    since, until = data.since, data.until
    tally = data.rollups
    events = [e for e in data.events if since <= e.at < until]
    issued = [b for b in data.bans if since <= b.issued_at < until]
    lifted = [b for b in data.bans if b.lifted_at is not None and since <= b.lifted_at < until]
    event_counts = [0] * len(tally.messages)
    last = len(event_counts) - 1
    for e in events:
        event_counts[min(last, max(0, int((e.at - tally.start) // tally.size)))] += 1
    series = tuple(
        Bucket(tally.start + i * tally.size, round(m), round(b), n)
        for i, (m, b, n) in enumerate(zip(tally.messages, tally.blocked, event_counts, strict=True))
    )
    recorded = tally.minutes > 0
    return Report(
        generated_at=data.generated_at,
        since=since,
        until=until,
        version=data.version,
        policy_path=data.policy_path,
        policy_sha256=data.policy_sha256,
        store_path=data.store_path,
        bucket_seconds=tally.size,
        traffic=_traffic(tally),
        series=series,
        blocked=_blocked(tally),
        blocked_from="rollups" if recorded else "none",
        events_total=len(events),
        events_cut=data.events_cut,
        events_by_kind=_counts(Counter(e.kind for e in events)),
        by_country=_by_country(events, issued),
        top_sources=_sources(events, issued),
        top_accounts=_accounts(events),
        brute_force=_incidents(events, _is_brute_force),
        toll_fraud=_incidents(events, lambda e: e.kind.startswith(FRAUD_PREFIX)),
        unusual_logins=_incidents(events, lambda e: e.kind == UNUSUAL_LOGIN),
        bans=_bans(issued, lifted),
        reloads=_reloads(data.reloads, since, until),
        geo=data.geo,
        drills=_drills(data.drills, since, until),
    )


# ---- traffic ----------------------------------------------------------------------------------


def _counts(
    counter: Counter[str] | dict[str, float], limit: int | None = None
) -> tuple[Count, ...]:
    ranked = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
    return tuple(Count(k, round(v)) for k, v in ranked[:limit] if round(v))


def _traffic(tally: RollupTally) -> Traffic:
    messages = tally.dimension(Dimension.MESSAGES)
    outside = {k: v for k, v in messages.items() if k.startswith("outside:")}
    requests = {k: v for k, v in outside.items() if k != "outside:response"}
    inside = sum(v for k, v in messages.items() if k.startswith("inside:"))
    return Traffic(
        recorded=tally.minutes > 0,
        minutes=tally.minutes,
        messages=round(sum(messages.values())),
        outside_messages=round(sum(outside.values())),
        inside_messages=round(inside),
        by_method=_counts({k.split(":", 1)[1]: v for k, v in requests.items()}),
        responses=tuple(sorted(_counts(tally.dimension(Dimension.RESPONSES)), key=lambda c: c.key)),
        countries=_counts(tally.dimension(Dimension.COUNTRIES), TOP),
        dropped=round(tally.total(Dimension.DROPS)),
        rejected=round(tally.total(Dimension.REJECTS)),
        registrations=round(tally.total(Dimension.REGISTRATIONS)),
        calls=round(tally.total(Dimension.CALLS)),
        call_minutes=round(tally.total(Dimension.CALL_MINUTES), 1),
        auth_failures=round(tally.total(Dimension.AUTH_FAILURES)),
    )


def _blocked(tally: RollupTally) -> tuple[Blocked, ...]:
    drops = tally.dimension(Dimension.DROPS)
    rejects = tally.dimension(Dimension.REJECTS)
    rows = [
        Blocked(reason, round(drops.get(reason, 0.0)), round(rejects.get(reason, 0.0)))
        for reason in set(drops) | set(rejects)
    ]
    return tuple(sorted((r for r in rows if r.total), key=lambda r: (-r.total, r.reason)))


# ---- sources, countries, accounts -------------------------------------------------------------


def _about_a_source(e: EventRecord) -> bool:
    return bool(e.ip) and e.kind not in SYSTEM_KINDS


def _by_country(
    events: Sequence[EventRecord], issued: Sequence[BanRecord]
) -> tuple[CountryRow, ...]:
    count: Counter[str] = Counter()
    sources: defaultdict[str, set[str]] = defaultdict(set)
    country_of: dict[str, str] = {}
    for e in events:
        if not _about_a_source(e):
            continue
        country = e.country or "??"
        count[country] += 1
        sources[country].add(e.ip)
        if e.country:
            country_of[e.ip] = e.country
    bans: Counter[str] = Counter(country_of.get(b.ip, "??") for b in issued)
    rows = [
        CountryRow(c, count[c], len(sources[c]), bans.get(c, 0)) for c in set(count) | set(bans)
    ]
    rows.sort(key=lambda r: (-r.events, -r.bans, r.country))
    return tuple(rows[:TOP])


def _sources(events: Sequence[EventRecord], issued: Sequence[BanRecord]) -> Listing[Source]:
    kinds: defaultdict[str, Counter[str]] = defaultdict(Counter)
    country: dict[str, str] = {}
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for e in events:
        if not _about_a_source(e):
            continue
        kinds[e.ip][e.kind] += 1
        if e.country:
            country[e.ip] = e.country
        first.setdefault(e.ip, e.at)
        last[e.ip] = e.at
    bans: Counter[str] = Counter()
    for b in issued:
        bans[b.ip] += 1
        first[b.ip] = min(first.get(b.ip, b.issued_at), b.issued_at)
        last[b.ip] = max(last.get(b.ip, b.issued_at), b.issued_at)
    ips = set(kinds) | set(bans)
    ranked = sorted(ips, key=lambda ip: (-kinds[ip].total(), -bans[ip], ip))
    return Listing(
        tuple(
            Source(
                ip,
                country.get(ip),
                kinds[ip].total(),
                bans[ip],
                _counts(kinds[ip], ACTIVITY),
                first[ip],
                last[ip],
            )
            for ip in ranked[:TOP]
        ),
        len(ips),
    )


def _accounts(events: Sequence[EventRecord]) -> Listing[Target]:
    kinds: defaultdict[str, Counter[str]] = defaultdict(Counter)
    sources: defaultdict[str, set[str]] = defaultdict(set)
    for e in events:
        if e.account and e.kind not in SYSTEM_KINDS:
            kinds[e.account][e.kind] += 1
            if e.ip:
                sources[e.account].add(e.ip)
    ranked = sorted(kinds, key=lambda a: (-kinds[a].total(), -len(sources[a]), a))
    return Listing(
        tuple(
            Target(a, kinds[a].total(), len(sources[a]), _counts(kinds[a], ACTIVITY))
            for a in ranked[:TOP]
        ),
        len(kinds),
    )


# ---- incidents ----------------------------------------------------------------------------------


def _is_brute_force(e: EventRecord) -> bool:
    """A detector's finding, or the ban it led to (a ban event's detail starts with its reason)."""
    if e.kind in BRUTE_FORCE_KINDS:
        return True
    return e.kind == "ban" and e.detail.split(":", 1)[0] in BRUTE_FORCE_KINDS


def _incidents(events: Sequence[EventRecord], wanted: Any) -> Listing[Incident]:
    found = [e for e in events if wanted(e)]
    newest = found[::-1][:INCIDENTS]
    return Listing(
        tuple(
            Incident(e.at, e.kind, e.severity.value, e.ip, e.country, e.account, e.rule, e.detail)
            for e in newest
        ),
        len(found),
    )


# ---- bans, reloads, drills ----------------------------------------------------------------------


def _ban(b: BanRecord) -> BanEntry:
    return BanEntry(
        b.ip,
        b.issued_at,
        b.until,
        b.reason,
        b.rule,
        b.actor,
        b.evidence,
        b.offences,
        b.lifted_at,
        b.lifted_by,
        b.lift_reason,
    )


def _bans(issued: Sequence[BanRecord], lifted: Sequence[BanRecord]) -> BanSummary:
    newest = sorted(issued, key=lambda b: (-b.issued_at, -b.id))
    lifts = sorted(lifted, key=lambda b: (-(b.lifted_at or 0.0), -b.id))
    return BanSummary(
        issued=len(issued),
        manual_issued=sum(1 for b in issued if b.actor != "engine"),
        lifted=len(lifted),
        manual_lifted=sum(1 for b in lifted if (b.lifted_by or "engine") != "engine"),
        by_reason=_counts(Counter(b.reason for b in issued)),
        issued_list=Listing(tuple(_ban(b) for b in newest[:BAN_ROWS]), len(issued)),
        lifted_list=Listing(tuple(_ban(b) for b in lifts[:BAN_ROWS]), len(lifted)),
    )


def _reloads(records: Sequence[ReloadRecord], since: float, until: float) -> Listing[Reload]:
    inside = [r for r in records if since <= r.at < until]
    kept = inside[-RELOAD_ROWS:]  # the latest, still oldest first
    return Listing(
        tuple(Reload(r.at, r.actor, r.path, r.sha256, r.outcome, r.summary) for r in kept),
        len(inside),
    )


def _drills(records: Sequence[DrillRecord], since: float, until: float) -> Listing[DrillRun]:
    runs = [d for d in records if since <= d.started_at < until]
    newest = sorted(runs, key=lambda d: (-d.started_at, -d.id))[:DRILL_RUNS]
    return Listing(tuple(_drill(d) for d in newest), len(runs))


def _drill(d: DrillRecord) -> DrillRun:
    results, note = drill_results(d.results)
    return DrillRun(
        d.id,
        d.started_at,
        d.finished_at,
        d.target,
        d.policy_sha256,
        d.passed,
        d.failed,
        Listing(tuple(results[:DRILL_RESULTS]), len(results)),
        note,
    )


def drill_results(text: str) -> tuple[list[DrillResult], str]:
    """The per-attack lines of a drill's JSON report, read defensively: a list of objects with
    `attack`, `expected`, `observed`, `passed` (or an object holding such a list under `results`
    or `attacks`). Anything else gives no lines and a note."""
    try:
        data: object = json.loads(text)
    except (ValueError, RecursionError):
        return [], "the drill's results are not JSON"
    if isinstance(data, dict):
        data = data.get("results", data.get("attacks"))
    if not isinstance(data, list):
        return [], "the drill's results hold no list of attacks"
    out: list[DrillResult] = []
    for item in data:
        if not isinstance(item, dict):
            continue
        passed = item.get("passed")
        status = item.get("status")
        out.append(
            DrillResult(
                attack=_field(item.get("attack", item.get("name"))),
                expected=_field(item.get("expected")),
                observed=_field(item.get("observed")),
                passed=passed if isinstance(passed, bool) else None,
                status=_field(status) if isinstance(status, str) else "",
            )
        )
    return out, "" if out or not data else "the drill's results hold no attack objects"


def _field(value: object) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text[:TEXT_LIMIT]
