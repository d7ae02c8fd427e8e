"""The report's numbers from synthetic records: pure aggregation, bounds, drill results, period."""

from __future__ import annotations

import json
from itertools import count

import pytest

from sipguard.engine.effects import BanIssued, BanLifted, SecurityEvent
from sipguard.policy.model import Severity
from sipguard.report.aggregate import (
    MAX_BUCKETS,
    TOP,
    Inputs,
    RollupTally,
    bucket_seconds,
    drill_results,
    summarise,
)
from sipguard.report.model import GeoState, Report
from sipguard.report.period import PeriodError, parse_period
from sipguard.store import BanRecord, EventRecord
from tests.report import samples
from tests.report.samples import ATTACKER, BASE, FRAUDSTER, HOUR, SCANNER, SINCE, UNTIL

GEO = GeoState("test data", "2026-10-01", 31, 45, False)


def as_events(effects: list[SecurityEvent]) -> list[EventRecord]:
    ids = count(1)
    return [
        EventRecord(
            next(ids),
            e.at,
            e.kind,
            e.severity,
            e.ip,
            e.port,
            e.country,
            e.account,
            e.method,
            e.rule,
            e.detail,
        )
        for e in sorted(effects, key=lambda e: e.at)
    ]


def as_bans(effects: list[BanIssued | BanLifted]) -> list[BanRecord]:
    """What the store makes of issues and lifts (a lift closes the latest open ban of its ip)."""
    rows: list[BanRecord] = []
    for e in effects:
        if isinstance(e, BanIssued):
            rows.append(
                BanRecord(
                    len(rows) + 1,
                    e.ip,
                    e.issued_at,
                    e.until,
                    e.reason,
                    e.rule,
                    e.evidence,
                    e.offences,
                    e.actor,
                    None,
                    None,
                    None,
                )
            )
            continue
        open_ = [i for i, r in enumerate(rows) if r.ip == e.ip and r.lifted_at is None]
        if open_:
            r = rows[open_[-1]]
            rows[open_[-1]] = BanRecord(
                r.id,
                r.ip,
                r.issued_at,
                r.until,
                r.reason,
                r.rule,
                r.evidence,
                r.offences,
                r.actor,
                e.at,
                e.actor,
                e.why,
            )
    return rows


def report(**changes: object) -> Report:
    tally = RollupTally(SINCE, UNTIL)
    tally.add(samples.rollups())
    data = Inputs(
        since=SINCE,
        until=UNTIL,
        generated_at=UNTIL + 60,
        version="9.9",
        policy_path="policy.yaml",
        policy_sha256="ab" * 32,
        store_path="sipguard.db",
        rollups=tally,
        events=as_events(samples.events()),
        events_cut=False,
        bans=as_bans(samples.bans()),
        reloads=[],
        drills=[],
        geo=GEO,
    )
    fields = {name: getattr(data, name) for name in Inputs.__dataclass_fields__}
    return summarise(Inputs(**(fields | changes)))


def test_traffic_totals_come_from_the_rollups_of_the_period_only() -> None:
    t = report().traffic
    assert t.recorded and t.minutes == 2
    assert t.messages == 1200  # the row at `until` belongs to the next period
    assert (t.outside_messages, t.inside_messages) == (1100, 100)
    assert [(c.key, c.value) for c in t.by_method] == [
        ("REGISTER", 800),
        ("OPTIONS", 200),
        ("INVITE", 100),
    ]
    assert [(c.key, c.value) for c in t.responses] == [("2xx", 60), ("4xx", 40)]
    assert (t.dropped, t.rejected, t.calls, t.call_minutes) == (750, 3, 20, 12.5)
    assert (t.registrations, t.auth_failures) == (30, 5)


def test_blocked_by_reason_sums_drops_and_rejects_largest_first() -> None:
    r = report()
    assert r.blocked_from == "rollups"
    assert [(b.reason, b.dropped, b.rejected, b.total) for b in r.blocked] == [
        ("banned", 600, 0, 600),
        ("rate_limited", 100, 0, 100),
        ("rule", 50, 0, 50),
        ("toll_fraud", 0, 3, 3),
    ]


def test_the_time_series_has_one_step_per_hour_of_the_day() -> None:
    r = report()
    assert r.bucket_seconds == 3600 and len(r.series) == 24
    assert r.series[0].start == BASE
    one, five = r.series[1], r.series[5]
    assert (one.messages, one.blocked, one.events) == (1000, 703, 7)
    assert (five.messages, five.blocked, five.events) == (200, 50, 3)
    assert sum(b.events for b in r.series) == r.events_total == 12


def test_without_rollups_the_report_says_so_and_still_counts_events() -> None:
    r = report(rollups=RollupTally(SINCE, UNTIL))
    assert not r.traffic.recorded and r.traffic.messages == 0
    assert r.blocked == () and r.blocked_from == "none"
    assert r.events_total == 12 and r.bans.issued == 4


def test_sources_countries_and_accounts() -> None:
    r = report()
    top = r.top_sources.items
    assert [(s.ip, s.country, s.events, s.bans) for s in top] == [
        (ATTACKER, "RU", 7, 2),
        (SCANNER, "CN", 3, 1),
        (FRAUDSTER, "NL", 1, 0),
        ("192.0.2.99", None, 0, 1),  # banned by hand, no event of its own
    ]
    assert [(c.key, c.value) for c in top[0].activity][:3] == [
        ("ban", 2),
        ("brute_force", 2),
        ("rate_limited", 2),
    ]
    assert [(c.country, c.events, c.sources, c.bans) for c in r.by_country] == [
        ("RU", 7, 1, 2),
        ("CN", 3, 1, 1),
        ("NL", 1, 1, 0),
        ("??", 0, 0, 1),
    ]
    accounts = {a.account: (a.events, a.sources) for a in r.top_accounts.items}
    assert accounts == {
        "100": (1, 1),
        "200": (1, 1),
        "300": (1, 1),
        samples.HOSTILE_ACCOUNT: (1, 1),
    }


def test_incidents_bans_and_lifts() -> None:
    r = report()
    assert r.brute_force.total == 5  # 2 findings, the auth ban, the scan and its ban
    assert [i.kind for i in r.brute_force.items] == [
        "ban",
        "enumeration",
        "ban",
        "brute_force",
        "brute_force",
    ]  # newest first
    assert [(i.kind, i.account) for i in r.toll_fraud.items] == [("fraud_destination", "300")]
    assert [(i.ip, i.account) for i in r.unusual_logins.items] == [(SCANNER, "200")]
    b = r.bans
    assert (b.issued, b.manual_issued, b.lifted, b.manual_lifted) == (4, 1, 2, 1)
    assert {(c.key, c.value) for c in b.by_reason} == {
        ("rate_limited", 1),
        ("brute_force", 1),
        ("enumeration", 1),
        ("manual", 1),
    }
    manual = [e for e in b.issued_list.items if e.manual]
    assert [(e.ip, e.actor) for e in manual] == [("192.0.2.99", "cli:alice")]
    lifts = {(e.ip, e.lifted_by, e.lift_reason) for e in b.lifted_list.items}
    assert lifts == {("203.0.113.250", "engine", "expired"), (SCANNER, "cli:bob", "manual")}


def test_lists_are_bounded_and_say_how_long_they_were() -> None:
    flood = [
        SecurityEvent(BASE + i, "rate_limited", Severity.NOTICE, f"10.0.{i // 250}.{i % 250}")
        for i in range(600)
    ]
    r = report(events=as_events(flood), bans=[])
    assert len(r.top_sources.items) == TOP and r.top_sources.total == 600
    assert r.top_sources.cut


@pytest.mark.parametrize(
    ("days", "step"),
    [(0.125, 60), (1, 3600), (7, 3600), (8, 86400), (90, 86400), (3650, 86400 * 10)],
)
def test_the_series_is_per_minute_hour_or_day_and_bounded(days: float, step: int) -> None:
    assert bucket_seconds(0, days * 86400.0) == step
    tally = RollupTally(123.0, 123.0 + days * 86400)
    assert len(tally.messages) <= MAX_BUCKETS


def test_drill_results_are_read_defensively() -> None:
    lines, note = drill_results(json.dumps(samples.DRILL_RESULTS))
    assert note == ""
    assert [(d.attack, d.passed, d.status) for d in lines] == [
        ("register-flood", True, ""),
        ("svcrack", False, ""),
        ('{"odd": 1}', None, ""),
        ("svwar", False, "skipped"),  # sipguard drill's own shape: a status besides passed
    ]
    wrapped, _ = drill_results(json.dumps({"results": samples.DRILL_RESULTS[:1]}))
    assert [d.attack for d in wrapped] == ["register-flood"]
    assert drill_results("{not json")[1] == "the drill's results are not JSON"
    assert drill_results('{"passed": 3}')[1] == "the drill's results hold no list of attacks"
    assert drill_results("[1, 2]")[1] == "the drill's results hold no attack objects"
    assert drill_results("[]") == ([], "")


def test_periods_from_the_command_line() -> None:
    now = 1_800_000_000.0
    assert parse_period(None, None, None, now) == (now - 7 * 86400, now)
    assert parse_period("24h", None, None, now) == (now - 86400, now)
    start, end = parse_period(None, "2026-11-01", "2026-11-30", now)
    assert (start, end - start) == (BASE, 30 * 86400)  # --to a date: the end of that day
    assert parse_period(None, "2026-11-01T08:00", "2026-11-01T09:30", now) == (
        BASE + 8 * HOUR,
        BASE + 9.5 * HOUR,
    )
    assert parse_period(None, "2026-11-01T08:00+01:00", None, now) == (BASE + 7 * HOUR, now)
    for args, message in [
        (("7d", "2026-11-01", None), "do not mix"),
        ((None, None, "2026-11-01"), "--to needs --from"),
        ((None, "yesterday", None), "not a date"),
        ((None, "2026-11-02", "2026-11-01T00:00"), "empty"),
        (("7", None, None), "--since"),
        (("0s", None, None), "longer than 0s"),
    ]:
        with pytest.raises(PeriodError, match=message):
            parse_period(*args, now)
