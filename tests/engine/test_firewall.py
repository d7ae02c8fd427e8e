"""The firewall stages of the engine (bans, trusted, rules, countries, rate limits), pure and
clocked
by hand: no sockets, no sleeping."""

from __future__ import annotations

import pytest

from sipguard.engine.compile import compile_policy
from sipguard.engine.context import Packet, Side
from sipguard.engine.effects import BanIssued, BanLifted, SecurityEvent
from sipguard.engine.engine import Engine
from sipguard.engine.proxy import Address, Router
from sipguard.engine.verdict import Action, Reason
from sipguard.policy import load_policy_text
from sipguard.policy.model import Transport

UDP = Transport.UDP
PBX = Address(UDP, "10.0.0.5", 5060)
COUNTRIES = {"203.0.113.": "CN", "198.51.100.": "NL", "192.0.2.": "RU"}
BASE = """
upstream: udp://10.0.0.5:5060
trusted: [192.0.2.200/32]
"""


def geo(ip: str) -> str | None:
    return next((cc for prefix, cc in COUNTRIES.items() if ip.startswith(prefix)), None)


def make_engine(extra: str = "", rand: float = 0.0) -> Engine:
    policy = compile_policy(load_policy_text(BASE + extra))
    router = Router([Address(UDP, "198.18.0.1", 5060)], Address(UDP, "10.0.0.1", 5070), PBX)
    return Engine(router, policy, geo=geo, rand=lambda: rand)


def pkt(ip: str, now: float = 1000.0, port: int = 5060) -> Packet:
    return Packet(ip, port, UDP, Side.OUTSIDE, now)


def request(
    method: bytes = b"REGISTER", ua: bytes = b"Yealink SIP-T46S", user: bytes = b"100"
) -> bytes:
    return (
        b"%s sip:pbx.example.com SIP/2.0\r\n" % method
        + b"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK%s\r\n" % user
        + b"Max-Forwards: 70\r\nFrom: <sip:%s@pbx.example.com>;tag=a\r\n" % user
        + b"To: <sip:%s@pbx.example.com>\r\nCall-ID: c-%s\r\nCSeq: 1 %s\r\n" % (user, user, method)
        + b"User-Agent: "
        + ua
        + b"\r\nContent-Length: 0\r\n\r\n"
    )


def bans(engine: Engine) -> list[BanIssued]:
    return [e for e in engine.effects if isinstance(e, BanIssued)]


def test_a_banned_source_is_dropped_before_parsing_until_the_ban_ends() -> None:
    eng = make_engine()
    eng.ban("203.0.113.9", 1000.0, 60.0, "test", "cli")
    assert (
        eng.handle(b"\x00 not even SIP", pkt("203.0.113.9", 1001.0)).verdict.reason is Reason.BANNED
    )
    assert eng.handle(request(), pkt("203.0.113.9", 1059.9)).verdict.reason is Reason.BANNED
    after = eng.handle(request(), pkt("203.0.113.9", 1060.0))
    assert after.verdict.action is Action.FORWARD
    assert any(isinstance(e, BanLifted) and e.why == "expired" for e in eng.effects)


def test_a_denied_country_is_dropped_silently_and_others_pass() -> None:
    eng = make_engine("rules:\n  - {name: no-cn, match: {country: [CN]}, action: drop}\n")
    denied = eng.handle(request(), pkt("203.0.113.9"))
    assert (denied.verdict.action, denied.verdict.rule, denied.hop) == (Action.DROP, "no-cn", None)
    assert eng.handle(request(), pkt("198.51.100.7")).verdict.action is Action.FORWARD


def test_a_method_specific_rule_applies_to_that_method_only() -> None:
    eng = make_engine(
        "rules:\n  - {name: nl-only-reg, action: drop,"
        " match: {method: REGISTER, country: {not: [NL]}}}\n"
    )
    assert eng.handle(request(b"REGISTER"), pkt("192.0.2.7")).verdict.rule == "nl-only-reg"
    assert eng.handle(request(b"OPTIONS"), pkt("192.0.2.7")).verdict.action is Action.FORWARD
    assert eng.handle(request(b"REGISTER"), pkt("198.51.100.7")).verdict.action is Action.FORWARD


def test_unknown_country_is_an_explicit_choice() -> None:
    allow = make_engine("rules:\n  - {name: no-cn, match: {country: [CN]}, action: drop}\n")
    assert allow.handle(request(), pkt("172.16.0.9")).verdict.action is Action.FORWARD
    drop = make_engine("geo: {unknown_country: drop}\n")
    assert drop.handle(request(), pkt("172.16.0.9")).verdict.reason is Reason.COUNTRY_UNKNOWN


def test_a_scanner_user_agent_rule_bans_and_bans_escalate() -> None:
    eng = make_engine(
        "rules:\n  - {name: scanners, action: ban, ban: 1h,"
        " match: {user_agent: [friendly-scanner]}}\n"
        "bans: {escalation: 2.0, max: 3h}\n"
    )
    first = eng.handle(request(ua=b"friendly-scanner"), pkt("203.0.113.9", 0.0))
    assert first.verdict.action is Action.DROP and first.hop is None
    assert [(b.until, b.offences) for b in bans(eng)] == [(3600.0, 1)]
    eng.unban("203.0.113.9", 10.0, "cli")
    eng.handle(request(ua=b"FRIENDLY-SCANNER/1.0"), pkt("203.0.113.9", 100.0))
    eng.unban("203.0.113.9", 110.0, "cli")
    eng.handle(request(ua=b"friendly-scanner"), pkt("203.0.113.9", 200.0))
    eng.unban("203.0.113.9", 210.0, "cli")
    eng.handle(request(ua=b"friendly-scanner"), pkt("203.0.113.9", 300.0))
    durations = [b.until - b.issued_at for b in bans(eng)]
    assert durations == [3600.0, 7200.0, 10800.0, 10800.0]  # doubles, capped at bans.max


def test_ban_jitter_comes_from_the_injected_random_source() -> None:
    eng = make_engine(
        "rules:\n  - {name: s, match: {user_agent: [sipvicious]}, action: ban, ban: 10m}\n"
        "bans: {jitter: 30s}\n",
        rand=1.0,
    )
    eng.handle(request(ua=b"sipvicious"), pkt("203.0.113.9", 0.0))
    assert bans(eng)[0].until == 630.0


def test_trusted_sources_are_never_banned_or_limited() -> None:
    eng = make_engine(
        "rules:\n  - {name: scanners, match: {user_agent: [friendly-scanner]}, action: ban}\n"
        "limits:\n  REGISTER: {rate: 1/min, burst: 1, ban_after: 1}\n"
    )
    for i in range(20):
        d = eng.handle(request(ua=b"friendly-scanner"), pkt("192.0.2.200", 1000.0 + i))
        assert d.verdict.action is Action.FORWARD
    assert bans(eng) == []
    assert isinstance(eng.ban("192.0.2.200", 1000.0, None, "x", "cli"), str)


def test_the_upstream_and_own_addresses_are_trusted_when_compiled_with_them() -> None:
    from ipaddress import ip_network

    policy = compile_policy(load_policy_text(BASE), [ip_network("10.0.0.5/32")])
    eng = Engine(
        Router([Address(UDP, "198.18.0.1", 5060)], Address(UDP, "10.0.0.1", 5070), PBX), policy
    )
    assert isinstance(eng.ban("10.0.0.5", 0.0, None, "x", "cli"), str)


def test_a_register_flood_is_cut_to_the_rate_then_banned() -> None:
    eng = make_engine(
        "limits:\n  REGISTER: {rate: 60/min, burst: 5, ban_after: 10, within: 1m, ban: 10m}\n"
    )
    verdicts = [
        eng.handle(request(), pkt("203.0.113.9", 1000.0 + i * 0.01)).verdict for i in range(30)
    ]
    forwarded = sum(v.action is Action.FORWARD for v in verdicts)
    assert forwarded == 5  # the burst; 0.3 s at 1/s refills nothing
    assert [v.reason for v in verdicts[5:15]] == [Reason.RATE_LIMITED] * 9 + [Reason.BANNED]
    assert all(v.reason is Reason.BANNED for v in verdicts[15:])
    (ban,) = bans(eng)
    assert ban.rule == "limits.REGISTER"
    assert ban.until - ban.issued_at == pytest.approx(600.0)
    # other sources are not affected
    assert eng.handle(request(), pkt("198.51.100.7", 1000.5)).verdict.action is Action.FORWARD


def test_reject_mode_answers_503_with_retry_after_but_never_an_ack() -> None:
    eng = make_engine("limits:\n  other: {rate: 1/min, burst: 1, exceed: reject}\n")
    assert eng.handle(request(b"MESSAGE"), pkt("203.0.113.9")).verdict.action is Action.FORWARD
    over = eng.handle(request(b"MESSAGE"), pkt("203.0.113.9"))
    assert over.data.startswith(b"SIP/2.0 503 ") and b"Retry-After: 60\r\n" in over.data
    ack = eng.handle(request(b"ACK"), pkt("203.0.113.9"))
    assert ack.verdict.action is Action.DROP and ack.hop is None


def test_ipv6_sources_share_one_bucket_and_one_ban_per_prefix() -> None:
    eng = make_engine("limits:\n  REGISTER: {rate: 1/min, burst: 2, ban_after: 2}\n")
    verdicts = [
        eng.handle(request(), pkt(f"2001:db8:1:2::{i:x}", 1000.0)).verdict.reason
        for i in range(1, 6)
    ]
    assert verdicts == [Reason.OK, Reason.OK, Reason.RATE_LIMITED, Reason.BANNED, Reason.BANNED]
    assert bans(eng)[0].ip == "2001:db8:1:2::/64"
    assert eng.handle(request(), pkt("2001:db8:1:3::1", 1000.0)).verdict.action is Action.FORWARD


def test_a_flood_of_drops_is_one_event_per_window_not_one_per_packet() -> None:
    eng = make_engine("rules:\n  - {name: no-cn, match: {country: [CN]}, action: drop}\n")
    for i in range(1000):
        eng.handle(request(), pkt("203.0.113.9", 1000.0 + i * 0.01))
    events = [e for e in eng.effects if isinstance(e, SecurityEvent)]
    assert len(events) == 1 and events[0].rule == "no-cn"


def test_a_reload_keeps_bans_and_the_counters_of_unchanged_limits() -> None:
    extra = "limits:\n  REGISTER: {rate: 1/min, burst: 1}\n"
    eng = make_engine(extra)
    eng.ban("203.0.113.50", 0.0, 3600.0, "x", "cli")
    assert eng.handle(request(), pkt("198.51.100.7", 1.0)).verdict.action is Action.FORWARD
    eng.swap_policy(
        compile_policy(load_policy_text(BASE + extra + "rules:\n  - {name: a, action: allow}\n"))
    )
    assert eng.handle(request(), pkt("198.51.100.7", 2.0)).verdict.reason is Reason.RATE_LIMITED
    assert eng.handle(request(), pkt("203.0.113.50", 3.0)).verdict.reason is Reason.BANNED


@pytest.mark.parametrize("bad", ["not-an-ip", "999.1.1.1"])
def test_manual_bans_refuse_what_is_not_an_address(bad: str) -> None:
    assert isinstance(make_engine().ban(bad, 0.0, None, "x", "cli"), str)


def test_garbage_floods_get_a_bounded_number_of_answers() -> None:
    eng = make_engine()
    broken = request().replace(b"CSeq: 1 REGISTER", b"CSeq: 1 INVITE")  # method mismatch: 400
    answers = [eng.handle(broken, pkt("203.0.113.9", 1000.0 + i * 0.001)) for i in range(100)]
    assert sum(d.verdict.action is Action.REJECT for d in answers) == 20
    assert all(d.hop is None for d in answers[20:])
    trusted = [eng.handle(broken, pkt("192.0.2.200", 1000.0)) for _ in range(50)]
    assert all(d.verdict.action is Action.REJECT for d in trusted)  # trusted: never limited


def test_a_source_sending_garbage_past_limits_malformed_is_silenced_then_banned() -> None:
    eng = make_engine("limits:\n  malformed: {rate: 10/min, burst: 5, ban_after: 3, within: 1m}\n")
    broken = request().replace(b"CSeq: 1 REGISTER", b"CSeq: 1 INVITE")  # method mismatch: 400
    first = [eng.handle(broken, pkt("203.0.113.9", 1000.0)) for _ in range(5)]
    assert all(d.verdict.action is Action.REJECT for d in first)  # within the burst: answered
    over = [eng.handle(broken, pkt("203.0.113.9", 1000.0)) for _ in range(2)]
    assert [(d.verdict.action, d.verdict.rule, d.hop) for d in over] == [
        (Action.DROP, "limits.malformed", None)
    ] * 2
    banned = eng.handle(broken, pkt("203.0.113.9", 1000.0))  # the 3rd excess
    assert banned.verdict.reason is Reason.BANNED
    [ban] = bans(eng)
    assert (ban.ip, ban.reason, ban.rule) == ("203.0.113.9", "rate_limited", "limits.malformed")
    assert "3 unparseable messages over 10/60s" in ban.evidence
    # the ban holds for valid messages too, and other sources are untouched
    assert eng.handle(request(), pkt("203.0.113.9", 1001.0)).verdict.reason is Reason.BANNED
    assert eng.handle(request(), pkt("198.51.100.7", 1001.0)).verdict.action is Action.FORWARD
    trusted = [eng.handle(broken, pkt("192.0.2.200", 1000.0)) for _ in range(50)]
    assert all(d.verdict.action is Action.REJECT for d in trusted)  # trusted: never limited
