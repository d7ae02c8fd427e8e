"""Toll fraud through the engine with the shipped default policy: the issue's numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipguard.engine.compile import compile_policy
from sipguard.engine.context import Packet, Side
from sipguard.engine.effects import SecurityEvent
from sipguard.engine.engine import Engine
from sipguard.engine.proxy import Address, Router
from sipguard.engine.verdict import Action, Reason
from sipguard.policy import load_policy_file
from sipguard.policy.model import Transport

UDP = Transport.UDP
DEFAULT = Path(__file__).resolve().parents[2] / "policies" / "default.yaml"
NOON = 1_764_417_600.0  # 2025-11-29 12:00 UTC: 13:00 in Amsterdam, outside quiet hours


def make_engine() -> Engine:
    policy = load_policy_file(DEFAULT)
    router = Router(
        [Address(UDP, "127.0.0.1", 5060)],
        Address(UDP, "127.0.0.1", 5070),
        Address(UDP, "127.0.0.1", 5080),
    )
    return Engine(router, compile_policy(policy), geo=lambda ip: "NL")


def invite(uri: bytes, n: int = 1) -> bytes:
    return (
        b"INVITE " + uri + b" SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bKfraud%d;rport\r\n"
        % n
        + b"Max-Forwards: 70\r\nFrom: <sip:201@pbx.example.com>;tag=f%d\r\n" % n
        + b"To: <"
        + uri
        + b">\r\nCall-ID: fraud-%d@test\r\nCSeq: 1 INVITE\r\n" % n
        + b"Contact: <sip:201@192.168.1.20:5060>\r\nContent-Length: 0\r\n\r\n"
    )


def send(eng: Engine, uri: bytes, n: int, now: float = NOON) -> tuple[Action, Reason, bytes]:
    d = eng.handle(invite(uri, n), Packet("198.51.100.7", 5060, UDP, Side.OUTSIDE, now))
    return d.verdict.action, d.verdict.reason, d.data[:30]


@pytest.mark.parametrize(
    "uri",
    [
        b"tel:+881612345678",  # Iridium satellite (libphonenumber region "001")
        b"sip:00906123456@pbx.example.com;user=phone",  # outside line 0 + Dutch 0906 premium
        b"sip:+448712345678@pbx.example.com;user=phone",  # UK 0871
    ],
)
def test_expensive_destinations_get_403_and_an_alert(uri: bytes) -> None:
    eng = make_engine()
    action, reason, data = send(eng, uri, 1)
    assert (action, reason) == (Action.REJECT, Reason.TOLL_FRAUD)
    assert data.startswith(b"SIP/2.0 403 ")
    events = [e for e in eng.effects if isinstance(e, SecurityEvent)]
    assert [e.kind for e in events] == ["fraud_destination"]
    assert events[0].account == "201"


def test_an_ordinary_national_call_passes() -> None:
    eng = make_engine()
    assert send(eng, b"sip:00201234567@pbx.example.com;user=phone", 1)[0] is Action.FORWARD
    assert send(eng, b"sip:+31201234567@pbx.example.com;user=phone", 2)[0] is Action.FORWARD
    assert not [e for e in eng.effects if isinstance(e, SecurityEvent)]


def test_an_international_call_at_night_alerts_but_passes() -> None:
    eng = make_engine()
    night = NOON + 11 * 3600  # 00:00 in Amsterdam
    action, _, _ = send(eng, b"sip:+4930123456@pbx.example.com;user=phone", 1, night)
    assert action is Action.FORWARD
    events = [e.kind for e in eng.effects if isinstance(e, SecurityEvent)]
    assert events == ["fraud_quiet_hours"]
