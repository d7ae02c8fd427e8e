"""URIs (RFC 3261 19.1, RFC 5118 IPv6, RFC 3966 tel) and the fast/general parser agreement."""

from __future__ import annotations

import pytest

from sipguard.core.sip import (
    OtherUri,
    SipParseError,
    SipUri,
    TelUri,
    format_host,
    parse_name_addr,
    parse_uri,
    parse_via,
    split_host_port,
)
from sipguard.core.sip.uri import (
    _parse_name_addr,
    _parse_via,
    name_addr_from_line,
    split_list,
    unquote,
    via_from_line,
)


def sip(data: bytes) -> SipUri:
    u = parse_uri(data)
    assert isinstance(u, SipUri)
    return u


def test_sip_uri_parts() -> None:
    u = sip(b"sips:alice:secret@example.com:5061;transport=tls;LR;maddr=x?subject=hi&x=y")
    assert u.scheme == b"sips"
    assert (u.user, u.password, u.host, u.port) == (b"alice", b"secret", b"example.com", 5061)
    assert u.params == ((b"transport", b"tls"), (b"lr", None), (b"maddr", b"x"))
    assert u.headers == b"subject=hi&x=y"
    assert u.param(b"transport") == b"tls"
    assert u.param(b"lr") is None
    assert u.has_param(b"lr")
    assert not u.has_param(b"ttl")
    assert u.host_port() == b"example.com:5061"


def test_sip_uri_minimal_and_case() -> None:
    u = sip(b"SIP:example.com")
    assert (u.scheme, u.user, u.host, u.port, u.params, u.headers) == (
        b"sip",
        None,
        b"example.com",
        None,
        (),
        None,
    )
    assert u.host_port() == b"example.com"


@pytest.mark.parametrize(
    ("uri", "host", "port"),
    [
        (b"sip:[2001:db8::10]", b"2001:db8::10", None),
        (b"sip:[2001:db8::10]:5070", b"2001:db8::10", 5070),
        (b"sip:[2001:db8::10:5070]", b"2001:db8::10:5070", None),  # RFC 5118 4.3: no port
        (b"sip:user@[::ffff:192.0.2.2]", b"::ffff:192.0.2.2", None),
        (b"sip:user@[2001:db8:::192.0.2.1]", b"2001:db8:::192.0.2.1", None),  # 4.10 tolerated
        (b"sip:user@[2001:db8::1];transport=tcp", b"2001:db8::1", None),
    ],
)
def test_ipv6_uris(uri: bytes, host: bytes, port: int | None) -> None:
    u = sip(uri)
    assert (u.host, u.port) == (host, port)
    assert u.host_port().startswith(b"[")


def test_user_part_with_reserved_characters() -> None:
    u = sip(b"sip:user;par=u%40example.net@example.com")  # RFC 4475 semiuri
    assert (u.user, u.host, u.params) == (b"user;par=u%40example.net", b"example.com", ())
    u = sip(b"sip:sips%3Auser%40example.com@example.net")  # esc01: escapes kept raw
    assert u.user == b"sips%3Auser%40example.com"
    u = sip(b"sip:%00@host5.example.com")  # escnull: %00 is text
    assert u.user == b"%00"
    u = sip(b"sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d@x.com")
    assert u.user == b"1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert u.password == b"&it+has=1,weird!*pas$wo~d"


@pytest.mark.parametrize(
    "uri",
    [
        b"sip:2001:db8::10",  # RFC 5118 4.2: must not guess
        b"sip:",
        b"sip:@example.com",
        b"sip:a@",
        b"sip:a@host:99999",
        b"sip:a@host:port",
        b"sip:a@[2001:db8::1",
        b"sip:a@[2001:db8::1]x",
        b"sip:a@ho st",
        b"sip:a@host;;lr",
        b"sip:<a@host>",
        b"example.com",
        b":x",
        b"1sip:x",
        b"tel:",
        b"tel:;phone-context=x",
    ],
)
def test_bad_uris(uri: bytes) -> None:
    with pytest.raises(SipParseError):
        parse_uri(uri)


def test_tel_and_other_uris() -> None:
    t = parse_uri(b"tel:+1-201-555-0123;phone-context=example.com")
    assert isinstance(t, TelUri)
    assert t.number == b"+1-201-555-0123"
    assert t.params == ((b"phone-context", b"example.com"),)
    o = parse_uri(b"soap.beep://192.0.2.103:3002")
    assert o == OtherUri(b"soap.beep", b"soap.beep://192.0.2.103:3002")
    o = parse_uri(b"nobodyKnowsThisScheme:totallyopaquecontent")
    assert isinstance(o, OtherUri)
    assert o.scheme == b"nobodyknowsthisscheme"


def test_split_host_port_and_format_host() -> None:
    assert split_host_port(b"192.0.2.1:5060") == (b"192.0.2.1", 5060)
    assert split_host_port(b"[2001:db8::1]:5060") == (b"2001:db8::1", 5060)
    assert split_host_port(b"example.com") == (b"example.com", None)
    assert format_host(b"2001:db8::1") == b"[2001:db8::1]"
    assert format_host(b"192.0.2.1") == b"192.0.2.1"
    for bad in (b"", b":5060", b"[]", b"[1.2.3.4]", b"a b", b"h:-1"):
        with pytest.raises(SipParseError):
            split_host_port(bad)


def test_unquote_and_split_list() -> None:
    assert unquote(b'"a\\"b\\\\c"') == b'a"b\\c'
    assert unquote(b"token") == b"token"
    raw = b'a, "b,c" ,<d,e>,, f'
    spans = split_list(raw, 0, len(raw))
    assert [raw[s:e] for s, e in spans] == [b"a", b'"b,c"', b"<d,e>", b"", b"f"]
    with pytest.raises(SipParseError):
        split_list(b'"open, x', 0, 8)
    with pytest.raises(SipParseError):
        split_list(b"<open, x", 0, 8)


CANONICAL_VIAS = [
    b"SIP/2.0/UDP 192.0.2.1",
    b"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport",
    b"SIP/2.0/TCP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111;received=192.0.2.200",
    b"SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKas3",
    b"SIP/2.0/tls host.example.com;BRANCH=z9hG4bK1;rport=5070;x",
]


@pytest.mark.parametrize("via", CANONICAL_VIAS)
def test_via_fast_path_equals_general_parser(via: bytes) -> None:
    raw = b"xx" + via + b"yy"
    fast = parse_via(raw, 2, 2 + len(via))
    assert fast == _parse_via(raw, 2, 2 + len(via))
    assert via_from_line(b"Via:  " + via, 100) == fast._replace(start=106, end=106 + len(via))


CANONICAL_ADDRS = [
    b"<sip:a@example.com>",
    b'"Alice" <sip:alice@example.com>;tag=1928301774',
    b'"A \\"q\\"" <sip:a@[2001:db8::1]:5070;lr>;tag=x;q=0.5;flag',
    b"Bob Smith <sip:b@example.com;transport=tcp>",
    b"sip:a@example.com;tag=x",
    b"tel:+15551234",
]


@pytest.mark.parametrize("addr", CANONICAL_ADDRS)
def test_name_addr_fast_path_equals_general_parser(addr: bytes) -> None:
    raw = b"xx" + addr + b"yy"
    fast = parse_name_addr(raw, 2, 2 + len(addr))
    assert fast == _parse_name_addr(raw, 2, 2 + len(addr))
    shifted = name_addr_from_line(b"To: " + addr, 100)
    assert shifted is not None
    assert (shifted.uri_start, shifted.start) == (fast.uri_start + 102, fast.start + 102)
