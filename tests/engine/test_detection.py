"""Detection through the engine: requests go out through the proxy, the PBX's answers come back, and
the engine learns from them (brute force, enumeration, unusual logins). Pure: no sockets, no clock.
"""

from __future__ import annotations

from sipguard.core.sip import Hdr, SipRequest, parse_message
from sipguard.engine.compile import compile_policy
from sipguard.engine.context import Packet, Side
from sipguard.engine.effects import BanIssued, LoginSeen, SecurityEvent
from sipguard.engine.engine import Engine
from sipguard.engine.proxy import Address, Router
from sipguard.engine.verdict import Action, Reason
from sipguard.policy import load_policy_text
from sipguard.policy.model import Transport

UDP = Transport.UDP
PBX = Address(UDP, "10.0.0.5", 5060)
OFFICE, ATTACKER = "198.51.100.7", "203.0.113.66"


def make_engine(extra: str = "") -> Engine:
    policy = compile_policy(load_policy_text("upstream: udp://10.0.0.5:5060\n" + extra))
    router = Router([Address(UDP, "198.18.0.1", 5060)], Address(UDP, "10.0.0.1", 5070), PBX)
    return Engine(router, policy, geo=lambda ip: "NL" if ip.startswith("198.51.") else "RU")


def register(user: str, *, password: bool, n: int = 1) -> bytes:
    auth = (
        f'Authorization: Digest username="{user}", realm="pbx", nonce="n{n}", '
        f'uri="sip:pbx.example.com", response="{n:032x}"\r\n'
        if password
        else ""
    )
    return (
        f"REGISTER sip:pbx.example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.168.1.{n % 250}:5060;branch=z9hG4bK{user}x{n};rport\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:{user}@pbx.example.com>;tag=t{n}\r\n"
        f"To: <sip:{user}@pbx.example.com>\r\nCall-ID: {user}-{n}\r\nCSeq: {n} REGISTER\r\n"
        f"Contact: <sip:{user}@192.168.1.20:5060>\r\n{auth}Content-Length: 0\r\n\r\n"
    ).encode()


def pbx_answers(eng: Engine, request: bytes, source: str, status: int, now: float) -> None:
    """Send `request` from `source` through the engine and let the PBX answer it with `status`."""
    out = eng.handle(request, Packet(source, 5060, UDP, Side.OUTSIDE, now))
    assert out.verdict.action is Action.FORWARD, out.verdict
    forwarded = parse_message(out.data)
    assert isinstance(forwarded, SipRequest)
    vias = b"".join(b"Via: " + forwarded.raw[v.start : v.end] + b"\r\n" for v in forwarded.vias())
    answer = (
        b"SIP/2.0 %d Whatever\r\n" % status
        + vias
        + b"From: "
        + (forwarded.get(Hdr.FROM) or b"")
        + b"\r\n"
        + b"To: "
        + (forwarded.get(Hdr.TO) or b"")
        + b";tag=pbx\r\n"
        + b"Call-ID: "
        + forwarded.call_id()
        + b"\r\n"
        + b"CSeq: %d %s\r\nContent-Length: 0\r\n\r\n" % forwarded.cseq()
    )
    back = eng.handle(answer, Packet("10.0.0.5", 5060, UDP, Side.INSIDE, now))
    assert back.verdict.action is Action.FORWARD and back.hop is not None


def bans(eng: Engine) -> list[BanIssued]:
    return [e for e in eng.effects if isinstance(e, BanIssued)]


def test_wrong_passwords_from_a_stranger_ban_it_and_challenges_do_not_count() -> None:
    eng = make_engine("auth: {failures: 5, within: 10m, ban: 1h}\n")
    for n in range(20):  # the normal digest challenge, many times: never a failure
        pbx_answers(eng, register("100", password=False, n=n), ATTACKER, 401, 100.0 + n)
    assert bans(eng) == []
    for n in range(5):
        pbx_answers(eng, register("100", password=True, n=100 + n), ATTACKER, 403, 200.0 + n)
    (ban,) = bans(eng)
    assert (ban.ip, ban.reason, ban.rule) == (ATTACKER, "brute_force", "auth")
    refused = eng.handle(
        register("100", password=True), Packet(ATTACKER, 5060, UDP, Side.OUTSIDE, 210.0)
    )
    assert refused.verdict.reason is Reason.BANNED


def test_a_nat_office_with_one_bad_phone_keeps_its_healthy_phones() -> None:
    eng = make_engine("auth: {failures: 5, within: 10m}\n")
    for n in range(50):  # 50 phones after an outage: challenge, then a good answer
        pbx_answers(eng, register(f"2{n:02d}", password=False, n=n), OFFICE, 401, 1000.0)
        pbx_answers(eng, register(f"2{n:02d}", password=True, n=n), OFFICE, 200, 1000.5)
    for n in range(8):  # one phone with a stale password keeps trying
        out = eng.handle(
            register("666", password=True, n=500 + n),
            Packet(OFFICE, 5060, UDP, Side.OUTSIDE, 1001.0 + n),
        )
        if out.verdict.action is Action.FORWARD:
            pbx_answers(eng, register("666", password=True, n=500 + n), OFFICE, 401, 1001.0 + n)
        else:
            assert out.verdict.reason is Reason.ACCOUNT_BLOCKED
    assert bans(eng) == []  # the office address is not banned
    pbx_answers(eng, register("201", password=True, n=900), OFFICE, 200, 1100.0)
    blocked = [e for e in eng.effects if isinstance(e, SecurityEvent) and e.kind == "brute_force"]
    assert [e.account for e in blocked] == ["666"]


def test_extension_enumeration_is_banned_whatever_the_user_agent() -> None:
    eng = make_engine("enumeration: {distinct_users: 10, within: 1m, ban: 24h}\n")
    for n in range(10):
        pbx_answers(eng, register(f"{300 + n}", password=False, n=n), ATTACKER, 404, 50.0 + n)
    (ban,) = bans(eng)
    assert (ban.reason, ban.rule, ban.until - ban.issued_at) == (
        "enumeration",
        "enumeration",
        86400.0,
    )


def test_logins_are_recorded_and_an_unusual_country_alerts() -> None:
    eng = make_engine("logins: {learn: 3, timezone: UTC, new_hour: off}\n")
    for n in range(4):
        pbx_answers(eng, register("100", password=True, n=n), OFFICE, 200, 3600.0 * 10 + n)
    seen = [e for e in eng.effects if isinstance(e, LoginSeen)]
    assert seen and all(s.country == "NL" and s.account == "100" for s in seen)
    pbx_answers(eng, register("100", password=True, n=9), ATTACKER, 200, 3600.0 * 10 + 60)
    alerts = [e for e in eng.effects if isinstance(e, SecurityEvent) and e.kind == "unusual_login"]
    assert len(alerts) == 1 and "from RU" in alerts[0].detail and alerts[0].account == "100"
