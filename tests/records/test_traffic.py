"""The engine's share of the record of normal behaviour: the tally, the call clock and the rows
they become. Pure: no sockets, no event loop, time passed by hand."""

from __future__ import annotations

from collections import Counter

import pytest

from sipguard.core.sip import Hdr, SipRequest, parse_message
from sipguard.engine.compile import compile_policy
from sipguard.engine.context import Packet, Side
from sipguard.engine.engine import Engine
from sipguard.engine.fraud.calls import CallTable
from sipguard.engine.proxy import Address, Router
from sipguard.engine.traffic import CallClock, TrafficSample, TrafficTally
from sipguard.engine.verdict import Action
from sipguard.policy import load_policy_text
from sipguard.policy.model import Transport
from sipguard.services.rollups import UNPARSED, rows_for, seconds_to_next_minute
from sipguard.store import Dimension, RollupRow

UDP = Transport.UDP
PBX = Address(UDP, "10.0.0.5", 5060)
PHONE, STRANGER, NOWHERE = "198.51.100.7", "203.0.113.66", "192.0.2.9"
T0 = 1_699_999_980.0  # a minute boundary


def geo(ip: str) -> str | None:
    return next(
        (cc for net, cc in (("198.51.", "NL"), ("203.0.", "BR")) if ip.startswith(net)), None
    )


def make_engine(extra: str = "") -> Engine:
    policy = compile_policy(load_policy_text("upstream: udp://10.0.0.5:5060\n" + extra))
    router = Router([Address(UDP, "198.18.0.1", 5060)], Address(UDP, "10.0.0.1", 5070), PBX)
    return Engine(router, policy, geo=geo)


def request(method: str, n: int, *, user: str = "alice", auth: bool = False,
            call: str | None = None, to_tag: str = "") -> bytes:  # fmt: skip
    credentials = (
        f'Authorization: Digest username="{user}", realm="pbx", nonce="n{n}", '
        f'uri="sip:pbx.example.com", response="{n:032x}"\r\n'
        if auth
        else ""
    )
    return (
        f"{method} sip:{user}@pbx.example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK{method}{n};rport\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:{user}@pbx.example.com>;tag=from{call or n}\r\n"
        f"To: <sip:{user}@pbx.example.com>{to_tag}\r\nCall-ID: {call or n}@phone\r\n"
        f"CSeq: {n} {method}\r\nContact: <sip:{user}@192.168.1.20:5060>\r\n"
        f"{credentials}Content-Length: 0\r\n\r\n"
    ).encode()


def through(eng: Engine, data: bytes, source: str, now: float, *statuses: int) -> None:
    """`data` from `source` through the engine to the PBX, which answers each of `statuses`."""
    out = eng.handle(data, Packet(source, 5060, UDP, Side.OUTSIDE, now))
    assert out.verdict.action is Action.FORWARD, out.verdict
    fwd = parse_message(out.data)
    assert isinstance(fwd, SipRequest)
    vias = b"".join(b"Via: " + fwd.raw[v.start : v.end] + b"\r\n" for v in fwd.vias())
    to = fwd.get(Hdr.TO) or b""
    if b"tag=" not in to:
        to += b";tag=pbx"
    for status in statuses:
        answer = (
            b"SIP/2.0 %d Whatever\r\n" % status
            + vias
            + b"From: " + (fwd.get(Hdr.FROM) or b"") + b"\r\nTo: " + to + b"\r\n"
            + b"Call-ID: " + fwd.call_id() + b"\r\n"
            + b"CSeq: %d %s\r\nContent-Length: 0\r\n\r\n" % fwd.cseq()
        )  # fmt: skip
        back = eng.handle(answer, Packet("10.0.0.5", 5060, UDP, Side.INSIDE, now))
        assert back.verdict.action is Action.FORWARD, back.verdict


# ------------------------------------------------------------------------------------ call clock


def test_the_call_clock_integrates_calls_over_time() -> None:
    clock = CallClock()
    clock.change(0.0, 1)  # one call from 0
    clock.change(30.0, 1)  # two from 30
    clock.change(90.0, -1)  # one from 90
    assert clock.total(120.0) == pytest.approx(30 + 2 * 60 + 30)
    assert clock.active == 1
    clock.change(120.0, -1)
    assert clock.total(1000.0) == pytest.approx(180.0)  # nothing in progress: nothing added


def test_a_clock_that_steps_back_adds_nothing_and_resumes() -> None:
    clock = CallClock()
    clock.change(100.0, 1)
    assert clock.total(50.0) == 0.0  # the wall clock went back 50 s
    assert clock.total(60.0) == pytest.approx(10.0)  # counted again from the new time


def test_the_call_table_counts_answers_and_answered_time() -> None:
    table = CallTable()
    acc = table.account("alice", 0.0)
    table.start((b"c1", b"t"), acc, 1, 0.0)
    table.start((b"c2", b"t"), acc, 1, 0.0)
    assert table.answer((b"c1", b"t"), 1, 10.0) is not None  # ringing time is no call time
    assert table.answer((b"c1", b"t"), 1, 11.0) is None  # a retransmitted 200 counts once
    table.end((b"c2", b"t"), 20.0)  # never answered
    table.end((b"c1", b"t"), 70.0)
    assert table.answered_total == 1
    assert table.call_clock.total(100.0) == pytest.approx(60.0)


# ---------------------------------------------------------------------------------- the tally


def test_take_reports_growth_of_running_totals_and_starts_again() -> None:
    tally = TrafficTally(0.0, calls=5, call_seconds=100.0, auth_failures=2)
    tally.countries["NL"] = 3
    tally.countries[None] = 1
    tally.responses[2] = 4
    tally.registrations = 1
    sample = tally.take(60.0, calls=7, call_seconds=160.0, auth_failures=2)
    assert sample == TrafficSample(0.0, 60.0, {"NL": 3, "??": 1}, {2: 4}, 1, 2, 60.0, 0)
    assert tally.take(120.0, calls=7, call_seconds=160.0, auth_failures=2).empty


def test_the_engine_tallies_countries_answers_registrations_calls_and_failures() -> None:
    eng = make_engine()
    eng.take_traffic(T0)
    through(eng, request("REGISTER", 1), PHONE, T0, 401)  # challenged: no failure (no credentials)
    through(eng, request("REGISTER", 2, auth=True), PHONE, T0 + 1, 200)  # registered
    through(eng, request("REGISTER", 3, user="bob", auth=True), STRANGER, T0 + 2, 403)  # failure
    through(eng, request("OPTIONS", 4), NOWHERE, T0 + 3, 200)  # no country
    through(eng, request("INVITE", 5, call="c1"), PHONE, T0 + 10, 100, 180, 200)  # answered
    through(eng, request("ACK", 6, call="c1", to_tag=";tag=pbx"), PHONE, T0 + 10)
    through(eng, request("BYE", 7, call="c1", to_tag=";tag=pbx"), PHONE, T0 + 40, 200)
    sample = eng.take_traffic(T0 + 60)
    assert sample is not None
    assert sample.countries == {"NL": 5, "BR": 1, "??": 1}
    assert sample.responses == {1: 2, 2: 4, 4: 2}
    assert (sample.registrations, sample.calls, sample.auth_failures) == (1, 1, 1)
    assert sample.call_seconds == pytest.approx(30.0)
    after = eng.take_traffic(T0 + 120)
    assert after is not None and after.empty


def test_a_call_in_progress_accrues_minutes_in_every_minute_it_spans() -> None:
    eng = make_engine()
    eng.take_traffic(T0)
    through(eng, request("INVITE", 1, call="long"), PHONE, T0 + 30, 200)
    first, second = eng.take_traffic(T0 + 60), eng.take_traffic(T0 + 120)
    assert first is not None and second is not None
    assert first.calls == 1 and first.call_seconds == pytest.approx(30.0)
    assert second.calls == 0 and second.call_seconds == pytest.approx(60.0)


def test_rollups_off_means_no_tally_and_a_reload_turns_it_on_again() -> None:
    eng = make_engine("records: {rollups: off}\n")
    through(eng, request("REGISTER", 1, auth=True), PHONE, T0, 200)
    assert eng.take_traffic(T0 + 60) is None
    eng.swap_policy(compile_policy(load_policy_text("upstream: udp://10.0.0.5:5060\n")))
    through(eng, request("REGISTER", 2, auth=True), PHONE, T0 + 61, 200)
    sample = eng.take_traffic(T0 + 120)
    assert sample is not None and sample.registrations == 1


# --------------------------------------------------------------------------------------- rows


def test_rows_name_methods_reasons_classes_and_countries() -> None:
    messages = Counter(
        {
            ("outside", "INVITE", "forward", "ok"): 3,
            ("outside", "INVITE", "drop", "rate_limited"): 2,
            ("outside", "-", "drop", "banned"): 5,
            ("outside", "malformed", "reject", "malformed"): 1,
            ("inside", "response", "forward", "ok"): 4,
            ("inside", "BYE", "forward", "ok"): 0,
        }
    )
    sample = TrafficSample(0.0, 60.0, {"NL": 5, "??": 1}, {1: 1, 2: 3}, 2, 1, 90.0, 4)
    m = 1_699_999_980
    assert rows_for(m, messages, sample) == [
        RollupRow(m, Dimension.DROPS, "banned", 5.0),
        RollupRow(m, Dimension.DROPS, "rate_limited", 2.0),
        RollupRow(m, Dimension.MESSAGES, "inside:response", 4.0),
        RollupRow(m, Dimension.MESSAGES, "outside:INVITE", 5.0),
        RollupRow(m, Dimension.MESSAGES, f"outside:{UNPARSED}", 6.0),
        RollupRow(m, Dimension.REJECTS, "malformed", 1.0),
        RollupRow(m, Dimension.RESPONSES, "1xx", 1.0),
        RollupRow(m, Dimension.RESPONSES, "2xx", 3.0),
        RollupRow(m, Dimension.COUNTRIES, "??", 1.0),
        RollupRow(m, Dimension.COUNTRIES, "NL", 5.0),
        RollupRow(m, Dimension.REGISTRATIONS, "", 2.0),
        RollupRow(m, Dimension.CALLS, "", 1.0),
        RollupRow(m, Dimension.CALL_MINUTES, "", 1.5),
        RollupRow(m, Dimension.AUTH_FAILURES, "", 4.0),
    ]


def test_a_quiet_minute_has_no_rows() -> None:
    assert rows_for(60, Counter(), TrafficSample(0.0, 60.0, {}, {}, 0, 0, 0.0, 0)) == []
    assert rows_for(60, Counter(), None) == []


@pytest.mark.parametrize(
    ("now", "wait"), [(120.0, 60.05), (179.0, 1.05), (179.99, 0.06), (180.05, 60.0)]
)
def test_flushes_wait_for_just_after_the_next_minute(now: float, wait: float) -> None:
    assert seconds_to_next_minute(now) == pytest.approx(wait)
