"""Country rules end to end: loopback clients stand in for foreign sources through geo.overrides."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sipguard.core.sip import Hdr, parse_message
from tests.proxy.guard import GuardHandle, policy_text, running_guard
from tests.proxy.stub import UdpPeer

pytestmark = pytest.mark.integration

CN, NL, DE = "127.0.0.2", "127.0.0.3", "127.0.0.6"
POLICY = """geo:
  database: builtin
  overrides: {127.0.0.2/32: CN, 127.0.0.3/32: NL, 127.0.0.6/32: DE}
rules:
  - {name: no-china, match: {country: [CN]}, action: drop}
  - {name: benelux-only-registrations, match: {method: REGISTER, country: {not: [NL, BE, LU]}},
  action: drop}
"""


def request(method: bytes, port: int, n: int) -> bytes:
    return (
        b"%s sip:pbx.example.com SIP/2.0\r\n" % method
        + b"Via: SIP/2.0/UDP 127.0.0.9:%d;branch=z9hG4bKgeo%d\r\n" % (port, n)
        + b"Max-Forwards: 70\r\nFrom: <sip:100@pbx.example.com>;tag=g%d\r\n" % n
        + b"To: <sip:100@pbx.example.com>\r\nCall-ID: geo-%d\r\nCSeq: 1 %s\r\n" % (n, method)
        + b"Content-Length: 0\r\n\r\n"
    )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[GuardHandle, UdpPeer, dict[str, UdpPeer]]]:
    pbx = UdpPeer()
    clients = {ip: UdpPeer(ip) for ip in (CN, NL, DE)}
    with running_guard(policy_text(pbx.url, extra=POLICY), tmp_path) as guard:
        yield guard, pbx, clients
    pbx.close()
    for client in clients.values():
        client.close()


def test_a_denied_country_never_reaches_the_pbx(
    world: tuple[GuardHandle, UdpPeer, dict[str, UdpPeer]],
) -> None:
    guard, pbx, clients = world
    for n, method in enumerate((b"INVITE", b"REGISTER", b"OPTIONS")):
        clients[CN].send(request(method, clients[CN].port, n), guard.outside("udp"))
    assert pbx.recv(0.3) is None
    assert clients[CN].recv(0.0) is None  # dropped silently: a scanner learns nothing
    assert guard.count("outside", "INVITE", "drop") == 1


def test_an_allowed_country_passes_and_the_pbx_learns_it(
    world: tuple[GuardHandle, UdpPeer, dict[str, UdpPeer]],
) -> None:
    guard, pbx, clients = world
    clients[NL].send(request(b"REGISTER", clients[NL].port, 1), guard.outside("udp"))
    got = pbx.recv()
    assert got is not None
    source = parse_message(got[0]).get(Hdr.X_SIPGUARD_SOURCE)
    assert source == b"127.0.0.3:%d;transport=udp;country=NL" % clients[NL].port


def test_a_method_specific_rule_applies_to_register_only(
    world: tuple[GuardHandle, UdpPeer, dict[str, UdpPeer]],
) -> None:
    guard, pbx, clients = world
    germany = clients[DE]
    germany.send(request(b"REGISTER", germany.port, 1), guard.outside("udp"))
    assert pbx.recv(0.3) is None
    germany.send(request(b"OPTIONS", germany.port, 2), guard.outside("udp"))
    assert pbx.recv() is not None
