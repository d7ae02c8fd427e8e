"""Loopback tests of the running proxy with bare sockets: open relay, 483, spoofed headers, bad
input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sipguard.core.sip import Hdr, SipRequest, parse_message
from tests.proxy.guard import GuardHandle, policy_text, running_guard
from tests.proxy.stub import UdpPeer, answer

pytestmark = pytest.mark.integration


def invite(
    uri: bytes = b"sip:bob@example.com", extra: bytes = b"", max_forwards: int = 70
) -> bytes:
    return (
        b"INVITE " + uri + b" SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK-relay-1;rport\r\n"
        b"Max-Forwards: %d\r\n"
        % max_forwards
        + b"From: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\n"
        b"Call-ID: relay-test-1\r\nCSeq: 1 INVITE\r\n"
        b"Contact: <sip:alice@192.168.1.20:5060>\r\n" + extra + b"Content-Length: 0\r\n\r\n"
    )


@pytest.fixture
def pbx() -> Iterator[UdpPeer]:
    peer = UdpPeer()
    yield peer
    peer.close()


@pytest.fixture
def phone() -> Iterator[UdpPeer]:
    peer = UdpPeer()
    yield peer
    peer.close()


@pytest.fixture
def guard(pbx: UdpPeer, tmp_path: Path) -> Iterator[GuardHandle]:
    with running_guard(policy_text(pbx.url), tmp_path) as handle:
        yield handle


def test_outside_request_never_reaches_the_address_its_uri_and_route_name(
    guard: GuardHandle, pbx: UdpPeer, phone: UdpPeer
) -> None:
    victim = UdpPeer()
    victim_route = UdpPeer()
    try:
        uri = b"sip:victim@127.0.0.1:%d" % victim.port
        route = b"Route: <sip:127.0.0.1:%d;lr>\r\n" % victim_route.port
        phone.send(invite(uri, route), guard.outside("udp"))
        got = pbx.recv()
        assert got is not None, "the upstream got nothing"
        assert parse_message(got[0]).call_id() == b"relay-test-1"
        assert victim.recv(0.3) is None
        assert victim_route.recv(0.3) is None
    finally:
        victim.close()
        victim_route.close()


def test_max_forwards_zero_is_answered_483_and_not_forwarded(
    guard: GuardHandle, pbx: UdpPeer, phone: UdpPeer
) -> None:
    phone.send(invite(max_forwards=0), guard.outside("udp"))
    got = phone.recv()
    assert got is not None and got[0].startswith(b"SIP/2.0 483 ")
    assert pbx.recv(0.3) is None


def test_call_setup_and_response_routing_through_the_running_proxy(
    guard: GuardHandle, pbx: UdpPeer, phone: UdpPeer
) -> None:
    spoofed = b"X-SIPGuard-Source: 6.6.6.6:1;country=NL\r\n"
    phone.send(invite(extra=spoofed), guard.outside("udp"))
    got = pbx.recv()
    assert got is not None
    forwarded, inside_addr = got
    msg = parse_message(forwarded)
    assert isinstance(msg, SipRequest)
    assert msg.get_all(Hdr.X_SIPGUARD_SOURCE) == [b"127.0.0.1:%d;transport=udp" % phone.port], (
        "the real source replaces anything the client claimed"
    )
    pbx.send(answer(forwarded, 180, b"Ringing"), inside_addr)
    reply = phone.recv()
    assert reply is not None and reply[0].startswith(b"SIP/2.0 180 ")
    assert len(parse_message(reply[0]).vias()) == 1  # sipguard's Via is gone


def test_garbage_and_torture_never_stop_the_proxy(
    guard: GuardHandle, pbx: UdpPeer, phone: UdpPeer
) -> None:
    for junk in (b"", b"\x00" * 100, b"INVITE", b"SIP/2.0 200 OK\r\n\r\n", bytes(range(256)) * 20):
        phone.send(junk, guard.outside("udp"))
    phone.send(invite(), guard.outside("udp"))
    got = pbx.recv()
    assert got is not None and parse_message(got[0]).call_id() == b"relay-test-1"
