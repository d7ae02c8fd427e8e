"""parse_message: start lines, header slots, framing, sanity checks and limits."""

from __future__ import annotations

from itertools import pairwise

import pytest

from sipguard.core.sip import (
    HEADER_IDS,
    MAX_HEADERS,
    MAX_MESSAGE_SIZE,
    MAX_URI_LENGTH,
    Hdr,
    Method,
    SipParseError,
    SipRequest,
    SipResponse,
    is_keepalive,
    parse_message,
)
from tests.core.samples import SDP, invite, ok200, options, register


def req(data: bytes, **kw: bool) -> SipRequest:
    msg = parse_message(data, **kw)
    assert isinstance(msg, SipRequest)
    return msg


def resp(data: bytes) -> SipResponse:
    msg = parse_message(data)
    assert isinstance(msg, SipResponse)
    return msg


def error(data: bytes, **kw: bool) -> SipParseError:
    with pytest.raises(SipParseError) as info:
        parse_message(data, **kw)
    return info.value


def test_request_line() -> None:
    m = req(invite())
    assert m.method is Method.INVITE
    assert m.method_raw == b"INVITE"
    assert m.uri == b"sip:bob@pbx.example.com"
    assert m.raw[m.uri_start : m.uri_end] == m.uri
    assert m.raw == invite()
    assert m.body == SDP
    assert m.raw[m.body_offset :] == SDP


def test_response_line() -> None:
    m = resp(ok200())
    assert (m.status, m.reason) == (200, b"OK")
    assert m.body == b""
    assert resp(ok200().replace(b"200 OK", b"100 ")).reason == b""
    assert resp(ok200().replace(b"200 OK", b"180")).reason == b""
    assert resp(ok200().replace(b"200 OK", b"486 Busy  Here ")).reason == b"Busy  Here "


@pytest.mark.parametrize("method", [m for m in Method if m is not Method.OTHER])
def test_known_methods(method: Method) -> None:
    data = options().replace(b"OPTIONS", method.value)
    assert req(data).method is method


def test_unknown_and_lowercase_methods_are_other() -> None:
    assert req(options().replace(b"OPTIONS", b"FOO")).method is Method.OTHER
    m = req(options().replace(b"OPTIONS", b"options"))  # methods are case-sensitive
    assert m.method is Method.OTHER
    assert m.method_raw == b"options"


def test_compact_and_long_names_share_slots() -> None:
    compact = {
        b"v": Hdr.VIA,
        b"f": Hdr.FROM,
        b"t": Hdr.TO,
        b"i": Hdr.CALL_ID,
        b"m": Hdr.CONTACT,
        b"l": Hdr.CONTENT_LENGTH,
        b"k": Hdr.SUPPORTED,
        b"s": Hdr.SUBJECT,
        b"e": Hdr.CONTENT_ENCODING,
        b"c": Hdr.CONTENT_TYPE,
        b"o": Hdr.EVENT,
        b"r": Hdr.REFER_TO,
        b"b": Hdr.REFERRED_BY,
        b"u": Hdr.ALLOW_EVENTS,
        b"x": Hdr.SESSION_EXPIRES,
        b"a": Hdr.ACCEPT_CONTACT,
        b"j": Hdr.REJECT_CONTACT,
        b"d": Hdr.REQUEST_DISPOSITION,
        b"y": Hdr.IDENTITY,
        b"n": Hdr.IDENTITY_INFO,
    }
    for name, slot in compact.items():
        assert HEADER_IDS[name] is slot
    assert HEADER_IDS[b"x-sipguard-source"] is Hdr.X_SIPGUARD_SOURCE
    data = (
        b"OPTIONS sip:a@example.com SIP/2.0\r\n"
        b"v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
        b"f: <sip:b@example.com>;tag=1\r\n"
        b"T: <sip:a@example.com>\r\n"
        b"I: compact-1\r\n"
        b"CSEQ: 1 OPTIONS\r\n"
        b"k: timer\r\n"
        b"X-SIPGuard-Source: 192.0.2.1:5060\r\n"
        b"x-sipguard-source: 192.0.2.2:5060\r\n"
        b"L: 0\r\n\r\n"
    )
    m = req(data)
    assert m.call_id() == b"compact-1"
    assert m.get(Hdr.SUPPORTED) == b"timer"
    assert m.get_all(Hdr.X_SIPGUARD_SOURCE) == [b"192.0.2.1:5060", b"192.0.2.2:5060"]
    assert m.content_length() == 0
    assert [h.slot for h in m.headers] == [0, 1, 2, 3, 4, 20, 38, 38, 6]
    assert m.headers[2].name == b"T"


def test_unknown_headers_are_other() -> None:
    m = req(options(extra=b"X-Custom: yes\r\nC%6Fntact: <sip:x@example.com>\r\n"))
    others = [h for h in m.headers if h.slot == Hdr.OTHER]
    assert [h.name for h in others] == [b"X-Custom", b"C%6Fntact"]
    assert m.get_named(b"x-custom") == [b"yes"]
    assert m.contacts() == []


def test_header_field_spans() -> None:
    data = options(extra=b"Subject :  hello there  \r\nEmpty:\r\nBlank:   \r\n")
    m = req(data)
    by_name = {h.name: h for h in m.headers}
    subj = by_name[b"Subject"]
    assert data[subj.start : subj.end] == b"Subject :  hello there  \r\n"
    assert data[subj.value_start : subj.value_end] == b"hello there"
    for name in (b"Empty", b"Blank"):
        h = by_name[name]
        assert h.value_start == h.value_end
        assert m.get_named(name) == [b""]
    assert m.get(Hdr.SUBJECT) == b"hello there"
    # the spans tile the header section exactly
    hs = m.headers
    assert hs[0].start == data.find(b"\r\n") + 2
    for a, b in pairwise(hs):
        assert a.end == b.start
    assert hs[-1].end == m.body_offset - 2


def test_folding() -> None:
    data = (
        b"OPTIONS sip:a@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1\r\n ;branch=z9hG4bK1\r\n"
        b"From: <sip:b@example.com>\r\n\t;tag=1\r\n"
        b"To:\r\n <sip:a@example.com>\r\n"
        b"Call-ID: fold-1\r\n"
        b"CSeq: 1\r\n  OPTIONS\r\n"
        b"Subject: one  \r\n   two\r\n\tthree\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    m = req(data)
    assert m.cseq() == (1, b"OPTIONS")
    assert m.get(Hdr.SUBJECT) == b"one two three"
    assert m.get(Hdr.TO) == b"<sip:a@example.com>"
    assert m.top_via().branch == b"z9hG4bK1"
    assert m.from_addr().tag == b"1"
    assert m.to_addr().uri == b"sip:a@example.com"
    to = m.headers[2]
    assert data[to.start : to.end] == b"To:\r\n <sip:a@example.com>\r\n"
    assert data[to.value_start : to.value_end] == b"<sip:a@example.com>"
    assert len(m.headers) == 7


def test_get_fast_path_returns_raw_value() -> None:
    m = req(register())
    assert m.get(Hdr.CALL_ID) == b"a84b4c76e66710@10.0.0.7"
    assert m.get(Hdr.ROUTE) is None
    assert m.get_all(Hdr.ROUTE) == []
    assert m.has(Hdr.CONTACT)
    assert not m.has(Hdr.ROUTE)
    assert m.count(Hdr.VIA) == 1


def test_leading_crlf_skipped() -> None:
    m = req(b"\r\n\r\n" + options())
    assert m.raw == options()


def test_keepalive() -> None:
    assert is_keepalive(b"\r\n\r\n")
    assert is_keepalive(b"\r\n")
    assert not is_keepalive(b"")
    assert not is_keepalive(options())
    assert error(b"\r\n\r\n").status_hint == 400


def test_non_utf8_and_nul_never_decoded() -> None:
    body = bytes(range(256)) * 2
    extra = b"X-Latin: caf\xe9 \x00 \xff\r\n"
    data = invite(body=body, extra=extra)
    m = req(data)
    assert m.body == body
    assert m.get_named(b"X-Latin") == [b"caf\xe9 \x00 \xff"]
    m2 = req(options(via=b"SIP/2.0/UDP 198.51.100.9;branch=z9hG4bK\xe9"))
    with pytest.raises(SipParseError):
        m2.vias()


# -- Content-Length ---------------------------------------------------------------------------


def test_datagram_without_content_length_takes_rest() -> None:
    data = invite().replace(b"Content-Length: %d\r\n" % len(SDP), b"")
    m = req(data)
    assert m.content_length() is None
    assert m.body == SDP
    assert error(data, datagram=False).status_hint == 400


def test_datagram_octets_after_body_are_cut() -> None:
    m = req(invite() + b"garbage after the body")
    assert m.raw == invite()
    assert m.body == SDP
    assert error(invite() + b"x", datagram=False).status_hint == 400
    assert req(invite(), datagram=False).raw == invite()


@pytest.mark.parametrize(
    ("value", "hint"),
    [(b"-1", 400), (b"abc", 400), (b"", 400), (b"1 2", 400), (b"+5", 400), (b"9" * 40, 400)],
)
def test_bad_content_length(value: bytes, hint: int) -> None:
    data = options().replace(b"Content-Length: 0", b"Content-Length: " + value)
    assert error(data).status_hint == hint


def test_content_length_larger_than_body() -> None:
    assert error(invite()[:-1]).status_hint == 400
    data = options().replace(b"Content-Length: 0", b"Content-Length: 70000")
    assert error(data).status_hint == 413


def test_content_length_leading_zeros() -> None:
    data = options().replace(b"Content-Length: 0", b"Content-Length: 000000000000000")
    assert req(data).content_length() == 0


def test_multiple_content_length() -> None:
    data = options(extra=b"l: 0\r\n")
    assert "Content-Length" in error(data).reason


# -- sanity checks ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [b"Via", b"From", b"To", b"Call-ID", b"CSeq"])
def test_mandatory_headers(name: bytes) -> None:
    lines = options().split(b"\r\n")
    data = b"\r\n".join(line for line in lines if not line.startswith(name + b":"))
    e = error(data)
    assert e.status_hint == 400
    assert "missing" in e.reason


def test_max_forwards_tolerated_absent() -> None:
    assert req(options()).max_forwards() is None
    assert req(register()).max_forwards() == 70
    assert req(options(extra=b"Max-Forwards: 0068\r\n")).max_forwards() == 68
    assert req(options(extra=b"Max-Forwards: 0\r\n")).max_forwards() == 0  # 483 is the proxy's
    assert error(options(extra=b"Max-Forwards: 256\r\n")).status_hint == 400
    assert error(options(extra=b"Max-Forwards: -1\r\n")).status_hint == 400
    assert error(options(extra=b"Max-Forwards: 1\r\nMax-Forwards: 2\r\n")).status_hint == 400


@pytest.mark.parametrize("name", [b"From", b"To", b"Call-ID", b"CSeq"])
def test_single_valued_headers_once(name: bytes) -> None:
    data = options()
    line = next(x for x in data.split(b"\r\n") if x.startswith(name + b":"))
    assert error(options(extra=line + b"\r\n")).status_hint == 400


def test_cseq_rules() -> None:
    assert req(options().replace(b"CSeq: 1", b"CSeq: 2147483647")).cseq()[0] == 2**31 - 1
    assert req(options().replace(b"CSeq: 1", b"CSeq: 0")).cseq()[0] == 0
    for bad in (b"CSeq: 2147483648", b"CSeq: -1", b"CSeq: x", b"CSeq: 1 OPTIONS extra"):
        data = options().replace(
            b"CSeq: 1 OPTIONS", bad + b" OPTIONS" if b"extra" not in bad else bad
        )
        assert error(data).status_hint == 400
    assert error(options().replace(b"CSeq: 1 OPTIONS", b"CSeq: 1")).status_hint == 400


def test_cseq_method_mismatch() -> None:
    assert error(options().replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE")).status_hint == 400
    data = options().replace(b"OPTIONS sip", b"NEWMETHOD sip")
    assert error(data).status_hint == 501  # RFC 4475 mismatch02
    # responses carry any CSeq method
    assert resp(ok200()).cseq() == (314159, b"INVITE")


@pytest.mark.parametrize(
    ("line", "hint"),
    [
        (b"OPTIONS sip:a@example.com SIP/3.0", 505),
        (b"OPTIONS sip:a@example.com SIP/7.0", 505),
        (b"OPTIONS sip:a@example.com HTTP/1.1", 400),
        (b"OPTIONS  sip:a@example.com SIP/2.0", 400),
        (b"OPTIONS sip:a@example.com SIP/2.0 ", 400),
        (b"OPTIONS sip:a@example.com", 400),
        (b"OPTIONS <sip:a@example.com> SIP/2.0", 400),
        (b"OPTIONS example.com SIP/2.0", 400),
        (b"OPT(IONS sip:a@example.com SIP/2.0", 400),
        (b"", 400),
    ],
)
def test_bad_request_lines(line: bytes, hint: int) -> None:
    data = options()
    data = line + data[data.find(b"\r\n") :]
    assert error(data).status_hint == hint


def test_version_case_insensitive() -> None:
    data = options()
    assert req(data.replace(b"SIP/2.0\r\n", b"sip/2.0\r\n", 1)).method is Method.OPTIONS


@pytest.mark.parametrize(
    ("line", "hint"),
    [
        (b"SIP/2.0 099 Nope", 400),
        (b"SIP/2.0 700 Nope", 400),
        (b"SIP/2.0 4294967301 big", 400),
        (b"SIP/2.0 20 OK", 400),
        (b"SIP/2.0 2x0 OK", 400),
        (b"SIP/2.0", 400),
        (b"SIP/3.0 200 OK", 505),
    ],
)
def test_bad_status_lines(line: bytes, hint: int) -> None:
    data = ok200()
    data = line + data[data.find(b"\r\n") :]
    assert error(data).status_hint == hint


def test_status_code_range_accepted() -> None:
    for code in (100, 199, 699):
        data = ok200().replace(b"200 OK", b"%d X" % code)
        assert resp(data).status == code


def test_unknown_scheme_parses() -> None:
    # 416 is the proxy's decision, not a parse error
    m = req(options().replace(b"sip:pbx.example.com", b"nobodyKnowsThisScheme:opaque", 1))
    assert m.uri == b"nobodyKnowsThisScheme:opaque"
    assert m.request_uri() is None
    m.validate()


def test_header_line_errors() -> None:
    assert error(options(extra=b"No colon here\r\n")).status_hint == 400
    assert error(options(extra=b"Bad Name: x\r\n")).status_hint == 400
    assert error(options(extra=b"Bad<Name>: x\r\n")).status_hint == 400
    assert error(options(extra=b": empty name\r\n")).status_hint == 400
    data = options()
    i = data.find(b"\r\n") + 2
    assert error(data[:i] + b" folded-first: x\r\n" + data[i:]).status_hint == 400


def test_bare_cr_or_lf_in_headers_rejected() -> None:
    for bad in (b"X-A: a\nX-SIPGuard-Source: 1.2.3.4\r\n", b"X-A: a\rb\r\n", b"X-A: \n\r\n"):
        assert error(options(extra=bad)).status_hint == 400
    # bare CR/LF in the body are fine
    assert req(invite(body=b"a\rb\nc\r")).body == b"a\rb\nc\r"


def test_no_end_of_headers() -> None:
    assert error(options()[:-2]).status_hint == 400
    assert error(b"").status_hint == 400
    assert error(b"garbage").status_hint == 400


# -- limits ------------------------------------------------------------------------------------


def test_message_size_limit() -> None:
    big = invite(body=b"x" * (MAX_MESSAGE_SIZE - len(invite(body=b"")) - 10))
    assert req(big).body.startswith(b"xxx")
    assert error(invite(body=b"x" * MAX_MESSAGE_SIZE)).status_hint == 513
    assert error(options(), max_size=100).status_hint == 513  # type: ignore[arg-type]


def test_header_count_limit() -> None:
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADERS))
    assert error(options(extra=many)).reason == "too many header fields"
    req(options(extra=many[: -len(b"X-H99: v\r\n") * 10]))


def test_header_line_and_section_limits() -> None:
    assert (
        error(options(extra=b"X-Long: " + b"a" * 9000 + b"\r\n")).reason == "header line too long"
    )
    lots = b"".join(b"X-H%d: %s\r\n" % (i, b"a" * 300) for i in range(60))
    assert error(options(extra=lots)).status_hint == 513


def test_long_start_line_without_headers() -> None:
    # a start line longer than MAX_HEADER_LINE and no header at all (found by review: max() of
    # an empty sequence raised ValueError before)
    assert error(b"SIP/2.0 200 " + b"x" * 9000 + b"\r\n\r\n").reason == "missing Via"
    assert error(b"X" * 9000 + b" sip:a SIP/2.0\r\n\r\n").reason == "missing Via"


def test_request_uri_limit() -> None:
    uri = b"sip:" + b"a" * MAX_URI_LENGTH + b"@example.com"
    data = options().replace(b"sip:pbx.example.com", uri, 1)
    assert error(data).status_hint == 414


def test_strict_runs_validate() -> None:
    data = options(via=b"SIP/2.0/UDP 192.0.2.1;;branch=z9hG4bK1")
    m = req(data)  # lazy: the Via is only parsed when asked
    with pytest.raises(SipParseError):
        m.vias()
    assert error(data, strict=True).status_hint == 400


def test_message_equality_is_by_bytes() -> None:
    assert parse_message(options()) == parse_message(options())
    assert parse_message(options()) != parse_message(register())
    assert "OPTIONS" in repr(parse_message(options()))
    assert "200" in repr(parse_message(ok200()))
