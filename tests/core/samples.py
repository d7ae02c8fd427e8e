"""Sample SIP messages for the core tests (RFC 5737/3849 documentation addresses only)."""

from __future__ import annotations

SDP = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 198.51.100.7\r\n"
    b"s=-\r\n"
    b"c=IN IP4 198.51.100.7\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
)


def register(*, extra: bytes = b"", auth: bool = True) -> bytes:
    """A REGISTER from a phone behind NAT, with digest credentials."""
    return (
        b"REGISTER sip:pbx.example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK776asdhds;rport\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: <sip:alice@pbx.example.com>;tag=1928301774\r\n"
        b"To: <sip:alice@pbx.example.com>\r\n"
        b"Call-ID: a84b4c76e66710@10.0.0.7\r\n"
        b"CSeq: 2 REGISTER\r\n"
        b"Contact: <sip:alice@10.0.0.7:5060>;expires=3600\r\n"
        + (
            b'Authorization: Digest username="alice", realm="pbx.example.com", '
            b'nonce="dcd98b7102dd2f0e", uri="sip:pbx.example.com", response="e6f99bf54d4a"\r\n'
            if auth
            else b""
        )
        + extra
        + b"User-Agent: Linphone/5.2.0\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    )


def invite(*, body: bytes = SDP, extra: bytes = b"") -> bytes:
    """An INVITE with SDP, two Vias in one line and one more line, a Route."""
    return (
        b"INVITE sip:bob@pbx.example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKnashds8;received=192.0.2.10,"
        b" SIP/2.0/TCP [2001:db8::10]:5070;branch=z9hG4bK77ef4c2312983.1\r\n"
        b"v: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bKfirst;rport=5062\r\n"
        b"Max-Forwards: 69\r\n"
        b"Route: <sip:192.0.2.10;lr>, <sip:[2001:db8::10];lr>\r\n"
        b'From: "Alice \\"A\\" Liddell" <sip:alice@example.com>;tag=1928301774\r\n'
        b"To: Bob <sip:bob@pbx.example.com>\r\n"
        b"Call-ID: a84b4c76e66710@pc33.example.com\r\n"
        b"CSeq: 314159 INVITE\r\n"
        b"Contact: <sip:alice@198.51.100.7:5062;transport=udp>\r\n"
        b"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE\r\n"
        b"Supported: replaces, timer\r\n" + extra + b"User-Agent: Zoiper rv2.10.20.3\r\n"
        b"Content-Type: application/sdp\r\n"
        b"Content-Length: %d\r\n"
        b"\r\n" % len(body) + body
    )


def ok200() -> bytes:
    """A 200 OK to an INVITE with two Vias (sipguard's on top)."""
    return (
        b"SIP/2.0 200 OK\r\n"
        b"Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKsg1234\r\n"
        b"Via: SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bKfirst;received=198.51.100.7"
        b";rport=5062\r\n"
        b"Record-Route: <sip:203.0.113.1;lr>\r\n"
        b"From: <sip:alice@example.com>;tag=1928301774\r\n"
        b"To: <sip:bob@pbx.example.com>;tag=a6c85cf\r\n"
        b"Call-ID: a84b4c76e66710@pc33.example.com\r\n"
        b"CSeq: 314159 INVITE\r\n"
        b"Contact: <sip:bob@192.0.2.4>\r\n"
        b"Server: Asterisk PBX 20.5.0\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    )


def options(
    *, via: bytes = b"SIP/2.0/UDP 198.51.100.9;branch=z9hG4bKopt1", extra: bytes = b""
) -> bytes:
    """A minimal OPTIONS."""
    return (
        b"OPTIONS sip:pbx.example.com SIP/2.0\r\n"
        b"Via: " + via + b"\r\n"
        b"From: <sip:scanner@example.net>;tag=1\r\n"
        b"To: <sip:pbx.example.com>\r\n"
        b"Call-ID: opt-1\r\n"
        b"CSeq: 1 OPTIONS\r\n" + extra + b"Content-Length: 0\r\n"
        b"\r\n"
    )


VALID = {"register": register(), "invite": invite(), "ok200": ok200(), "options": options()}
