"""Log lines: attacker bytes escaped and cut, JSON lines that parse, floods summarised per window,
and `sipguard run --log-format json` under a flood from many sources (a real subprocess)."""

from __future__ import annotations

import io
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from sipguard import admin
from sipguard.engine.effects import BanIssued, BanLifted, LoginSeen, SecurityEvent
from sipguard.io.counters import Counters
from sipguard.policy import load_policy_file
from sipguard.policy.model import Severity
from sipguard.services import logs
from sipguard.services.logs import (
    ActivityLog,
    EventLog,
    JsonFormatter,
    LineGate,
    LogFormat,
    TextFormatter,
)
from tests.proxy.daemon import Daemon
from tests.proxy.guard import policy_text
from tests.proxy.stub import UdpPeer, wait_until

HOSTILE = "sipvicious\x1b[2J\r\n2026-01-01 INFO sipguard: all is well\u202e" + "A" * 5_000


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, LineGate, FakeClock]]:
    """Logging configured as `sipguard run` does, into a buffer, with a clock the test moves."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    clock = FakeClock()
    gate = logs.configure("info", LogFormat.TEXT, stream=stream, gate=LineGate(clock=clock))
    try:
        yield stream, gate, clock
    finally:
        root.handlers[:], root.level = saved
        logs._installed_gate.clear()


def record(message: str, *args: object, **fields: object) -> logging.LogRecord:
    rec = logging.LogRecord("sipguard.test", logging.WARNING, __file__, 1, message, args, None)
    rec.fields = fields
    return rec


# -- formats -------------------------------------------------------------------------------------


def test_text_lines_escape_attacker_bytes_and_stay_one_bounded_line() -> None:
    line = TextFormatter().format(record("scanner %s", HOSTILE, ua=HOSTILE, ip="203.0.113.7"))
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\u202e" not in line
    assert "\\x1b[2J\\r\\n" in line and "\\u202e" in line
    assert len(line) < logs.MESSAGE_LIMIT + logs.FIELD_LIMIT + 200
    assert "ip=203.0.113.7" in line
    assert line.split(" ", 2)[1] == "WARNING"


def test_json_lines_parse_and_carry_the_fields_escaped() -> None:
    line = JsonFormatter().format(record("scanner %s", HOSTILE, ua=HOSTILE, offences=3))
    assert "\n" not in line
    obj = json.loads(line)
    assert obj["level"] == "warning" and obj["logger"] == "sipguard.test"
    assert obj["time"].endswith("Z")
    assert obj["message"].startswith("scanner sipvicious\\x1b[2J\\r\\n")
    assert len(obj["message"]) <= logs.MESSAGE_LIMIT
    assert obj["offences"] == 3
    assert len(obj["ua"]) <= logs.FIELD_LIMIT and "\x1b" not in obj["ua"]


# -- line gate -----------------------------------------------------------------------------------


def test_the_gate_lets_a_burst_through_then_counts_and_reports_once_per_window(
    captured: tuple[io.StringIO, LineGate, FakeClock],
) -> None:
    stream, gate, clock = captured
    noisy = logging.getLogger("sipguard.tcp")
    for n in range(1_000):  # a different address each time: one template, one budget
        noisy.info("closing TCP %s:%d: unframeable stream", f"198.51.100.{n % 250}", n)
    logging.getLogger("sipguard").info("another kind of line")  # its own budget
    lines = stream.getvalue().splitlines()
    assert len(lines) == logs.GATE_BURST + 1
    clock.now += logs.GATE_INTERVAL
    gate.flush()
    summary = stream.getvalue().splitlines()[-1]
    assert f"{1_000 - logs.GATE_BURST} more lines like this in the last 10 s" in summary
    assert "closing TCP %s:%d: unframeable stream" in summary
    noisy.info("closing TCP %s:%d: unframeable stream", "198.51.100.1", 1)  # a new window
    assert (
        stream.getvalue()
        .splitlines()[-1]
        .endswith("closing TCP 198.51.100.1:1: unframeable stream")
    )


# -- security events -----------------------------------------------------------------------------


def event(n: int, kind: str = "rate_limited") -> SecurityEvent:
    return SecurityEvent(
        1_000.0,
        kind,
        Severity.NOTICE,
        f"10.{n // 65536}.{n // 256 % 256}.{n % 256}",
        5060,
        "NL",
        None,
        "REGISTER",
        "limits.REGISTER",
    )


def test_each_ban_and_event_is_one_line_with_its_facts(
    captured: tuple[io.StringIO, LineGate, FakeClock],
) -> None:
    stream, _, _ = captured
    EventLog().submit(
        [
            BanIssued(
                "203.0.113.7",
                1_000.0,
                4_600.0,
                "brute_force",
                "auth",
                "6 failures for 101",
                2,
                "engine",
            ),
            BanLifted("203.0.113.8", 1_000.0, "manual", "cli:alice"),
            SecurityEvent(
                1_000.0,
                "fraud_destination",
                Severity.WARNING,
                "198.51.100.4",
                5060,
                "DE",
                "101",
                "INVITE",
                "fraud.destinations",
                HOSTILE,
            ),
            SecurityEvent(
                1_000.0,
                "policy_reload",
                Severity.INFO,
                rule="cli:alice",
                detail="changed: limits.INVITE.rate: 30/1m -> 60/1m",
            ),
            LoginSeen("101", "NL", 9, 1_000.0),  # not a line: the login history is not news
        ],
        1_000.0,
    )
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4
    assert lines[3].endswith(
        "INFO sipguard.events: policy (cli:alice): changed: limits.INVITE.rate: 30/1m -> 60/1m"
        " [event=policy_reload severity=info actor=cli:alice]"
    )
    assert (
        "WARNING sipguard.events: ban 203.0.113.7 for 1h: brute_force (auth): 6 failures"
        in lines[0]
    )
    assert "offences=2" in lines[0]
    assert "ban of 203.0.113.8 lifted: manual" in lines[1] and "actor=cli:alice" in lines[1]
    assert "fraud_destination from 198.51.100.4:5060 (DE) account 101" in lines[2]
    assert "\x1b" not in lines[2] and "\\x1b" in lines[2]


def test_a_distributed_flood_is_a_budget_of_lines_and_one_summary_per_window(
    captured: tuple[io.StringIO, LineGate, FakeClock],
) -> None:
    stream, _, _ = captured
    log = EventLog()
    flood = [event(n) for n in range(10_000)]
    bans = [
        BanIssued(
            f"10.9.{n // 256}.{n % 256}",
            1_000.0,
            1_600.0,
            "rate_limited",
            "limits.REGISTER",
            "",
            1,
            "engine",
        )
        for n in range(500)
    ]
    log.submit([*flood, *bans], 1_000.0)
    log.flush(1_010.0)
    lines = stream.getvalue().splitlines()
    assert len(lines) == logs.EVENT_BURST + logs.BAN_BURST + 2
    ban_summary, event_summary = lines[-2], lines[-1]
    assert (
        "450 more in the last 10 s, not logged one by one: ban 450, from 450 sources" in ban_summary
    )
    assert "9,980 more in the last 10 s" in event_summary
    assert "rate_limited 9,980, from 9,980 sources" in event_summary
    log.flush(1_020.0)  # a quiet window: nothing more
    assert len(stream.getvalue().splitlines()) == len(lines)


# -- traffic summary -----------------------------------------------------------------------------


def test_the_traffic_summary_sums_the_minute_and_warns_when_drops_win(
    captured: tuple[io.StringIO, LineGate, FakeClock],
) -> None:
    stream, _, _ = captured
    counters = Counters()
    counters.messages[("outside", "INVITE", "forward", "ok")] = 5  # before the log started
    activity = ActivityLog(counters)
    activity.summary(60)
    assert stream.getvalue() == ""  # nothing new: a quiet minute is not logged
    counters.messages[("outside", "INVITE", "forward", "ok")] += 100
    counters.messages[("inside", "response", "forward", "ok")] += 300
    counters.messages[("outside", "-", "drop", "banned")] += 9_000
    counters.messages[("outside", "malformed", "reject", "malformed")] += 20
    activity.summary(60)
    line = stream.getvalue().splitlines()[-1]
    assert (
        "WARNING sipguard.activity: last 60 s: 9,420 messages in (inside 300, outside 9,120)"
        in line
    )
    assert "forwarded 400; dropped 9,000 (banned 9,000); rejected 20 (malformed 20)" in line


# -- the daemon ----------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_run_with_json_logs_under_a_flood_from_many_sources(tmp_path: Path) -> None:
    """Scanners from 60 addresses with a hostile User-Agent: every stderr line is JSON, each ban
    is a line with its facts, and 60 x 20 packets are not 1,200 lines."""
    pbx = UdpPeer()
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        policy_text(
            pbx.url,
            listen=("udp://127.0.0.1:0",),
            extra="rules:\n  - {name: scanners, match: {user_agent: [sipvicious]}, action: ban}\n",
        ),
        encoding="utf-8",
    )
    daemon = Daemon(policy, "--log-format", "json")
    sources: list[socket.socket] = []
    try:
        host, port = daemon.outside("udp")
        for n in range(60):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((f"127.0.3.{n + 1}", 0))
            sources.append(sock)
            for seq in range(20):
                sock.sendto(options(sock.getsockname(), seq), (host, port))
        banned = load_policy_file(policy)
        assert wait_until(lambda: len(admin.list_bans(banned).data) == 60, 10)
        assert pbx.drain(0.05) == []  # the rule bans at the first packet: the PBX saw none
    finally:
        for sock in sources:
            sock.close()
        code = daemon.stop()
        pbx.close()
    assert code == 0
    records = [json.loads(line) for line in daemon.lines]  # every line parses
    bans = [r for r in records if r.get("event") == "ban"]
    assert len(bans) == logs.BAN_BURST
    assert {r["rule"] for r in bans} == {"scanners"} and all(
        r["ip"].startswith("127.0.3.") for r in bans
    )
    summary = next(r for r in records if r.get("event") == "summary")
    assert summary["suppressed"] == 60 - logs.BAN_BURST and summary["by_kind"] == {"ban": 10}
    assert len(records) < 100, len(records)
    assert not any("\x1b" in r["message"] for r in records)
    assert any(r["message"] == "stopped" for r in records)


def options(source: tuple[str, int], seq: int) -> bytes:
    ip, port = source
    return (
        f"OPTIONS sip:100@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {ip}:{port};branch=z9hG4bK-{ip}-{seq}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:scan@{ip}>;tag=t{seq}\r\n"
        "To: <sip:100@127.0.0.1>\r\n"
        f"Call-ID: {ip}-{seq}\r\n"
        f"CSeq: {seq + 1} OPTIONS\r\n"
        "User-Agent: sipvicious\x1b[2J\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode("latin-1")
