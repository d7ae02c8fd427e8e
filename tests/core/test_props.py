"""Hypothesis properties: the parser/accessor/framer fuzz invariant, chunking, editor round trip.

h11's invariant: bytes either parse or raise the one error type (SipParseError), never anything
else, and the accessors keep that promise on whatever parsed. Each property is bounded so the
file runs in a few seconds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from itertools import pairwise

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipguard.core.sip import (
    Hdr,
    MessageEditor,
    SipParseError,
    SipRequest,
    SipResponse,
    StreamFramer,
    build_response,
    build_response_raw,
    insert_via,
    parse_message,
    parse_uri,
    remove_top_via,
)
from tests.core.samples import VALID, invite, ok200, options, register
from tests.core.torture_cases import PARSER, Valid
from tests.core.torture_paths import load, message_names

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _torture_valid() -> list[bytes]:
    return [
        load(folder, name)
        for folder in ("rfc4475", "rfc5118")
        for name in message_names(folder)
        if isinstance(PARSER.get(name), Valid)
    ]


TORTURE_VALID = _torture_valid()
SEEDS = list(VALID.values()) + TORTURE_VALID


def exercise(data: bytes) -> None:
    """Parse `data` and run every accessor; only SipParseError may escape."""
    try:
        msg = parse_message(data)
    except SipParseError:
        return
    steps: list[Callable[[], object]] = [
        lambda: msg.headers,
        lambda: [msg.get(h) for h in Hdr],
        lambda: [msg.get_all(h) for h in Hdr],
        lambda: [msg.values(h) for h in Hdr],
        msg.vias,
        msg.top_via,
        msg.from_addr,
        msg.to_addr,
        msg.contacts,
        msg.is_star_contact,
        msg.routes,
        msg.record_routes,
        msg.call_id,
        msg.cseq,
        msg.max_forwards,
        msg.content_length,
        msg.user_agent,
        msg.credentials,
        msg.validate,
        lambda: [parse_uri(a.uri) for a in (msg.from_addr(), msg.to_addr(), *msg.contacts())],
        lambda: msg.request_uri() if isinstance(msg, SipRequest) else None,
        lambda: _edit(msg),
        lambda: build_response(msg, 400, to_tag=b"t") if isinstance(msg, SipRequest) else None,
    ]
    for step in steps:
        with contextlib.suppress(SipParseError):
            step()
    build_response_raw(data, 400, to_tag=b"t")


def _edit(msg: SipRequest | SipResponse) -> None:
    ed = MessageEditor(msg)
    ed.insert_via(b"SIP/2.0/UDP 203.0.113.1;branch=z9hG4bKsg")
    top = ed.message.top_via()
    ed.set_via_param(top, b"received", b"192.0.2.1")
    ed.add_header(b"X-SIPGuard-Source", b"192.0.2.1:5060")
    ed.remove_headers(Hdr.X_SIPGUARD_SOURCE)
    mf = ed.message.max_forwards()
    if mf is None or mf > 0:
        ed.decrement_max_forwards()
    ed.ensure_content_length()
    out = ed.build()
    assert out.endswith(ed.message.body)


@FAST
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_parse_or_raise_sip_parse_error(data: bytes) -> None:
    exercise(data)


@FAST
@given(st.binary(max_size=600))
def test_arbitrary_bytes_after_a_valid_head(tail: bytes) -> None:
    exercise(options()[:-2] + tail)
    exercise(register()[:120] + tail)


@FAST
@given(st.sampled_from(SEEDS), st.data())
def test_one_byte_mutations(seed: bytes, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(seed) - 1), label="index")
    value = data.draw(
        st.sampled_from(b' \t\r\n:;,<>"\\/[]@=\x00\xff%?*') | st.integers(0, 255), label="byte"
    )
    mutated = seed[:i] + bytes([value]) + seed[i + 1 :]
    exercise(mutated)
    exercise(seed[:i] + seed[i + 1 :])  # deletion too


@FAST
@given(st.sampled_from(SEEDS), st.integers(0, 4000))
def test_truncations(seed: bytes, cut: int) -> None:
    exercise(seed[:cut])


_LINE = st.one_of(
    st.sampled_from(
        [
            b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
            b"v: SIP/2.0/TCP [2001:db8::1]:5070;rport, SIP/2.0/UDP h",
            b"From: <sip:a@example.com>;tag=1",
            b"t: sip:b@example.com",
            b"Call-ID: x",
            b"CSeq: 1 OPTIONS",
            b"Max-Forwards: 70",
            b"Content-Length: 0",
            b"l: 5",
            b"Contact: *",
            b'Authorization: Digest username="u"',
            b" folded continuation",
            b"Route: <sip:r;lr>,<sip:s>",
        ]
    ),
    st.builds(
        lambda name, value, n: name + b": " + value * n,
        st.sampled_from([b"X-Long", b"Via", b"To", b"Contact", b"Subject"]),
        st.sampled_from([b"a", b"a,", b'"', b"<", b";", b" ", b"\xff"]),
        st.integers(0, 9000),
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(
        [b"OPTIONS sip:a@example.com SIP/2.0", b"SIP/2.0 200 OK", b"SIP/2.0 200 " + b"x" * 9000]
    ),
    st.lists(_LINE, max_size=30),
    st.binary(max_size=64),
)
def test_structured_messages_with_long_lines(start: bytes, lines: list[bytes], body: bytes) -> None:
    exercise(b"\r\n".join([start, *lines]) + b"\r\n\r\n" + body)


STREAM_PARTS = [options(), b"\r\n\r\n", invite(), register(), b"\r\n", ok200(), b"\r\n\r\n"]
STREAM = b"".join(STREAM_PARTS)
EXPECTED = [options(), b"", invite(), register(), ok200(), b""]


@FAST
@given(st.lists(st.integers(0, len(STREAM)), max_size=25))
def test_any_chunking_yields_the_same_messages(cuts: list[int]) -> None:
    points = sorted({0, len(STREAM), *cuts})
    framer = StreamFramer()
    got: list[bytes] = []
    for a, b in pairwise(points):
        got += framer.feed(STREAM[a:b])
    assert got == EXPECTED
    assert framer.buffered == 0


@FAST
@given(
    st.lists(
        st.sampled_from([options(), invite(), register(), ok200(), b"\r\n\r\n", b"\r\n"]),
        max_size=8,
    ),
    st.lists(st.integers(0, 10_000), max_size=10),
)
def test_chunking_of_random_streams(parts: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(parts)
    whole = StreamFramer()
    try:
        expected = whole.feed(stream)
        tail_err = whole.pending_error is not None
    except SipParseError:
        return
    points = sorted({0, len(stream), *(c for c in cuts if c <= len(stream))})
    framer = StreamFramer()
    got: list[bytes] = []
    for a, b in pairwise(points):
        got += framer.feed(stream[a:b])
    assert got == expected
    assert not tail_err
    for m in got:
        if m:
            parse_message(m, datagram=False)


@FAST
@given(st.binary(max_size=1500), st.lists(st.integers(0, 1500), max_size=8))
def test_framer_never_raises_anything_else(data: bytes, cuts: list[int]) -> None:
    framer = StreamFramer(max_buffer=4096)
    points = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    with contextlib.suppress(SipParseError):
        for a, b in pairwise(points):
            for m in framer.feed(data[a:b]):
                if m:
                    exercise(m)


_HOSTS = st.sampled_from(
    [b"192.0.2.1", b"[2001:db8::1]", b"proxy.example.com", b"[::ffff:1.2.3.4]"]
)
_PARAMS = st.lists(
    st.sampled_from([b";rport", b";rport=5060", b";received=192.0.2.9", b";alias", b";x=Y"]),
    max_size=3,
)


@FAST
@given(
    st.sampled_from(SEEDS),
    st.sampled_from([b"UDP", b"TCP", b"TLS", b"WS"]),
    _HOSTS,
    st.one_of(st.none(), st.integers(0, 65535)),
    st.text("abcdefXYZ0123456789-.", min_size=1, max_size=20),
    _PARAMS,
)
def test_remove_top_via_undoes_insert_via(
    seed: bytes,
    transport: bytes,
    host: bytes,
    port: int | None,
    branch: str,
    params: list[bytes],
) -> None:
    raw = parse_message(seed).raw
    value = b"SIP/2.0/%s %s%s;branch=z9hG4bK%s%s" % (
        transport,
        host,
        b"" if port is None else b":%d" % port,
        branch.encode(),
        b"".join(params),
    )
    out = insert_via(raw, value)
    top = parse_message(out).top_via()
    assert top.port == port
    assert top.branch == b"z9hG4bK" + branch.encode()
    assert remove_top_via(out) == raw
