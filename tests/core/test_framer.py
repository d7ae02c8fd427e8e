"""StreamFramer: Content-Length framing, keep-alives, limits, and no rescans."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipguard.core.sip import (
    MAX_HEADER_SECTION,
    SipParseError,
    StreamFramer,
    parse_message,
)
from tests.core.samples import invite, ok200, options, register
from tests.core.torture_paths import torture_dir


def feed_all(chunks: list[bytes], framer: StreamFramer | None = None) -> list[bytes]:
    f = framer or StreamFramer()
    out: list[bytes] = []
    for c in chunks:
        out += f.feed(c)
    return out


def test_one_message_per_feed_and_many_per_feed() -> None:
    assert feed_all([invite()]) == [invite()]
    stream = invite() + register() + ok200()
    assert feed_all([stream]) == [invite(), register(), ok200()]
    for m in feed_all([stream]):
        parse_message(m, datagram=False)


def test_byte_at_a_time() -> None:
    stream = b"\r\n" + options() + b"\r\n\r\n" + invite()
    f = StreamFramer()
    got: list[bytes] = []
    for i in range(len(stream)):
        got += f.feed(stream[i : i + 1])
    assert got == [options(), b"", invite()]
    assert f.buffered == 0


def test_keepalive_ping_and_pong() -> None:
    assert feed_all([b"\r\n\r\n"]) == [b""]
    assert feed_all([b"\r\n\r\n\r\n\r\n"]) == [b"", b""]
    assert feed_all([b"\r\n" + options()]) == [options()]  # lone CRLF (pong) skipped
    assert feed_all([options() + b"\r\n\r\n" + options()]) == [options(), b"", options()]


def test_split_ping_is_never_discarded() -> None:
    # STYLE C4: a segment boundary inside CRLFCRLF must not turn the ping into stray CRLFs
    for cut in (1, 2, 3):
        f = StreamFramer()
        assert f.feed(b"\r\n\r\n"[:cut]) == []
        assert f.feed(b"\r\n\r\n"[cut:]) == [b""]
        assert f.buffered == 0
    f = StreamFramer()
    assert f.feed(options() + b"\r\n") == [options()]
    assert f.feed(b"\r\n") == [b""]


def test_lone_cr_lf_are_handled() -> None:
    f = StreamFramer()
    assert f.feed(b"\r\n") == []
    assert f.feed(b"\r") == []
    with pytest.raises(SipParseError):
        f.feed(b"X")  # "\r\n\rX": after the pong, a CR not followed by LF
    with pytest.raises(SipParseError):
        StreamFramer().feed(b"\nINVITE")


def test_clerr_waits_for_the_body() -> None:
    body = b"v=0\r\n"
    msg = options().replace(b"Content-Length: 0", b"Content-Length: 9999") + body
    f = StreamFramer()
    assert f.feed(msg) == []
    assert f.buffered == len(msg)
    assert f.feed(b"x" * (9999 - len(body) - 1)) == []
    assert len(f.feed(b"x")) == 1


@pytest.mark.parametrize("value", [b"-999", b"abc", b"", b"1.5", b"5, 6"])
def test_bad_content_length_is_unframeable(value: bytes) -> None:
    msg = options().replace(b"Content-Length: 0", b"Content-Length: " + value)
    with pytest.raises(SipParseError):
        StreamFramer().feed(msg)


def test_missing_and_duplicate_content_length() -> None:
    with pytest.raises(SipParseError, match="missing"):
        StreamFramer().feed(options().replace(b"Content-Length: 0\r\n", b""))
    with pytest.raises(SipParseError, match="more than one"):
        StreamFramer().feed(options(extra=b"l: 0\r\n"))


def test_compact_and_folded_content_length() -> None:
    body = b"hello"
    msg = options().replace(b"Content-Length: 0", b"l :\r\n 5") + body
    assert feed_all([msg + msg]) == [msg, msg]


def test_error_after_good_messages_is_deferred() -> None:
    f = StreamFramer()
    bad = options().replace(b"Content-Length: 0", b"Content-Length: -1")
    assert f.feed(options() + bad) == [options()]
    err = f.pending_error
    assert err is not None
    with pytest.raises(SipParseError) as info:
        f.feed(options())
    assert info.value is err
    assert f.pending_error is None or f.pending_error is err
    with pytest.raises(SipParseError):
        StreamFramer().feed(bad)  # nothing before it: raised at once


def test_limits() -> None:
    with pytest.raises(SipParseError) as info:
        StreamFramer().feed(b"INVITE " + b"a" * (MAX_HEADER_SECTION + 10))
    assert info.value.status_hint == 513
    huge = options().replace(b"Content-Length: 0", b"Content-Length: 70000")
    with pytest.raises(SipParseError) as info:
        StreamFramer().feed(huge)
    assert info.value.status_hint == 513
    f = StreamFramer(max_buffer=1000)
    with pytest.raises(SipParseError, match="buffer"):
        f.feed(options().replace(b"Content-Length: 0", b"Content-Length: 5000") + b"x" * 900)


def test_no_rescan_of_the_buffer() -> None:
    # feeding a large header section in small pieces must search each octet about once
    f = StreamFramer()
    part = b"X-Pad: " + b"a" * 50 + b"\r\n"
    f.feed(b"OPTIONS sip:x SIP/2.0\r\n")
    for _ in range(200):
        assert f.feed(part) == []
    assert f._scan == f.buffered  # it remembers how far it searched
    assert f.feed(b"Content-Length: 0\r\n\r\n") != []


def test_torture_messages_over_tcp() -> None:
    base = torture_dir() / "rfc4475"

    def load(name: str) -> bytes:
        return Path(base, name).read_bytes()

    # dblreq over TCP: the REGISTER, then (after a CRLF pong) the INVITE. Its body is longer than
    # its Content-Length (150), so the rest ("C" CRLF CRLF) cannot be framed: the two messages
    # come out first and the error waits for the next feed()
    f = StreamFramer()
    got = f.feed(load("dblreq.sip"))
    assert [m.split(b" ", 1)[0] for m in got] == [b"REGISTER", b"INVITE"]
    for m in got:
        parse_message(m, datagram=False)
    assert f.pending_error is not None
    with pytest.raises(SipParseError):
        f.feed(b"")
    # clerr waits (the proxy closes on idle timeout)
    assert StreamFramer().feed(load("clerr.sip")) == []
    # ncl (negative) and mcl01 (two Content-Lengths) close the connection
    for name in ("ncl.sip", "mcl01.sip"):
        with pytest.raises(SipParseError):
            StreamFramer().feed(load(name))
    # inv2543 has no Content-Length: a framing error on a stream
    with pytest.raises(SipParseError):
        StreamFramer().feed(load("inv2543.sip"))
