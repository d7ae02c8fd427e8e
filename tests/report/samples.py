"""Synthetic records for the report tests: a known week, with hostile text where attackers can
put it (accounts, details, evidence, reload summaries, drill results)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

from sipguard.engine.effects import BanIssued, BanLifted, SecurityEvent
from sipguard.policy import load_policy_text
from sipguard.policy.model import Policy, Severity
from sipguard.store import Dimension, RollupRow, Store

BASE: Final = 1_793_491_200.0  # 2026-11-01T00:00:00Z
HOUR: Final = 3600.0
SINCE: Final = BASE
UNTIL: Final = BASE + 24 * HOUR

HOSTILE_ACCOUNT: Final = '<script>alert("x")</script>'
HOSTILE_DETAIL: Final = (
    'UA "friendly-scanner" \x1b[31m|pwn| <img src=x onerror=alert(1)>\n[a](http://e.vil)'
)
HOSTILE_SUMMARY: Final = "rules: +1 <b>bold</b> & `code` *em* _u_"

ATTACKER: Final = "203.0.113.7"  # the most active source
SCANNER: Final = "198.51.100.9"
FRAUDSTER: Final = "192.0.2.44"


def ev(
    at: float,
    kind: str,
    ip: str = ATTACKER,
    *,
    country: str | None = "RU",
    account: str | None = None,
    rule: str = "",
    detail: str = "",
    severity: Severity = Severity.WARNING,
) -> SecurityEvent:
    return SecurityEvent(at, kind, severity, ip, 5060, country, account, "REGISTER", rule, detail)


def events() -> list[SecurityEvent]:
    """12 events: 7 from ATTACKER (RU), 3 from SCANNER (CN), 1 from FRAUDSTER (NL), 1 system."""
    t = BASE + HOUR
    return [
        ev(t + 1, "rate_limited", rule="limits.REGISTER", severity=Severity.NOTICE),
        ev(t + 2, "rate_limited", rule="limits.REGISTER", severity=Severity.NOTICE),
        ev(
            t + 3, "ban", rule="limits.REGISTER", detail="rate_limited: banned until 1 (1 offences)"
        ),
        ev(t + 70, "brute_force", account="100", rule="auth.known_sources", detail="5 failures"),
        ev(t + 80, "brute_force", account=HOSTILE_ACCOUNT, rule="auth", detail=HOSTILE_DETAIL),
        ev(t + 90, "ban", rule="auth", detail="brute_force: banned until 2 (1 offences): 5 failed"),
        ev(t + 95, "rule", rule="scanner-ua", detail=HOSTILE_DETAIL, severity=Severity.NOTICE),
        ev(BASE + 5 * HOUR, "enumeration", SCANNER, country="CN", rule="enumeration"),
        ev(BASE + 5 * HOUR + 1, "ban", SCANNER, country="CN", detail="enumeration: banned"),
        ev(
            BASE + 5 * HOUR + 2,
            "unusual_login",
            SCANNER,
            country="CN",
            account="200",
            rule="logins",
            detail="from CN, never seen for it (seen: NL)",
        ),
        ev(
            BASE + 9 * HOUR,
            "fraud_destination",
            FRAUDSTER,
            country="NL",
            account="300",
            rule="fraud.destinations.deny_types",
            detail="+881612345678 is satellite",
        ),
        SecurityEvent(
            BASE + 10 * HOUR, "policy_reload", Severity.INFO, rule="SIGHUP", detail=HOSTILE_SUMMARY
        ),
    ]


def bans() -> list[BanIssued | BanLifted]:
    t = BASE + HOUR
    return [
        BanIssued(
            "203.0.113.250",
            BASE - 2 * HOUR,
            BASE + 3 * HOUR,
            "rate_limited",
            "limits.INVITE",
            "old",
        ),
        BanIssued(
            ATTACKER, t + 3, t + 3603, "rate_limited", "limits.REGISTER", "9 messages over 10/60s"
        ),
        BanIssued(ATTACKER, t + 90, t + 7290, "brute_force", "auth", HOSTILE_DETAIL, 2),
        BanIssued(
            SCANNER, BASE + 5 * HOUR + 1, BASE + 6 * HOUR, "enumeration", "enumeration", "10 users"
        ),
        BanIssued(
            "192.0.2.99",
            BASE + 7 * HOUR,
            BASE + 8 * HOUR,
            "manual",
            "",
            "NOC: seen in PBX logs",
            1,
            "cli:alice",
        ),
        BanLifted("203.0.113.250", BASE + 3 * HOUR, "expired"),
        BanLifted(SCANNER, BASE + 5 * HOUR + 600, "manual", "cli:bob"),
    ]


def rollups() -> list[RollupRow]:
    """Hours 1 and 5 of the day: 1,000 + 200 messages; 700 + 50 dropped, 3 rejected."""
    m1, m5 = int(BASE + HOUR), int(BASE + 5 * HOUR)
    return [
        RollupRow(m1, Dimension.MESSAGES, "outside:REGISTER", 800),
        RollupRow(m1, Dimension.MESSAGES, "outside:INVITE", 100),
        RollupRow(m1, Dimension.MESSAGES, "inside:response", 100),
        RollupRow(m1, Dimension.DROPS, "banned", 600),
        RollupRow(m1, Dimension.DROPS, "rate_limited", 100),
        RollupRow(m1, Dimension.REJECTS, "toll_fraud", 3),
        RollupRow(m1, Dimension.RESPONSES, "2xx", 60),
        RollupRow(m1, Dimension.RESPONSES, "4xx", 40),
        RollupRow(m1, Dimension.COUNTRIES, "RU", 850),
        RollupRow(m1, Dimension.COUNTRIES, "NL", 50),
        RollupRow(m1, Dimension.CALLS, "", 20),
        RollupRow(m1, Dimension.CALL_MINUTES, "", 12.5),
        RollupRow(m1, Dimension.REGISTRATIONS, "", 30),
        RollupRow(m1, Dimension.AUTH_FAILURES, "", 5),
        RollupRow(m5 + 60, Dimension.MESSAGES, "outside:OPTIONS", 200),
        RollupRow(m5 + 60, Dimension.DROPS, "rule", 50),
        RollupRow(m5 + 60, Dimension.COUNTRIES, "CN", 200),
        RollupRow(int(UNTIL), Dimension.MESSAGES, "outside:INVITE", 999),  # after the period
    ]


DRILL_RESULTS: Final = [
    {"attack": "register-flood", "expected": "ban", "observed": "banned after 10", "passed": True},
    {"attack": "svcrack", "expected": "ban", "observed": HOSTILE_DETAIL, "passed": False},
    {"attack": {"odd": 1}, "expected": None, "observed": "?"},
    {"attack": "svwar", "expected": "ban", "observed": "", "passed": False, "status": "skipped"},
    "not an object",
]


async def fill(path: Path) -> None:
    async with await Store.open(path) as store:
        await store.write([*events(), *bans()])
        await store.write_rollups(rollups())
        await store.record_reload(
            BASE + 10 * HOUR,
            actor="SIGHUP",
            path="/etc/sipguard/policy.yaml",
            sha256="ab" * 32,
            outcome="ok",
            summary=HOSTILE_SUMMARY,
        )
        await store.record_reload(
            BASE + 11 * HOUR,
            actor="file-change",
            path="/etc/sipguard/policy.yaml",
            sha256="",
            outcome="failed",
            summary="policy.yaml:3:1: unknown key",
        )
        await store.record_drill(
            started_at=BASE + 12 * HOUR,
            finished_at=BASE + 12 * HOUR + 30,
            target="udp://127.0.0.1:5060",
            policy_sha256="cd" * 32,
            passed=1,
            failed=1,
            results=json.dumps(DRILL_RESULTS),
        )
        await store.record_drill(
            started_at=BASE + 13 * HOUR,
            finished_at=BASE + 13 * HOUR + 5,
            target="x",
            policy_sha256="",
            passed=0,
            failed=0,
            results="{not json",
        )


def policy_for(tmp_path: Path) -> Policy:
    text = "upstream: udp://127.0.0.1:5070\nstorage: sqlite:sipguard.db\n"
    file = tmp_path / "policy.yaml"
    file.write_text(text, encoding="utf-8")
    return load_policy_text(text, str(file))
