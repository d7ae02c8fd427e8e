"""The parser's fast paths give exactly what the general code gives.

The fast paths: whole header values matched by one regex (Via, name-addr), the common SIP URI,
Via parameter spans without LWS, the header-name spelling table, the small-number table. Each
test compares a fast path with the general code on the same input, or checks that an input the
fast path does not take still gives the general result.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sipguard.core.sip.parser as parser_module
from sipguard.core.sip import (
    Hdr,
    SipParseError,
    SipRequest,
    parse_message,
    parse_name_addr,
    parse_uri,
    parse_via,
)
from sipguard.core.sip.uri import (
    OtherUri,
    SipUri,
    TelUri,
    _param_spans,
    _parse_name_addr,
    _parse_uri,
    _parse_via,
    name_addr_value,
    param_spans,
    via_value,
)
from tests.core.samples import VALID, invite, options, register
from tests.core.torture_cases import PARSER, Valid
from tests.core.torture_paths import load, message_names

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _general_via(v: bytes, base: int) -> object:
    """What the general Via parser makes of value `v` at offset `base` (or its error)."""
    raw = b"x" * base + v
    try:
        return _parse_via(raw, base, base + len(v.rstrip(b" \t")))
    except SipParseError as exc:
        return exc.reason


def _fast_via(v: bytes, base: int) -> object:
    try:
        return via_value(v, base)
    except SipParseError as exc:
        return exc.reason


VALUE_VIAS = [
    b"SIP/2.0/UDP 192.0.2.1",
    b"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport",
    b"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds",
    b"SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bK776asdhds",
    b"SIP/2.0/udp h.example.com;branch=z9hG4bK1;rport=5070;received=198.51.100.7",
    b"SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bKn6;received=198.51.100.7;rport=40112",
    b"SIP/2.0/TCP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111;received=192.0.2.200",
    b"SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKas3",
    b"SIP/2.0/UDP h;branch=x;rport;a=1",
    b"SIP/2.0/UDP h;branch=x;sgl=0",
    b"SIP/2.0/UDP h;a;b;c;d;e;f=1;branch=last",
    b"SIP/2.0/UDP h;branch=a;branch=b",
    b"SIP/2.0/UDP h;maddr=[2001:db8::1];ttl=1 \t",
    b"SIP/2.0/UDP h:65535;rport=65535",
    # the NAT-fixed shape (branch, then rport=n and received) and its near misses
    b"SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-0-1-0;rport=5060;received=198.51.100.7",
    b"SIP/2.0/UDP h;branch=x;rport=00070;received=[2001:db8::9:255] ",
    b"SIP/2.0/UDP h;branch=x;rport=65535;received=[bad",
    b"SIP/2.0/UDP h;branch=x;rport=1;received=a;rport=2",
    b"SIP/2.0/UDP h;branch=x;rport=1;received=a;branch=y",
    b"SIP/2.0/UDP h;branch=x;rport=1",
    b"SIP/2.0/UDP h;branch=x;received=a;rport=1",
]


@pytest.mark.parametrize("value", VALUE_VIAS)
def test_via_value_fast_path_equals_general_parser(value: bytes) -> None:
    fast = via_value(value, 40)
    assert fast is not None
    assert fast == _general_via(value, 40)


@pytest.mark.parametrize(
    "value",
    [
        b"SIP/2.0/UDP h;BRANCH=x",  # upper-case name: needs lower()
        b"SIP/2.0/UDP h ;branch=x",  # LWS
        b'SIP/2.0/UDP h;x="q"',  # quoted value
        b"SIP/2.0/UDP h;branch=x, SIP/2.0/UDP g",  # a list
        b"SIP / 2.0 / UDP h",
        b"SIP/2.0/UDP h;branch=",
        b"SIP/2.0/UDP h:123456",
    ],
)
def test_via_value_declines_what_it_does_not_handle(value: bytes) -> None:
    assert via_value(value, 0) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"SIP/2.0/UDP h:65536", "port out of range"),
        (b"SIP/2.0/UDP [1.2.3.4]", "bad IPv6 reference"),
        (b"SIP/2.0/UDP h;rport=x", "bad port"),
        (b"SIP/2.0/UDP h;branch=x;rport=65536;received=a", "port out of range"),
    ],
)
def test_via_value_errors_match_the_general_parser(value: bytes, reason: str) -> None:
    assert _fast_via(value, 0) == reason == _general_via(value, 0)


_LC_NAME = st.sampled_from(
    [b"branch", b"rport", b"received", b"maddr", b"ttl", b"x", b"sgl", b"alias", b"+sip.i"]
)
_PVALUE = st.sampled_from(
    [b"z9hG4bK-1a", b"1", b"5060", b"65535", b"[2001:db8::1]", b"192.0.2.1", b"A:B", b"x.y"]
)
_PARAM = st.builds(
    lambda name, value: b";" + name + (b"" if value is None else b"=" + value),
    _LC_NAME,
    st.none() | _PVALUE,
)


@FAST
@given(
    st.sampled_from([b"UDP", b"udp", b"TCP", b"TLS", b"WS"]),
    st.sampled_from([b"192.0.2.1", b"h.example.com", b"[2001:db8::1]", b"h_1"]),
    st.sampled_from([b"", b":5060", b":0", b":65535"]),
    st.lists(_PARAM, max_size=7),
    st.sampled_from([b"", b" ", b"\t "]),
)
def test_via_value_agrees_with_the_general_parser(
    transport: bytes, host: bytes, port: bytes, params: list[bytes], tail: bytes
) -> None:
    names = [p.partition(b"=")[0] for p in params]
    if names.count(b";rport") > 1:
        return  # duplicate rport: see test_duplicate_rport_fast_paths_keep_the_last_one
    value = b"SIP/2.0/" + transport + b" " + host + port + b"".join(params) + tail
    fast = _fast_via(value, 7)
    assert fast is not None
    assert fast == _general_via(value, 7)


def test_duplicate_rport_fast_paths_keep_the_last_one() -> None:
    # the regex fast paths (old and new) take the last rport parameter as a whole; the
    # general parser keeps the last rport *value*; pinned so a change is a decision
    via = via_value(b"SIP/2.0/UDP h;rport=1;rport", 0)
    assert via is not None
    assert (via.rport, via.has_rport) == (None, True)
    msg = parse_message(options(via=b"SIP/2.0/UDP h;rport=1;rport"))
    assert msg.top_via().rport is None


VALUE_ADDRS = [
    b"<sip:a@example.com>",
    b"<sip:a@example.com> \t",
    b'"Alice" <sip:alice@example.com>;tag=1928301774',
    b'"A \\"q\\"" <sip:a@[2001:db8::1]:5070;lr>;tag=x;q=0.5;flag',
    b"Bob Smith <sip:b@example.com;transport=tcp>",
    b"Bob  Smith  <sip:b@example.com>;tag=a;tag=b",
    b"<sip:201@10.0.0.7:5060>;expires=3600",
    b"<sip:201@10.0.0.7:5060>;expires=3600;+sip.instance=x;reg-id=1",
    b"<sip:a>;tag;tag=x",
    b"<sip:a>;x=1;tag=y",
    b'"a,b" <sip:a,b@x>',
    b"<tel:+15551234>",
]


@pytest.mark.parametrize("value", VALUE_ADDRS)
def test_name_addr_value_fast_path_equals_general_parser(value: bytes) -> None:
    fast = name_addr_value(value, 30)
    assert fast is not None
    raw = b"x" * 30 + value
    assert fast == _parse_name_addr(raw, 30, 30 + len(value.rstrip(b" \t")))


@pytest.mark.parametrize(
    "value",
    [
        b"sip:a@example.com;tag=x",  # addr-spec: the general parser's job
        b"<sip:a>;TAG=x",
        b"<sip:a> ;tag=x",
        b"<sip:a>, <sip:b>",
        b'"open <sip:a>',
        b"B\xffb <sip:a>",
    ],
)
def test_name_addr_value_declines_what_it_does_not_handle(value: bytes) -> None:
    assert name_addr_value(value, 0) is None


@FAST
@given(
    st.sampled_from([b"", b'"Alice" ', b'"A \\"q\\"" ', b"Bob ", b"Bob  Smith ", b'"a,b"']),
    st.sampled_from([b"sip:a@example.com", b"sip:a@[2001:db8::1]:5070;lr", b"tel:+1555"]),
    st.lists(
        st.builds(
            lambda name, value: b";" + name + (b"" if value is None else b"=" + value),
            st.sampled_from([b"tag", b"expires", b"q", b"lr", b"+sip.instance", b"reg-id"]),
            st.none() | st.sampled_from([b"x", b"3600", b"0.5", b"[::1]", b"a:b"]),
        ),
        max_size=5,
    ),
)
def test_name_addr_value_agrees_with_the_general_parser(
    display: bytes, uri: bytes, params: list[bytes]
) -> None:
    value = display + b"<" + uri + b">" + b"".join(params)
    fast = name_addr_value(value, 3)
    assert fast is not None
    assert fast == _parse_name_addr(b"xxx" + value, 3, 3 + len(value))


URIS = [
    b"sip:616@pbx",
    b"sip:pbx.example.com",
    b"sips:alice@example.com:5061",
    b"sip:201@10.0.0.7:5060;transport=udp",
    b"sip:[2001:db8::1]:5070;lr",
    b"sip:a@b;x=;y;Z=Q",
    b"sip:a@b;x=a@b",
    b"sip:a:pw@b",
    b"sip:a@b?subject=x",
    b"SIP:a@b",
    b"sip:h_x-1.example",
    b"tel:+15551234;phone-context=x",
    b"http://example.com/",
]


@pytest.mark.parametrize("uri", URIS)
def test_parse_uri_fast_path_equals_general_parser(uri: bytes) -> None:
    got = parse_uri.__wrapped__(uri)
    want = _parse_uri(uri)
    assert (type(got), got) == (type(want), want)


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        (b"sip:a@b:65536", "port out of range"),
        (b"sip:a@b:123456", "bad port"),
        (b"sip:@b", "empty user part in SIP URI"),
        (b"sip:a@[1.2.3.4]", "bad IPv6 reference"),
        (b"sip:a@b;;x", "empty URI parameter"),
    ],
)
def test_parse_uri_errors_match_the_general_parser(uri: bytes, reason: str) -> None:
    for parse in (parse_uri.__wrapped__, _parse_uri):
        with pytest.raises(SipParseError) as info:
            parse(uri)
        assert info.value.reason == reason


_URI_PART = {
    "scheme": [b"sip:", b"sips:", b"SIP:", b"tel:", b"http:", b"sip"],
    "user": [b"", b"alice@", b"616@", b"a:pw@", b"@", b"a;b@", b"%41@", b"+1555@"],
    "host": [b"pbx", b"10.0.0.7", b"[2001:db8::1]", b"[::1]", b"[1.2.3.4]", b"", b"h_x", b"a\xffb"],
    "port": [b"", b":5060", b":0", b":65535", b":65536", b":123456", b":", b":x"],
    "params": [b"", b";lr", b";transport=udp", b";x=", b";=x", b";;", b";a=b;c", b";x=a@b"],
    "headers": [b"", b"?h=1", b"?", b"?x;y"],
}


@FAST
@given(
    st.tuples(*(st.sampled_from(v) for v in _URI_PART.values())),
    st.sampled_from([b"", b" ", b"<", b'"', b"@", b";", b"?", b":", b"["]),
    st.integers(0, 60),
)
def test_parse_uri_agrees_with_the_general_parser(
    parts: tuple[bytes, ...], extra: bytes, at: int
) -> None:
    uri = b"".join(parts)
    uri = uri[:at] + extra + uri[at:]

    def outcome(parse: object) -> object:
        try:
            got = parse(uri)  # type: ignore[operator]
        except SipParseError as exc:
            return exc.reason
        assert isinstance(got, SipUri | TelUri | OtherUri)
        return type(got), got

    assert outcome(parse_uri.__wrapped__) == outcome(_parse_uri)


@FAST
@given(
    st.lists(
        st.builds(
            lambda name, value, sp: sp + b";" + name + value,
            st.sampled_from([b"branch", b"RPort", b"received", b"x"]),
            st.sampled_from([b"", b"=1", b"=z9hG4bK", b' = "a;b"', b"=[::1]"]),
            st.sampled_from([b"", b"", b" ", b"\t"]),
        ),
        max_size=5,
    ),
    st.sampled_from([b"SIP/2.0/UDP h", b"SIP/2.0/UDP h:5060", b'SIP/2.0/UDP "h']),
)
def test_param_spans_fast_path_equals_general(params: list[bytes], head: bytes) -> None:
    value = head + b"".join(params)
    raw = b"Via: " + value + b"\r\n"

    def outcome(spans: object) -> object:
        try:
            return spans(raw, 5, 5 + len(value))  # type: ignore[operator]
        except SipParseError as exc:
            return exc.reason

    assert outcome(param_spans) == outcome(_param_spans)


def _torture_valid() -> list[bytes]:
    return [
        load(folder, name)
        for folder in ("rfc4475", "rfc5118")
        for name in message_names(folder)
        if isinstance(PARSER.get(name), Valid)
    ]


@pytest.mark.parametrize("data", [*VALID.values(), *_torture_valid()])
def test_accessors_equal_the_general_parsers_on_every_value(data: bytes) -> None:
    """Whatever path an accessor takes, it gives what the general parsers give on the spans
    `values()` finds (the list splitting the general path has always used)."""
    msg = parse_message(data)
    raw = msg.raw
    try:
        vias = msg.vias()
    except SipParseError:
        vias = None
    if vias is not None:
        assert vias == [parse_via(raw, v.start, v.end) for v in msg.values(Hdr.VIA)]
    for get, h in ((msg.from_addr, Hdr.FROM), (msg.to_addr, Hdr.TO)):
        try:
            addr = get()
        except SipParseError:
            continue
        (value,) = msg.values(h)
        assert addr == parse_name_addr(raw, value.start, value.end)
    for get_list, h in ((msg.routes, Hdr.ROUTE), (msg.record_routes, Hdr.RECORD_ROUTE)):
        try:
            addrs = get_list()
        except SipParseError:
            continue
        assert addrs == [parse_name_addr(raw, v.start, v.end) for v in msg.values(h)]


def test_header_name_spellings() -> None:
    data = options(
        extra=b"cAlL-iD :  other\r\nVIA:SIP/2.0/UDP 192.0.2.2\r\nUser-agent:\tua\r\n"
        b"X-Unknown-Spelling-1: x\r\ncontent-length :0\r\n"
    ).replace(b"Content-Length: 0\r\n", b"")
    with pytest.raises(SipParseError, match="more than one Call-ID"):
        parse_message(data)
    msg = parse_message(data.replace(b"Call-ID: opt-1\r\n", b""))
    assert msg.call_id() == b"other"
    assert [v.host for v in msg.vias()] == [b"198.51.100.9", b"192.0.2.2"]
    assert msg.user_agent() == b"ua"
    assert msg.content_length() == 0
    assert msg.get_named(b"x-unknown-spelling-1") == [b"x"]
    assert [f.slot for f in msg.headers][-2:] == [Hdr.OTHER, Hdr.CONTENT_LENGTH]
    assert msg.headers[-1].name == b"content-length"


def test_spelling_table_learns_up_to_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    table = dict(parser_module._NP_TABLE)
    monkeypatch.setattr(parser_module, "_NP_TABLE", table)
    monkeypatch.setattr(parser_module, "_NP_GET", table.get)
    monkeypatch.setattr(parser_module, "_NP_TABLE_LIMIT", len(table) + 3)
    layouts: dict[bytes, tuple[bytes, int, int, int]] = {}  # no layout remembered from before
    monkeypatch.setattr(parser_module, "_LAYOUTS", layouts)
    monkeypatch.setattr(parser_module, "_LAYOUT_GET", layouts.get)
    for i in range(10):
        msg = parse_message(options(extra=b"X-New-%d: v\r\nsUbJeCt: z\r\n" % i), strict=True)
        assert msg.count(Hdr.OTHER) == 1
        assert msg.get(Hdr.SUBJECT) == b"z"
        assert msg.get_named(b"x-new-%d" % i) == [b"v"]
    assert len(table) == parser_module._NP_TABLE_LIMIT
    assert table[b"sUbJeCt: "] == Hdr.SUBJECT


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (b"Max-Forwards: 70\r\nMax-Forwards: 70\r\n", "more than one Max-Forwards"),
        (b"Content-Length: 0\r\n", "more than one Content-Length"),
        (b"Call-ID: again\r\n", "more than one Call-ID"),
    ],
)
def test_layout_table_gives_the_same_errors_for_a_layout_it_has_seen(
    monkeypatch: pytest.MonkeyPatch, extra: bytes, reason: str
) -> None:
    layouts: dict[bytes, tuple[bytes, int, int, int]] = {}
    monkeypatch.setattr(parser_module, "_LAYOUTS", layouts)
    monkeypatch.setattr(parser_module, "_LAYOUT_GET", layouts.get)
    # twice: a repeated Max-Forwards/Content-Length layout is remembered (the error comes after
    # the CSeq checks, as before), a repeated Call-ID one is not
    for _ in range(2):
        with pytest.raises(SipParseError) as err:
            parse_message(options(extra=extra))
        assert err.value.reason == reason


def test_layout_table_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    layouts: dict[bytes, tuple[bytes, int, int, int]] = {}
    monkeypatch.setattr(parser_module, "_LAYOUTS", layouts)
    monkeypatch.setattr(parser_module, "_LAYOUT_GET", layouts.get)
    monkeypatch.setattr(parser_module, "_LAYOUTS_LIMIT", 3)
    for i in range(10):
        msg = parse_message(options(extra=b"Subject: s\r\n" * i + b"Max-Forwards: %d\r\n" % i))
        assert msg.max_forwards() == i
        assert msg.content_length() == 0
        assert msg.cseq() == (1, b"OPTIONS")
        assert len(layouts) <= 3


def test_parser_tables_keep_no_long_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    layouts: dict[bytes, tuple[bytes, int, int, int]] = {}
    monkeypatch.setattr(parser_module, "_LAYOUTS", layouts)
    monkeypatch.setattr(parser_module, "_LAYOUT_GET", layouts.get)
    long_names = b"".join(b"X-%s: v\r\n" % (b"n" * 60 + b"%d" % i) for i in range(20))
    for _ in range(2):
        msg = parse_message(options(extra=long_names))
        assert msg.count(Hdr.OTHER) == 20
    assert layouts == {}
    assert not any(name.startswith(b"X-nnnn") for name in parser_module._NP_TABLE)
    parse_message(options())
    assert len(layouts) == 1


@pytest.mark.parametrize(
    ("mf", "cl", "cseq", "ok"),
    [
        (b"70", b"0", b"1", True),
        (b"070", b"00", b"0002047", True),
        (b"255", b"2047", b"2048", True),
        (b"256", b"0", b"1", False),
        (b"70 ", b"0\t", b"2147483647", True),
        (b"7 0", b"0", b"1", False),
        (b"-1", b"0", b"1", False),
        (b"70", b"", b"1", False),
        (b"70", b"0", b"2147483648", False),
        (b"70", b"0", b"00000000000000001", True),
    ],
)
def test_numbers_with_and_without_the_small_number_table(
    mf: bytes, cl: bytes, cseq: bytes, ok: bool
) -> None:
    body = b"x" * int(cl.strip() or b"0") if cl.strip().isdigit() else b""
    data = (
        options()
        .replace(
            b"Content-Length: 0\r\n",
            b"Max-Forwards: " + mf + b"\r\nContent-Length: " + cl + b"\r\n",
        )
        .replace(b"CSeq: 1 OPTIONS", b"CSeq: " + cseq + b" OPTIONS")
        + body
    )
    if not ok:
        with pytest.raises(SipParseError):
            parse_message(data)
        return
    msg = parse_message(data)
    assert msg.max_forwards() == int(mf)
    assert msg.content_length() == int(cl)
    assert msg.cseq() == (int(cseq), b"OPTIONS")


def test_folded_message_values_and_spans() -> None:
    data = register(extra=b"Subject: first\r\n  second \r\n\tthird\r\nX-Empty:\r\n \r\n")
    msg = parse_message(data)
    assert isinstance(msg, SipRequest)
    assert msg.get(Hdr.SUBJECT) == b"first second third"
    i = msg.index(Hdr.SUBJECT)
    s, e = msg.field_span(i)
    vs, ve = msg.value_span(i)
    assert data[s:e] == b"Subject: first\r\n  second \r\n\tthird\r\n"
    assert data[vs:ve] == b"first\r\n  second \r\n\tthird"
    assert msg.get_named(b"X-EMPTY") == [b"\r\n"]  # as before: a value made only of a fold
    assert msg.call_id() == b"a84b4c76e66710@10.0.0.7"
    assert [h.name for h in msg.headers][-4:] == [
        b"Subject",
        b"X-Empty",
        b"User-Agent",
        b"Content-Length",
    ]


def test_slots_accept_enum_and_int() -> None:
    msg = parse_message(invite())
    assert msg.count(Hdr.VIA) == 2
    assert msg.index(Hdr.CONTACT) == msg.indexes(int(Hdr.CONTACT))[0] > 0
    assert msg.has(Hdr.ROUTE) and not msg.has(Hdr.RECORD_ROUTE)
    assert msg.indexes(Hdr.VIA) == [0, 1]
    assert all(isinstance(f.slot, int) for f in msg.headers)
