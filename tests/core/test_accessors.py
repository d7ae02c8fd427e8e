"""The lazy accessors: Via, name-addr headers, CSeq, credentials, list values."""

from __future__ import annotations

import pytest

from sipguard.core.sip import (
    MAX_VIA_VALUES,
    Hdr,
    SipParseError,
    SipRequest,
    SipResponse,
    parse_message,
)
from tests.core.samples import invite, ok200, options, register


def req(data: bytes) -> SipRequest:
    msg = parse_message(data)
    assert isinstance(msg, SipRequest)
    return msg


def opt_via(via: bytes) -> SipRequest:
    return req(options(via=via))


# -- Via ----------------------------------------------------------------------------------------


def test_vias_several_per_line_and_across_lines() -> None:
    m = req(invite())
    vias = m.vias()
    assert [v.host for v in vias] == [b"192.0.2.10", b"2001:db8::10", b"198.51.100.7"]
    assert [v.transport for v in vias] == [b"UDP", b"TCP", b"UDP"]
    assert [v.port for v in vias] == [5070, 5070, None]
    assert vias[0].received == b"192.0.2.10"
    assert vias[1].sent_by_host_raw == b"[2001:db8::10]"
    assert vias[2].rport == 5062
    assert vias[2].has_rport
    assert m.top_via() is vias[0]
    for v in vias:
        assert v.protocol == b"SIP/2.0"
        text = m.raw[v.start : v.end]
        assert text.startswith(b"SIP/2.0/")
        name, value = v.params[-1]
        assert text.endswith(name + b"=" + (value or b""))
    assert m.vias() is vias  # cached


def test_via_rport_present_empty_vs_value() -> None:
    v = req(register()).top_via()
    assert v.has_rport
    assert v.rport is None
    assert v.params == ((b"branch", b"z9hG4bK776asdhds"), (b"rport", None))
    v = opt_via(b"SIP/2.0/UDP 192.0.2.1;rport=5090;branch=z9hG4bKx").top_via()
    assert (v.has_rport, v.rport) == (True, 5090)
    v = opt_via(b"SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx").top_via()
    assert (v.has_rport, v.rport) == (False, None)
    with pytest.raises(SipParseError):
        opt_via(b"SIP/2.0/UDP 192.0.2.1;rport=99999").vias()
    with pytest.raises(SipParseError):
        opt_via(b"SIP/2.0/UDP 192.0.2.1;rport=abc").vias()


@pytest.mark.parametrize(
    ("via", "host", "port"),
    [
        (b"SIP/2.0/UDP [2001:db8::10]:5070;branch=z9hG4bK1", b"2001:db8::10", 5070),
        (b"SIP/2.0/UDP [2001:db8::10];branch=z9hG4bK1", b"2001:db8::10", None),
        (b"SIP/2.0/UDP [::ffff:192.0.2.10]:19823;branch=z9hG4bK1", b"::ffff:192.0.2.10", 19823),
        (b"SIP/2.0/UDP [2001:db8:::192.0.2.1];branch=z9hG4bK1", b"2001:db8:::192.0.2.1", None),
        (b"SIP/2.0/TLS host.example.com:5061;branch=z9hG4bK1", b"host.example.com", 5061),
        (b"SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK1", b"df7jal23ls0d.invalid", None),
        (b"SIP/2.0/udp 192.0.2.1:0;branch=z9hG4bK1", b"192.0.2.1", 0),
    ],
)
def test_via_sent_by(via: bytes, host: bytes, port: int | None) -> None:
    v = opt_via(via).top_via()
    assert (v.host, v.port) == (host, port)
    assert v.transport == v.transport.upper()


def test_via_received_ipv6_with_and_without_brackets() -> None:
    a = opt_via(b"SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKa")
    b = opt_via(b"SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKa")
    for m in (a, b):
        v = m.top_via()
        assert v.received == b"2001:db8::9:255"
        assert v.branch == b"z9hG4bKa"


def test_via_with_lws_everywhere() -> None:
    via = b"SIP  /   2.0\r\n /UDP\r\n    192.0.2.2 : 5080 ;  branch = z9hG4bK9ikj8 ; rport"
    v = opt_via(via).top_via()
    assert (v.protocol, v.transport, v.host, v.port) == (b"SIP/2.0", b"UDP", b"192.0.2.2", 5080)
    assert (v.branch, v.has_rport) == (b"z9hG4bK9ikj8", True)


def test_via_params_names_lowercased_values_kept() -> None:
    v = opt_via(b"SIP/2.0/UDP 192.0.2.1;BRANCH=z9hG4bKAbC;Received=192.0.2.9;X-Y").top_via()
    assert v.params == ((b"branch", b"z9hG4bKAbC"), (b"received", b"192.0.2.9"), (b"x-y", None))
    assert v.branch == b"z9hG4bKAbC"
    assert v.param(b"x-y") is None
    assert v.param(b"received") == b"192.0.2.9"


def test_via_quoted_param() -> None:
    v = opt_via(b'SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1;x="a;b, c"').top_via()
    assert v.params[-1] == (b"x", b'"a;b, c"')


@pytest.mark.parametrize(
    "via",
    [
        b"SIP/2.0/UDP",
        b"SIP/2.0 192.0.2.1",
        b"SIP/2.0/UDP 192.0.2.1;;branch=z9hG4bK1",
        b"SIP/2.0/UDP 192.0.2.1;branch=",
        b"SIP/2.0/UDP 192.0.2.1:99999",
        b"SIP/2.0/UDP 192.0.2.1:",
        b"SIP/2.0/UDP 2001:db8::1",
        b"SIP/2.0/UDP [2001:db8::1",
        b"SIP/2.0/UDP [192.0.2.1]",
        b"SIP/2.0/UDP host name",
        b"SIP/2.0/UDP 192.0.2.1;branch=a b",
        b"SIP/2.0/UDP 192.0.2.1,,SIP/2.0/UDP 192.0.2.2",
        b'SIP/2.0/UDP 192.0.2.1;x="unterminated',
    ],
)
def test_bad_vias(via: bytes) -> None:
    m = opt_via(via)
    with pytest.raises(SipParseError):
        m.vias()
    with pytest.raises(SipParseError):
        m.validate()


def test_via_count_limit() -> None:
    many = b", ".join(b"SIP/2.0/UDP 192.0.2.%d;branch=z9hG4bK%d" % (i % 250, i) for i in range(71))
    with pytest.raises(SipParseError):
        opt_via(many).vias()
    ok = b", ".join(b"SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK%d" % i for i in range(MAX_VIA_VALUES))
    assert len(opt_via(ok).vias()) == MAX_VIA_VALUES


def test_response_vias() -> None:
    m = parse_message(ok200())
    assert isinstance(m, SipResponse)
    assert [v.branch for v in m.vias()] == [b"z9hG4bKsg1234", b"z9hG4bKfirst"]
    assert m.vias()[1].rport == 5062


# -- From / To / Contact / Route ------------------------------------------------------------------


def test_from_to() -> None:
    m = req(invite())
    f = m.from_addr()
    assert f.display == b'Alice "A" Liddell'
    assert f.uri == b"sip:alice@example.com"
    assert m.raw[f.uri_start : f.uri_end] == f.uri
    assert f.tag == b"1928301774"
    assert m.raw[f.start : f.end] == m.get(Hdr.FROM)
    t = m.to_addr()
    assert (t.display, t.uri, t.tag) == (b"Bob", b"sip:bob@pbx.example.com", None)
    assert m.from_addr() is f


@pytest.mark.parametrize(
    ("value", "display", "uri", "params", "tag"),
    [
        (b"<sip:a@example.com>", None, b"sip:a@example.com", (), None),
        (b"sip:a@example.com;tag=x", None, b"sip:a@example.com", ((b"tag", b"x"),), b"x"),
        (b"sip:a@example.com ; tag = x", None, b"sip:a@example.com", ((b"tag", b"x"),), b"x"),
        (b'"" <sip:a@example.com>', b"", b"sip:a@example.com", (), None),
        (
            b"caller<sip:c@example.com>;tag=3",
            b"caller",
            b"sip:c@example.com",
            ((b"tag", b"3"),),
            b"3",
        ),
        (b"A  B <sip:a@example.com>", b"A  B", b"sip:a@example.com", (), None),
        (b'"J \\\\\\"" <sip:j@example.com>', b'J \\"', b"sip:j@example.com", (), None),
        (
            b'"x" <sip:a@example.com;lr>;TAG=T1;q=0.5;flag',
            b"x",
            b"sip:a@example.com;lr",
            ((b"tag", b"T1"), (b"q", b"0.5"), (b"flag", None)),
            b"T1",
        ),
        (b"<sip:a@[2001:db8::1]:5070>", None, b"sip:a@[2001:db8::1]:5070", (), None),
        (b"tel:+15551234", None, b"tel:+15551234", (), None),
        (
            b"<http://www.example.com>;tag=9",
            None,
            b"http://www.example.com",
            ((b"tag", b"9"),),
            b"9",
        ),
        (b'<sip:a@example.com>;x="q;,<>"', None, b"sip:a@example.com", ((b"x", b'"q;,<>"'),), None),
        (
            b'"Bell, Alexander" <sip:a@example.com>',
            b"Bell, Alexander",
            b"sip:a@example.com",
            (),
            None,
        ),
    ],
)
def test_name_addr_forms(
    value: bytes,
    display: bytes | None,
    uri: bytes,
    params: tuple[tuple[bytes, bytes | None], ...],
    tag: bytes | None,
) -> None:
    m = req(options().replace(b"To: <sip:pbx.example.com>", b"To: " + value))
    t = m.to_addr()
    assert (t.display, t.uri, t.params, t.tag) == (display, uri, params, tag)
    assert m.raw[t.uri_start : t.uri_end] == uri
    assert m.raw[t.start : t.end] == value


@pytest.mark.parametrize(
    "value",
    [
        b'"Mr. J. User <sip:j.user@example.com>',  # quotbal
        b"Bell, Alexander <sip:a@example.com>",  # baddn
        b'"W" < sip:t@example.org >',  # badaspec
        b"sip:user@example.com?Route=%3Csip:x%3E",  # regbadct (in To here)
        b"<sip:a@example.com",
        b"<sip:a@example.com> junk",
        b"<sip:a@example.com>;;tag=1",
        b"<noscheme>",
        b"just-a-name",
        b'"x" sip:a@example.com',
    ],
)
def test_bad_name_addrs(value: bytes) -> None:
    m = req(options().replace(b"To: <sip:pbx.example.com>", b"To: " + value))
    with pytest.raises(SipParseError):
        m.to_addr()
    with pytest.raises(SipParseError):
        m.validate()


def test_contacts_list_and_star() -> None:
    m = req(
        register(
            extra=b'Contact: "Desk" <sip:b@192.0.2.2>;q=0.1, sip:c@192.0.2.3;expires=60\r\n'
            b"m: <sip:d@[2001:db8::4]>\r\n"
        )
    )
    cs = m.contacts()
    assert [c.uri for c in cs][1:] == [
        b"sip:b@192.0.2.2",
        b"sip:c@192.0.2.3",
        b"sip:d@[2001:db8::4]",
    ]
    assert cs[0].uri == b"sip:alice@10.0.0.7:5060"
    assert cs[0].params == ((b"expires", b"3600"),)
    assert not m.is_star_contact()
    star = req(register().replace(b"<sip:alice@10.0.0.7:5060>;expires=3600", b"*"))
    assert star.contacts() == []
    assert star.is_star_contact()
    mixed = req(register(extra=b"Contact: *\r\n"))
    with pytest.raises(SipParseError):
        mixed.contacts()


def test_display_with_comma_in_contact_list() -> None:
    m = req(register(extra=b'Contact: "Bell, A" <sip:b@192.0.2.2>, <sip:c@192.0.2.3>\r\n'))
    assert [c.display for c in m.contacts()] == [None, b"Bell, A", None]


def test_routes_and_record_routes() -> None:
    m = req(invite(extra=b"Record-Route: <sip:p1.example.com;lr>\r\nRoute: <sip:p2;lr>\r\n"))
    assert [r.uri for r in m.routes()] == [
        b"sip:192.0.2.10;lr",
        b"sip:[2001:db8::10];lr",
        b"sip:p2;lr",
    ]
    assert [r.uri for r in m.record_routes()] == [b"sip:p1.example.com;lr"]
    vals = m.values(Hdr.ROUTE)
    assert [v.text for v in vals] == [
        b"<sip:192.0.2.10;lr>",
        b"<sip:[2001:db8::10];lr>",
        b"<sip:p2;lr>",
    ]
    assert [(v.field_index, v.index_in_field) for v in vals] == [(3, 0), (3, 1), (12, 0)]
    for v in vals:
        assert m.raw[v.start : v.end] == v.text


def test_values_split_outside_quotes_and_brackets() -> None:
    m = req(
        options(extra=b'Allow: INVITE,ACK , ,BYE\r\nAccept-Contact: *;x="a,b", <sip:a,b@x>\r\n')
    )
    assert [v.text for v in m.values(Hdr.ALLOW)] == [b"INVITE", b"ACK", b"BYE"]
    assert [v.index_in_field for v in m.values(Hdr.ALLOW)] == [0, 1, 2]
    assert [v.text for v in m.values(Hdr.ACCEPT_CONTACT)] == [b'*;x="a,b"', b"<sip:a,b@x>"]
    assert m.values(Hdr.REQUIRE) == []


def test_values_of_folded_lines_are_unfolded_and_keep_their_spans() -> None:
    m = req(
        options(
            extra=b"Route: <sip:a;lr>,\r\n <sip:b;lr>\r\nSubject: one\r\n\ttwo\r\n"
            b"Route: <sip:c;lr>\r\nAllow: A,\r\n  B\r\n"
        )
    )
    assert [v.text for v in m.values(Hdr.ROUTE)] == [b"<sip:a;lr>", b"<sip:b;lr>", b"<sip:c;lr>"]
    assert [v.text for v in m.values(Hdr.SUBJECT)] == [b"one two"]
    assert [v.text for v in m.values(Hdr.ALLOW)] == [b"A", b"B"]
    subject = m.values(Hdr.SUBJECT)[0]
    assert m.raw[subject.start : subject.end] == b"one\r\n\ttwo"


# -- scalars -------------------------------------------------------------------------------------


def test_scalars() -> None:
    m = req(register())
    assert m.call_id() == b"a84b4c76e66710@10.0.0.7"
    assert m.cseq() == (2, b"REGISTER")
    assert m.max_forwards() == 70
    assert m.content_length() == 0
    assert m.user_agent() == b"Linphone/5.2.0"
    assert req(options()).user_agent() is None


def test_call_id_folded() -> None:
    m = req(options().replace(b"Call-ID: opt-1", b"Call-ID:\r\n opt-1"))
    assert m.call_id() == b"opt-1"


# -- credentials ---------------------------------------------------------------------------------


def test_credentials_authorization() -> None:
    c = req(register()).credentials()
    assert c is not None
    assert (c.header, c.scheme, c.username, c.realm) == (
        Hdr.AUTHORIZATION,
        b"Digest",
        b"alice",
        b"pbx.example.com",
    )
    assert c.is_digest
    assert req(register(auth=False)).credentials() is None


@pytest.mark.parametrize(
    ("value", "scheme", "user", "realm"),
    [
        (b'DIGEST USERNAME="bob", REALM="r"', b"DIGEST", b"bob", b"r"),
        (
            b'digest realm="r", username="b\\"o\\\\b", nonce="n,username=x"',
            b"digest",
            b'b"o\\b',
            b"r",
        ),
        (b"Digest username=bob,realm=r", b"Digest", b"bob", b"r"),
        (b'Digest nonce="a, username=\\"evil\\"", username="good"', b"Digest", b"good", None),
        (b"NoOneKnowsThisScheme opaque-data=here", b"NoOneKnowsThisScheme", None, None),
        (b"Basic YWxhZGRpbjpvcGVuc2VzYW1l", b"Basic", None, None),
        (b'Digest username="unterminated', b"Digest", None, None),
        (b'Digest username="a" junk, realm="r"', b"Digest", None, None),
        (b"Digest", b"Digest", None, None),
        (b'Digest\r\n username="folded", realm="r"', b"Digest", b"folded", b"r"),
        (b'Digest username="caf\xe9\x00"', b"Digest", b"caf\xe9\x00", None),
    ],
)
def test_credentials_forms(
    value: bytes, scheme: bytes, user: bytes | None, realm: bytes | None
) -> None:
    m = req(options(extra=b"Proxy-Authorization: " + value + b"\r\n"))
    c = m.credentials()
    assert c is not None
    assert c.header is Hdr.PROXY_AUTHORIZATION
    assert (c.scheme, c.username, c.realm) == (scheme, user, realm)


def test_authorization_preferred_over_proxy_authorization() -> None:
    m = req(register(extra=b'Proxy-Authorization: Digest username="other"\r\n'))
    c = m.credentials()
    assert c is not None
    assert (c.header, c.username) == (Hdr.AUTHORIZATION, b"alice")
