"""MessageEditor, the functional wrappers, build_response and build_response_raw."""

from __future__ import annotations

import pytest

from sipguard.core.sip import (
    Hdr,
    MessageEditor,
    SipParseError,
    SipRequest,
    add_header,
    build_response,
    build_response_raw,
    decrement_max_forwards,
    insert_via,
    parse_message,
    reason_phrase,
    remove_headers,
    remove_top_via,
    set_request_uri,
)
from sipguard.core.sip.replies import STATUS_LINES
from tests.core.samples import SDP, invite, ok200, options, register

WSINV_LIKE = (
    b"INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\r\n"
    b"TO :\r\n sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\r\n"
    b'from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8\r\n'
    b"MaX-fOrWaRdS: 0068\r\n"
    b"Call-ID: wsinv.ndaksdj@192.0.2.1\r\n"
    b"cseq: 0009\r\n  INVITE\r\n"
    b"Via  : SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw\r\n"
    b"v:  SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n"
    b" SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239\r\n"
    b"Content-Length   : 4\r\n\r\n\x00\xff\r\n"
)


def req(data: bytes) -> SipRequest:
    m = parse_message(data)
    assert isinstance(m, SipRequest)
    return m


def test_no_edits_returns_raw() -> None:
    m = req(WSINV_LIKE)
    assert MessageEditor(m).build() is m.raw


def test_insert_via_and_remove_top_via_round_trip() -> None:
    for data in (WSINV_LIKE, invite(), register(), ok200(), options()):
        out = insert_via(data, b"SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKsg1")
        m = parse_message(out)
        assert m.top_via().host == b"203.0.113.1"
        assert len(m.vias()) == len(parse_message(data).vias()) + 1
        assert remove_top_via(out) == data


def test_insert_via_goes_before_the_first_via_line() -> None:
    out = insert_via(WSINV_LIKE, b"SIP/2.0/UDP 203.0.113.1")
    i = out.find(b"Via: SIP/2.0/UDP 203.0.113.1\r\nVia  : SIP")
    assert i > 0
    assert out.replace(b"Via: SIP/2.0/UDP 203.0.113.1\r\n", b"") == WSINV_LIKE


def test_remove_top_via_of_a_multi_value_line() -> None:
    out = remove_top_via(invite())
    assert b"Via: SIP/2.0/TCP [2001:db8::10]:5070;branch=z9hG4bK77ef4c2312983.1\r\n" in out
    m = parse_message(out)
    assert [v.host for v in m.vias()] == [b"2001:db8::10", b"198.51.100.7"]
    assert m.body == SDP
    # folded multi-value line of wsinv: first remove the single-value line, then one value
    once = remove_top_via(WSINV_LIKE)
    assert b"Via  :" not in once
    twice = remove_top_via(once)
    assert [v.host for v in parse_message(twice).vias()] == [b"192.168.255.111"]
    assert b"v:  SIP  /    2.0   / UDP  192.168.255.111" in twice
    thrice = remove_top_via(twice)
    with pytest.raises(SipParseError):
        parse_message(thrice)  # no Via left: missing Via


def test_set_via_param_replace_and_append() -> None:
    m = req(register())
    top = m.top_via()
    ed = MessageEditor(m)
    ed.set_via_param(top, b"received", b"198.51.100.77")
    ed.set_via_param(top, b"rport", b"40000")
    out = ed.build()
    assert (
        b"Via: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK776asdhds"
        b";rport=40000;received=198.51.100.77\r\n" in out
    )
    v = parse_message(out).top_via()
    assert (v.received, v.rport) == (b"198.51.100.77", 40000)
    assert out.replace(b"rport=40000;received=198.51.100.77", b"rport") == register()


def test_set_via_param_in_a_folded_multi_value_line() -> None:
    m = req(WSINV_LIKE)
    second = m.vias()[1]
    ed = MessageEditor(m)
    ed.set_via_param(second, b"branch", b"z9hG4bKnew")
    ed.set_via_param(second, b"received", b"192.0.2.99")
    m2 = parse_message(ed.build())
    v = m2.vias()[1]
    assert (v.branch, v.received, v.host) == (b"z9hG4bKnew", b"192.0.2.99", b"spindle.example.com")
    assert m2.vias()[2] == m.vias()[2]._replace(start=m2.vias()[2].start, end=m2.vias()[2].end)


def test_add_header_positions_and_call_order() -> None:
    m = req(options())
    ed = MessageEditor(m)
    ed.add_header(b"Record-Route", b"<sip:a;lr>", first=True)
    ed.add_header(b"Record-Route", b"<sip:b;lr>", first=True)
    ed.add_header(b"X-SIPGuard-Source", b"198.51.100.9:5060")
    ed.insert_via(b"SIP/2.0/UDP 203.0.113.1;branch=z9hG4bKsg")  # same position as `first`
    out = ed.build()
    assert out.startswith(
        b"OPTIONS sip:pbx.example.com SIP/2.0\r\n"
        b"Record-Route: <sip:a;lr>\r\nRecord-Route: <sip:b;lr>\r\n"
        b"Via: SIP/2.0/UDP 203.0.113.1;branch=z9hG4bKsg\r\nVia: "
    )
    assert out.endswith(b"Content-Length: 0\r\nX-SIPGuard-Source: 198.51.100.9:5060\r\n\r\n")
    m2 = parse_message(out)
    assert m2.get(Hdr.X_SIPGUARD_SOURCE) == b"198.51.100.9:5060"
    assert add_header(options(), b"X-A", b"1").endswith(b"X-A: 1\r\n\r\n")


def test_remove_headers_long_and_compact() -> None:
    data = options(extra=b"X-SIPGuard-Source: 1.2.3.4\r\nx-sipguard-source: 5.6.7.8\r\n")
    assert remove_headers(data, Hdr.X_SIPGUARD_SOURCE) == options()
    assert remove_headers(WSINV_LIKE, Hdr.VIA).count(b"SIP  /") == 0
    m = req(options(extra=b"X-Custom: 1\r\nx-custom : 2\r\n"))
    ed = MessageEditor(m)
    ed.remove_named(b"X-CUSTOM")
    assert ed.build() == options()


def test_remove_value() -> None:
    m = req(invite())
    routes = m.values(Hdr.ROUTE)
    ed = MessageEditor(m)
    ed.remove_value(routes[0])
    out = ed.build()
    assert b"Route: <sip:[2001:db8::10];lr>\r\n" in out
    ed = MessageEditor(m)
    ed.remove_value(routes[1])
    assert b"Route: <sip:192.0.2.10;lr>\r\n" in ed.build()
    ed = MessageEditor(m)
    ed.remove_value(routes[0])
    ed.remove_value(routes[1])
    with pytest.raises(ValueError, match="overlapping"):
        ed.build()
    allow = req(options(extra=b"Allow: A, B, C\r\n")).values(Hdr.ALLOW)
    ed = MessageEditor(req(options(extra=b"Allow: A, B, C\r\n")))
    ed.remove_value(allow[1])
    assert b"Allow: A, C\r\n" in ed.build()
    one = req(options(extra=b"Allow: A\r\n"))
    ed = MessageEditor(one)
    ed.remove_value(one.values(Hdr.ALLOW)[0])
    assert ed.build() == options()


def test_set_request_uri() -> None:
    out = set_request_uri(invite(), b"sip:bob@192.0.2.4:5080;transport=tcp")
    m = req(out)
    assert m.uri == b"sip:bob@192.0.2.4:5080;transport=tcp"
    assert out[out.find(b"\r\n") :] == invite()[invite().find(b"\r\n") :]
    with pytest.raises(TypeError):
        MessageEditor(parse_message(ok200())).set_request_uri(b"sip:x")


def test_decrement_max_forwards() -> None:
    assert req(decrement_max_forwards(register())).max_forwards() == 69
    out = decrement_max_forwards(options())
    assert out.endswith(b"Max-Forwards: 70\r\n\r\n")
    assert req(decrement_max_forwards(WSINV_LIKE)).max_forwards() == 67
    assert b"MaX-fOrWaRdS: 67\r\n" in decrement_max_forwards(WSINV_LIKE)
    with pytest.raises(ValueError, match="483"):
        decrement_max_forwards(options(extra=b"Max-Forwards: 0\r\n"))


def test_ensure_content_length() -> None:
    data = invite().replace(b"Content-Length: %d\r\n" % len(SDP), b"")
    ed = MessageEditor(parse_message(data))
    ed.ensure_content_length()
    out = ed.build()
    m = parse_message(out, datagram=False)
    assert m.content_length() == len(SDP)
    ed = MessageEditor(parse_message(invite()))
    ed.ensure_content_length()
    assert ed.build() == invite()


def test_replace_bounds_and_overlap() -> None:
    ed = MessageEditor(parse_message(options()))
    with pytest.raises(ValueError, match="outside"):
        ed.replace(5, 2, b"")
    with pytest.raises(ValueError, match="outside"):
        ed.insert(10_000, b"")
    ed.replace(0, 7, b"INFO")
    ed.insert(0, b"X")  # an insert at the start of a replaced span goes first
    assert ed.build().startswith(b"XINFO sip:")
    assert ed.message.raw == options()


def test_untouched_bytes_identical_with_binary_body() -> None:
    body = b"\x00\x01\r\n\xff" * 10
    data = invite(body=body, extra=b"X-Bin: \xe9\xff\r\n")
    out = remove_top_via(insert_via(data, b"SIP/2.0/UDP 203.0.113.1"))
    assert out == data
    m = parse_message(decrement_max_forwards(data))
    assert m.body == body
    assert m.get_named(b"X-Bin") == [b"\xe9\xff"]


# -- build_response -------------------------------------------------------------------------------


def test_build_response_copies_headers_verbatim() -> None:
    m = req(WSINV_LIKE)
    out = build_response(m, 483, to_tag=b"sg1")
    r = parse_message(out)
    assert out.startswith(b"SIP/2.0 483 Too Many Hops\r\nVia  : SIP  /   2.0\r\n /UDP\r\n")
    assert [v.branch for v in r.vias()] == [v.branch for v in m.vias()]
    assert r.from_addr() == m.from_addr()._replace(
        uri_start=r.from_addr().uri_start,
        uri_end=r.from_addr().uri_end,
        start=r.from_addr().start,
        end=r.from_addr().end,
    )
    assert r.to_addr().tag == b"1918181833n"  # had a tag: untouched
    assert r.call_id() == m.call_id()
    assert r.cseq() == (9, b"INVITE")
    assert out.endswith(b"Content-Length: 0\r\n\r\n")
    order = [h.slot for h in r.headers]
    assert order == [0, 0, 1, 2, 3, 4, 6]


def test_build_response_adds_to_tag_and_extra_headers() -> None:
    m = req(invite())
    out = build_response(
        m, 420, to_tag=b"abc", extra_headers=[(b"Unsupported", b"foo, bar"), (b"Retry-After", b"5")]
    )
    r = parse_message(out)
    assert r.to_addr().tag == b"abc"
    assert b"To: Bob <sip:bob@pbx.example.com>;tag=abc\r\n" in out
    assert out.endswith(b"Unsupported: foo, bar\r\nRetry-After: 5\r\nContent-Length: 0\r\n\r\n")
    assert out.startswith(b"SIP/2.0 420 Bad Extension\r\n")
    assert len(r.vias()) == 3
    no_tag = build_response(m, 100, to_tag=b"")
    assert parse_message(no_tag).to_addr().tag is None


def test_build_response_reason_and_status() -> None:
    m = req(options())
    assert build_response(m, 403, b"Go Away", to_tag=b"t").startswith(b"SIP/2.0 403 Go Away\r\n")
    assert build_response(m, 499, to_tag=b"t").startswith(b"SIP/2.0 499 Client Error\r\n")
    assert reason_phrase(503) == b"Service Unavailable"
    assert STATUS_LINES[200] == b"SIP/2.0 200 OK\r\n"
    for bad in (99, 700):
        with pytest.raises(ValueError, match="status"):
            build_response(m, bad, to_tag=b"t")
    with pytest.raises(ValueError, match="CR/LF"):
        build_response(m, 400, b"x\r\nVia: evil", to_tag=b"t")
    with pytest.raises(ValueError, match="CR/LF"):
        build_response(m, 400, to_tag=b"t", extra_headers=[(b"X", b"a\r\nb")])


def test_build_response_raw_for_unparseable_requests() -> None:
    bad = options().replace(b"SIP/2.0\r\n", b"SIP/7.0\r\n", 1)
    out = build_response_raw(bad, 505, to_tag=b"t1")
    assert out is not None
    r = parse_message(out)
    assert r.top_via().branch == b"z9hG4bKopt1"
    assert r.to_addr().tag == b"t1"
    assert out.startswith(b"SIP/2.0 505 Version Not Supported\r\n")
    folded = WSINV_LIKE.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1)
    out = build_response_raw(folded, 505, to_tag=b"t1")
    assert out is not None
    assert len(parse_message(out).vias()) == 3
    # never answered: responses, ACK, missing headers, bare LF, no header end
    assert build_response_raw(ok200(), 400, to_tag=b"t") is None
    assert (
        build_response_raw(options().replace(b"OPTIONS sip", b"ACK sip"), 400, to_tag=b"t") is None
    )
    no_call_id = options().replace(b"Call-ID: opt-1\r\n", b"")
    assert build_response_raw(no_call_id, 400, to_tag=b"t") is None
    assert build_response_raw(options(extra=b"X: a\nb\r\n"), 400, to_tag=b"t") is None
    assert build_response_raw(b"garbage", 400, to_tag=b"t") is None
    unterminated = options()[:-2]  # no blank line (RFC 4475 baddn): answered from whole lines
    out = build_response_raw(unterminated, 400, to_tag=b"t")
    assert out is not None
    assert parse_message(out).call_id() == b"opt-1"
    assert build_response_raw(options()[:-30], 400, to_tag=b"t") is None  # CSeq line cut
