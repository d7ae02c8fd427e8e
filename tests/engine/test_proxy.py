"""The stateless proxy rules of DESIGN.md section 1, on the pure engine: no sockets, no clock."""

from __future__ import annotations

import pytest

from sipguard.core.sip import SipRequest, parse_message
from sipguard.engine.alias import decode_alias, encode_alias
from sipguard.engine.compile import compile_policy
from sipguard.engine.context import Packet, Side
from sipguard.engine.engine import Engine
from sipguard.engine.proxy import Address, Decision, Router
from sipguard.engine.verdict import Action, Reason
from sipguard.policy import load_policy_text
from sipguard.policy.model import Transport

UDP, TCP = Transport.UDP, Transport.TCP
OUTSIDE = Address(UDP, "198.51.100.1", 5060)
OUTSIDE_TCP = Address(TCP, "198.51.100.1", 5060)
INSIDE = Address(UDP, "10.0.0.1", 5070)
PBX = Address(UDP, "10.0.0.5", 5060)
PHONE = ("203.0.113.7", 40000)


def engine(upstream: Address = PBX) -> Engine:
    policy = load_policy_text(
        f"upstream: {upstream.transport.value}://{upstream.host}:{upstream.port}"
    )
    return Engine(Router([OUTSIDE, OUTSIDE_TCP], INSIDE, upstream), compile_policy(policy))


def from_phone(transport: Transport = UDP, listener: int = 0) -> Packet:
    return Packet(PHONE[0], PHONE[1], transport, Side.OUTSIDE, 1000.0, listener)


def from_pbx(port: int = 5060) -> Packet:
    return Packet(PBX.host, port, UDP, Side.INSIDE, 1000.0)


def invite(
    *,
    uri: bytes = b"sip:bob@pbx.example.com",
    via: bytes = b"SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK776asdhds;rport",
    extra: bytes = b"",
    max_forwards: bytes = b"70",
    to_tag: bytes = b"",
    method: bytes = b"INVITE",
) -> bytes:
    body = b"v=0\r\no=- 1 1 IN IP4 192.168.1.20\r\ns=-\r\nc=IN IP4 192.168.1.20\r\nt=0 0\r\n"
    return (
        b"%s %s SIP/2.0\r\n" % (method, uri)
        + b"Via: "
        + via
        + b"\r\n"
        + b"Max-Forwards: "
        + max_forwards
        + b"\r\n"
        + b"From: Alice <sip:alice@pbx.example.com>;tag=1928301774\r\n"
        + b"To: Bob <sip:bob@pbx.example.com>"
        + to_tag
        + b"\r\n"
        + b"Call-ID: a84b4c76e66710@192.168.1.20\r\n"
        + b"CSeq: 314159 "
        + method
        + b"\r\n"
        + b"Contact: <sip:alice@192.168.1.20:5060>\r\n"
        + extra
        + b"Content-Type: application/sdp\r\n"
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


def forward(decision: Decision) -> bytes:
    assert decision.verdict.action is Action.FORWARD, decision.verdict
    assert decision.hop is not None
    return decision.data


def test_outside_invite_goes_to_the_upstream_with_our_via_and_record_routes() -> None:
    d = engine().handle(invite(), from_phone())
    out = parse_message(forward(d))
    assert d.hop is not None and (d.hop.ip, d.hop.port, d.hop.side) == (
        "10.0.0.5",
        5060,
        Side.INSIDE,
    )
    vias = out.vias()
    assert len(vias) == 2
    assert (vias[0].host, vias[0].port) == (b"10.0.0.1", 5070)
    assert vias[0].branch is not None and vias[0].branch.startswith(b"z9hG4bKsg")
    assert vias[1].received == b"203.0.113.7" and vias[1].rport == 40000
    assert out.max_forwards() == 69
    assert [r.uri for r in out.record_routes()] == [
        b"sip:10.0.0.1:5070;lr",
        b"sip:198.51.100.1:5060;lr",
    ]
    assert out.get_all(__import__("sipguard.core.sip", fromlist=["Hdr"]).Hdr.X_SIPGUARD_SOURCE) == [
        b"203.0.113.7:40000;transport=udp"
    ]
    assert out.body == parse_message(invite()).body  # SDP untouched


def test_request_uri_and_route_never_choose_the_next_hop_of_an_outside_request() -> None:
    """No open relay: whatever the Request-URI and Route say, outside requests go to the
    upstream."""
    raw = invite(uri=b"sip:victim@127.0.0.1:9999", extra=b"Route: <sip:127.0.0.1:9998;lr>\r\n")
    d = engine().handle(raw, from_phone())
    assert d.hop is not None and (d.hop.ip, d.hop.port) == ("10.0.0.5", 5060)


def test_our_own_route_entries_are_popped_and_others_kept() -> None:
    raw = invite(
        to_tag=b";tag=xyz",
        extra=b"Route: <sip:198.51.100.1:5060;lr>, <sip:10.0.0.1:5070;lr>\r\n"
        b"Route: <sip:10.0.0.5;lr>\r\n",
    )
    out = parse_message(forward(engine().handle(raw, from_phone())))
    assert [r.uri for r in out.routes()] == [b"sip:10.0.0.5;lr"]
    assert out.record_routes() == []  # in-dialog: no Record-Route


def test_spoofed_source_header_from_outside_is_replaced() -> None:
    raw = invite(extra=b"X-SIPGuard-Source: 10.9.9.9:1;country=NL\r\n")
    out = forward(engine().handle(raw, from_phone()))
    assert b"10.9.9.9" not in out
    assert out.count(b"X-SIPGuard-Source:") == 1


def test_branch_is_deterministic_and_shared_by_retransmission_and_cancel() -> None:
    eng = engine()
    first = parse_message(forward(eng.handle(invite(), from_phone()))).vias()[0].branch
    again = parse_message(forward(eng.handle(invite(), from_phone()))).vias()[0].branch
    cancel = invite(method=b"CANCEL")
    cancelled = parse_message(forward(eng.handle(cancel, from_phone()))).vias()[0].branch
    other = invite(via=b"SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bKother;rport")
    different = parse_message(forward(eng.handle(other, from_phone()))).vias()[0].branch
    assert first == again == cancelled
    assert different != first


def test_max_forwards_zero_gets_483_and_is_not_forwarded() -> None:
    d = engine().handle(invite(max_forwards=b"0"), from_phone())
    assert d.verdict.action is Action.REJECT and d.verdict.reason is Reason.TOO_MANY_HOPS
    assert d.data.startswith(b"SIP/2.0 483 ")
    assert d.hop is not None and (d.hop.ip, d.hop.port, d.hop.side) == (*PHONE, Side.OUTSIDE)


def test_ack_with_max_forwards_zero_is_never_answered() -> None:
    d = engine().handle(invite(max_forwards=b"0", method=b"ACK"), from_phone())
    assert d.verdict.action is Action.DROP and d.hop is None


def test_contact_is_aliased_toward_the_pbx_and_restored_for_its_requests() -> None:
    eng = engine()
    out = parse_message(forward(eng.handle(invite(), from_phone())))
    contact = out.contacts()[0].uri
    assert contact.startswith(b"sip:alice@10.0.0.1:5070;sgalias=")
    # the PBX later sends a request to that contact
    bye = (
        b"BYE " + contact + b" SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKpbx1\r\n"
        b"Route: <sip:10.0.0.1:5070;lr>, <sip:198.51.100.1:5060;lr>\r\n"
        b"Max-Forwards: 70\r\nFrom: <sip:bob@pbx.example.com>;tag=b1\r\n"
        b"To: <sip:alice@pbx.example.com>;tag=1928301774\r\n"
        b"Call-ID: a84b4c76e66710@192.168.1.20\r\n"
        b"CSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
    )
    d = eng.handle(bye, from_pbx())
    sent = parse_message(forward(d))
    assert isinstance(sent, SipRequest)
    assert d.hop is not None and (d.hop.ip, d.hop.port, d.hop.side) == (*PHONE, Side.OUTSIDE)
    assert sent.uri == b"sip:alice@192.168.1.20:5060"
    assert sent.routes() == []
    assert (sent.vias()[0].host, sent.vias()[0].port) == (b"198.51.100.1", 5060)


def test_responses_from_the_pbx_follow_the_via_back_to_the_real_source() -> None:
    eng = engine()
    upstream_invite = parse_message(forward(eng.handle(invite(), from_phone())))
    vias = b"".join(
        b"Via: %s\r\n" % upstream_invite.raw[v.start : v.end] for v in upstream_invite.vias()
    )
    ok = (
        b"SIP/2.0 200 OK\r\n" + vias + b"From: Alice <sip:alice@pbx.example.com>;tag=1928301774\r\n"
        b"To: Bob <sip:bob@pbx.example.com>;tag=pbx\r\nCall-ID: a84b4c76e66710@192.168.1.20\r\n"
        b"CSeq: 314159 INVITE\r\nContact: <sip:bob@10.0.0.5>\r\nServer: FPBX-16.0.40(18.9.0)\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    d = eng.handle(ok, from_pbx())
    out = parse_message(forward(d))
    assert d.hop is not None and (d.hop.ip, d.hop.port, d.hop.side) == (*PHONE, Side.OUTSIDE)
    assert len(out.vias()) == 1 and out.vias()[0].host == b"192.168.1.20"
    assert b"FPBX" not in out.raw  # the PBX's make and version stay inside


def test_a_response_whose_top_via_is_not_ours_is_dropped() -> None:
    ok = (
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 255.255.255.255;branch=z9hG4bKnashds7\r\n"
        b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    for pkt in (from_phone(), from_pbx()):
        d = engine().handle(ok, pkt)
        assert d.verdict.action is Action.DROP and d.hop is None


def test_inside_traffic_from_another_address_is_dropped() -> None:
    pkt = Packet("10.0.0.66", 5060, UDP, Side.INSIDE, 0.0)
    assert engine().handle(invite(), pkt).verdict.reason is Reason.NOT_UPSTREAM


def test_tcp_upstream_gets_a_content_length_and_a_tcp_via() -> None:
    raw = invite().replace(b"Content-Length: ", b"X-Old: ")  # UDP message without Content-Length
    out = forward(engine(Address(TCP, "10.0.0.5", 5060)).handle(raw, from_phone()))
    msg = parse_message(out, datagram=False)
    assert msg.vias()[0].transport == b"TCP"
    assert msg.content_length() == len(msg.body)


@pytest.mark.parametrize("transport", [UDP, TCP])
def test_alias_tokens_round_trip(transport: Transport) -> None:
    token = encode_alias(transport, "2001:db8::7", 5062, b"sip:alice@[fd00::1]:5060;transport=tcp")
    target = decode_alias(token)
    assert target is not None
    assert (target.transport, target.ip, target.port) == (transport, "2001:db8::7", 5062)
    assert target.uri == b"sip:alice@[fd00::1]:5060;transport=tcp"


@pytest.mark.parametrize(
    "junk", [b"", b"!!!", b"dXxub3RhbmlwfDF8c2lw", b"dXwxLjIuMy40fDk5OTk5fHNpcA"]
)
def test_junk_alias_tokens_decode_to_nothing(junk: bytes) -> None:
    assert decode_alias(junk) is None


def test_a_pbx_message_with_a_broken_header_is_dropped_not_raised() -> None:
    eng = engine()
    upstream_invite = parse_message(forward(eng.handle(invite(), from_phone())))
    ours = upstream_invite.raw[upstream_invite.vias()[0].start : upstream_invite.vias()[0].end]
    broken = (
        b"SIP/2.0 200 OK\r\nVia: " + ours + b"\r\nVia: SIP/2.0/UDP ;;,;\r\n"
        b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 314159 INVITE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    d = eng.handle(broken, from_pbx())
    assert d.verdict.action is Action.DROP and d.verdict.reason is Reason.MALFORMED
