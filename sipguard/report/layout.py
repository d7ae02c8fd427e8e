"""A report laid out for people: sections of paragraphs, tables and chart data, in reading order.

Markdown and HTML render the same `Document`, so they show the same rows and the same numbers;
JSON is the `Report` itself. Cells are plain strings, not yet escaped: each renderer escapes
every one for its format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

from sipguard.report.model import BanEntry, Count, Incident, Listing, Report
from sipguard.report.text import number, when

__all__ = ["Bar", "Chart", "Document", "Section", "Table", "layout", "period_text"]

SHA_SHOWN: Final = 12  # hex digits of a hash in tables (the JSON has all of them)


@dataclass(frozen=True, slots=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: frozenset[int] = frozenset()  # columns aligned right
    note: str = ""  # e.g. "the 10 largest of 37"
    caption: str = ""


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float
    stack: float = 0.0  # a second, stacked value (series charts: the blocked part)
    tick: str = ""  # a short label for the time axis


@dataclass(frozen=True, slots=True)
class Chart:
    id: str
    title: str
    kind: Literal["series", "bars"]
    bars: tuple[Bar, ...]
    legend: tuple[str, ...] = ()  # series: names of value and stack


@dataclass(frozen=True, slots=True)
class Section:
    id: str
    title: str
    text: tuple[str, ...] = ()
    tables: tuple[Table, ...] = ()
    charts: tuple[Chart, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Document:
    title: str
    subtitle: tuple[str, ...]  # generated, version, policy, store
    headline: tuple[tuple[str, str], ...]  # the summary: (label, value)
    sections: tuple[Section, ...]


def period_text(report: Report) -> str:
    return f"{when(report.since)} to {when(report.until)}"


def _shown(listing: Listing[Any], what: str) -> str:
    if listing.cut:
        return f"The {len(listing.items)} {what} of {number(listing.total)} are shown."
    return ""


def _activity(counts: tuple[Count, ...]) -> str:
    return ", ".join(f"{c.key} {number(c.value)}" for c in counts)


def _sha(sha: str) -> str:
    return sha[:SHA_SHOWN] if sha else "-"


def _tick(epoch: float, seconds: int) -> str:
    """`11-01 08:00` for hours, `2026-11-01` for days."""
    text = when(epoch)
    return text[5:16] if seconds < 86400 else text[:10]


def _step(seconds: int) -> str:
    if seconds == 60:
        return "minute"
    if seconds == 3600:
        return "hour"
    if seconds == 86400:
        return "day"
    return f"{seconds // 86400} days"


def layout(report: Report) -> Document:
    t = report.traffic
    bans = report.bans
    blocked_total = t.dropped + t.rejected
    geo = report.geo
    if geo.error is not None:
        geo_text = f"unreadable: {geo.error}"
    elif geo.age_days is None:
        geo_text = "build date unknown"
    else:
        geo_text = f"{geo.age_days} days old" + (" (STALE)" if geo.stale else "")
    headline = (
        ("Messages", number(t.messages) if t.recorded else "not recorded"),
        ("Blocked messages", number(blocked_total) if t.recorded else "not recorded"),
        ("Security events", number(report.events_total)),
        ("Bans issued", f"{number(bans.issued)} ({number(bans.manual_issued)} by hand)"),
        ("Bans lifted", f"{number(bans.lifted)} ({number(bans.manual_lifted)} by hand)"),
        ("Brute-force and scanning incidents", number(report.brute_force.total)),
        ("Toll-fraud incidents", number(report.toll_fraud.total)),
        ("Unusual logins", number(report.unusual_logins.total)),
        ("Policy reloads", number(report.reloads.total)),
        ("Calls answered", number(t.calls) if t.recorded else "not recorded"),
        ("GeoIP data", geo_text),
        ("Drill runs", number(report.drills.total)),
    )
    subtitle = (
        f"Period: {period_text(report)} (UTC)",
        f"Generated {when(report.generated_at)} by sipguard {report.version}",
        f"Policy {report.policy_path}, SHA-256 {report.policy_sha256 or '-'}",
        f"Store {report.store_path}",
    )
    sections = (
        _traffic(report),
        _blocked(report),
        _events(report),
        _sources(report),
        _accounts(report),
        _incidents(
            "brute-force",
            "Brute force and scanning",
            report.brute_force,
            "Failed-login floods, blocked accounts, extension scans, and the bans they led to.",
        ),
        _incidents(
            "toll-fraud",
            "Toll fraud",
            report.toll_fraud,
            "Calls the fraud checks refused or flagged.",
        ),
        _bans(report),
        _incidents(
            "unusual-logins",
            "Unusual logins",
            report.unusual_logins,
            "Successful logins from a country or at an hour new for the account.",
        ),
        _reloads(report),
        _geo(report),
        _drills(report),
    )
    return Document(
        title=f"sipguard report: {period_text(report)}",
        subtitle=subtitle,
        headline=headline,
        sections=sections,
    )


def _traffic(report: Report) -> Section:
    t = report.traffic
    step = _step(report.bucket_seconds)
    series = report.series
    events_chart = Chart(
        "chart-events",
        f"Security events per {step}",
        "series",
        tuple(
            Bar(when(b.start), b.events, tick=_tick(b.start, report.bucket_seconds)) for b in series
        ),
        ("events",),
    )
    if not t.recorded:
        return Section(
            "traffic",
            "Traffic",
            (
                "No traffic rollups were recorded for this period (sipguard was not running, or "
                "its records were pruned): the counts below come from the security events.",
            ),
            (),
            (events_chart,),
        )
    totals = Table(
        ("Measure", "Count"),
        (
            ("Messages in (both sides)", number(t.messages)),
            ("Messages from outside", number(t.outside_messages)),
            ("Messages from the PBX", number(t.inside_messages)),
            ("Dropped", number(t.dropped)),
            ("Rejected with an error", number(t.rejected)),
            ("Registrations", number(t.registrations)),
            ("Calls answered", number(t.calls)),
            ("Call minutes", number(t.call_minutes)),
            ("Failed logins", number(t.auth_failures)),
            ("Minutes recorded", number(t.minutes)),
        ),
        frozenset({1}),
    )
    methods = Table(
        ("Method", "Requests from outside"),
        tuple((c.key, number(c.value)) for c in t.by_method),
        frozenset({1}),
        "unparsed: messages of banned sources (dropped before parsing) and malformed ones."
        if any(c.key == "unparsed" for c in t.by_method)
        else "",
    )
    responses = Table(
        ("Answer class", "Answers forwarded"),
        tuple((c.key, number(c.value)) for c in t.responses),
        frozenset({1}),
    )
    countries = Table(
        ("Country", "Requests from outside"),
        tuple((c.key, number(c.value)) for c in t.countries),
        frozenset({1}),
        "The largest sources by country; ?? is unknown.",
    )
    rows = tuple(
        (when(b.start), number(b.messages), number(b.blocked), number(b.events))
        for b in series
        if b.messages or b.blocked or b.events
    )
    timeline = Table(
        (f"{step.capitalize()} from", "Messages", "Blocked", "Security events"),
        rows,
        frozenset({1, 2, 3}),
        f"{step.capitalize()}s with no traffic and no events are left out.",
    )
    traffic_chart = Chart(
        "chart-traffic",
        f"Messages per {step}",
        "series",
        tuple(
            Bar(
                when(b.start),
                max(0, b.messages - b.blocked),
                b.blocked,
                _tick(b.start, report.bucket_seconds),
            )
            for b in series
        ),
        ("passed", "blocked"),
    )
    return Section(
        "traffic",
        "Traffic",
        (),
        (totals, methods, responses, countries, timeline),
        (traffic_chart, events_chart),
    )


def _blocked(report: Report) -> Section:
    if report.blocked_from == "none":
        return Section(
            "blocked",
            "Blocked by reason",
            (
                "No traffic rollups were recorded for this period: see the security events by "
                "kind and the bans by reason.",
            ),
        )
    rows = tuple(
        (b.reason, number(b.dropped), number(b.rejected), number(b.total)) for b in report.blocked
    )
    chart = Chart(
        "chart-blocked",
        "Blocked messages by reason",
        "bars",
        tuple(Bar(b.reason, b.total) for b in report.blocked),
    )
    return Section(
        "blocked",
        "Blocked by reason",
        ("Messages sipguard dropped silently or answered with an error itself.",),
        (Table(("Reason", "Dropped", "Rejected", "Total"), rows, frozenset({1, 2, 3})),),
        (chart,),
    )


def _events(report: Report) -> Section:
    kinds = Table(
        ("Kind", "Events"),
        tuple((c.key, number(c.value)) for c in report.events_by_kind),
        frozenset({1}),
    )
    countries = Table(
        ("Country", "Events", "Sources", "Bans"),
        tuple(
            (r.country, number(r.events), number(r.sources), number(r.bans))
            for r in report.by_country
        ),
        frozenset({1, 2, 3}),
        "By source country (?? is unknown); the 10 largest.",
    )
    text = [
        "Decisions recorded as events: blocks, bans and alerts (one per source and rule per "
        "minute, so a flood is one event, not one per message)."
    ]
    if report.events_cut:
        text.append(
            f"The period holds more events than a report reads: the newest "
            f"{number(report.events_total)} are counted."
        )
    charts = (
        Chart(
            "chart-countries",
            "Security events by source country",
            "bars",
            tuple(Bar(r.country, r.events) for r in report.by_country if r.events),
        ),
        Chart(
            "chart-kinds",
            "Security events by kind",
            "bars",
            tuple(Bar(c.key, c.value) for c in report.events_by_kind),
        ),
    )
    return Section("events", "Security events", tuple(text), (kinds, countries), charts)


def _sources(report: Report) -> Section:
    listing = report.top_sources
    rows = tuple(
        (
            s.ip,
            s.country or "??",
            number(s.events),
            number(s.bans),
            _activity(s.activity),
            when(s.first_seen),
            when(s.last_seen),
        )
        for s in listing.items
    )
    table = Table(
        ("Source", "Country", "Events", "Bans", "What it did", "First seen", "Last seen"),
        rows,
        frozenset({2, 3}),
        _shown(listing, "most active sources"),
    )
    return Section("sources", "Top sources", (), (table,))


def _accounts(report: Report) -> Section:
    listing = report.top_accounts
    rows = tuple(
        (a.account, number(a.events), number(a.sources), _activity(a.activity))
        for a in listing.items
    )
    table = Table(
        ("Account", "Events", "Sources", "What happened"),
        rows,
        frozenset({1, 2}),
        _shown(listing, "most targeted accounts"),
    )
    return Section("accounts", "Most targeted accounts", (), (table,))


def _incident_rows(items: tuple[Incident, ...]) -> tuple[tuple[str, ...], ...]:
    return tuple(
        (
            when(i.at),
            i.kind,
            i.ip or "-",
            i.country or "??",
            i.account or "-",
            i.rule or "-",
            i.detail,
        )
        for i in items
    )


def _incidents(sid: str, title: str, listing: Listing[Incident], intro: str) -> Section:
    table = Table(
        ("Time", "Kind", "Source", "Country", "Account", "Rule", "Detail"),
        _incident_rows(listing.items),
        frozenset(),
        _shown(listing, "latest"),
    )
    return Section(sid, title, (intro, f"{number(listing.total)} in the period."), (table,))


def _ban_rows(items: tuple[BanEntry, ...]) -> tuple[tuple[str, ...], ...]:
    return tuple(
        (
            when(b.issued_at),
            b.ip,
            b.reason,
            b.rule or "-",
            b.actor,
            when(b.until),
            f"{when(b.lifted_at)} by {b.lifted_by or '?'} ({b.lift_reason or '?'})"
            if b.lifted_at is not None
            else "-",
            b.evidence or "-",
        )
        for b in items
    )


def _bans(report: Report) -> Section:
    bans = report.bans
    headers = ("Issued", "Source", "Reason", "Rule", "By", "Until", "Lifted", "Evidence")
    reasons = Table(
        ("Reason", "Bans issued"),
        tuple((c.key, number(c.value)) for c in bans.by_reason),
        frozenset({1}),
        caption="Bans issued by reason",
    )
    issued = Table(
        headers,
        _ban_rows(bans.issued_list.items),
        frozenset(),
        _shown(bans.issued_list, "latest bans issued"),
        "Bans issued in the period, latest first",
    )
    lifted = Table(
        headers,
        _ban_rows(bans.lifted_list.items),
        frozenset(),
        _shown(bans.lifted_list, "latest lifts"),
        "Bans lifted in the period (expired or by hand), latest first",
    )
    text = (
        f"{number(bans.issued)} issued ({number(bans.manual_issued)} by hand), "
        f"{number(bans.lifted)} lifted ({number(bans.manual_lifted)} by hand). "
        "Bans by hand name who set them.",
    )
    return Section("bans", "Bans issued and lifted", text, (reasons, issued, lifted))


def _reloads(report: Report) -> Section:
    listing = report.reloads
    rows = tuple(
        (when(r.at), r.actor, r.outcome, _sha(r.sha256), r.path, r.summary) for r in listing.items
    )
    table = Table(
        ("Time", "By", "Outcome", "SHA-256", "File", "What changed"),
        rows,
        frozenset(),
        _shown(listing, "latest reloads"),
    )
    return Section(
        "reloads",
        "Policy reloads (audit trail)",
        ("Every reload of the policy, applied or refused, oldest first.",),
        (table,),
    )


def _geo(report: Report) -> Section:
    g = report.geo
    rows: tuple[tuple[str, str], ...] = (
        ("Database", g.database),
        ("Built", g.built or "unknown"),
        ("Age", f"{g.age_days} days" if g.age_days is not None else "unknown"),
        ("Maximum age (geo.max_age_days)", f"{g.max_age_days} days"),
        ("Stale", "yes: update it" if g.stale else "no"),
    )
    if g.error is not None:
        rows = (("Database", g.database), ("Error", g.error))
    return Section(
        "geo",
        "GeoIP data",
        ("Country blocking is only as good as this data: allocations change every week.",),
        (Table(("", ""), rows),),
    )


def _result(status: str, passed: bool | None) -> str:
    if status == "skipped":
        return "skipped"
    if passed is None:
        return status or "?"
    return "pass" if passed else "FAIL"


def _drills(report: Report) -> Section:
    listing = report.drills
    if not listing.items:
        return Section("drills", "Drills", ("No drill ran in this period.",))
    runs = Table(
        ("Started", "Target", "Policy SHA-256", "Passed", "Failed"),
        tuple(
            (
                when(d.started_at),
                d.target,
                _sha(d.policy_sha256),
                number(d.passed),
                number(d.failed),
            )
            for d in listing.items
        ),
        frozenset({3, 4}),
        _shown(listing, "latest runs"),
    )
    tables = [runs]
    for d in listing.items:
        rows = tuple(
            (
                r.attack or "?",
                r.expected,
                r.observed,
                _result(r.status, r.passed),
            )
            for r in d.results.items
        )
        note = d.note or _shown(d.results, "first results")
        tables.append(
            Table(
                ("Attack", "Expected", "Observed", "Result"),
                rows,
                frozenset(),
                note,
                f"Run {d.id}, {when(d.started_at)}: {d.passed} passed, {d.failed} failed",
            )
        )
    return Section(
        "drills",
        "Drills",
        ("Attacks replayed against sipguard, latest runs first.",),
        tuple(tables),
    )
