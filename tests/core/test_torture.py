"""RFC 4475 and RFC 5118 torture messages against the INDEX verdicts (tests/core/torture_cases.py).

The checksums are verified first: a checkout that rewrote line endings must fail, not test
other bytes. A missing torture folder fails too (never a skip).
"""

from __future__ import annotations

import pytest

from sipguard.core.sip import (
    SipParseError,
    SipRequest,
    SipResponse,
    StreamFramer,
    parse_message,
)
from tests.core.torture_cases import PARSER, PROXY_OUTCOME, Invalid, Valid, folder
from tests.core.torture_paths import checksum_problems, load, message_names, torture_dir

# from the table, not from the folder: a missing folder makes every case fail, never vanish
CASES = sorted((folder(n), n) for n in PARSER)


def test_checksums_first() -> None:
    base = torture_dir()
    assert checksum_problems(base) == []


def test_tables_cover_every_message() -> None:
    torture_dir()
    names = {n for f in ("rfc4475", "rfc5118") for n in message_names(f)}
    assert len(names) == 62  # 50 in RFC 4475's archive + 12 from RFC 5118
    assert {(folder(n), n) for n in names} == set(CASES)
    assert set(PARSER) == names
    assert set(PROXY_OUTCOME) == names
    # a refused message is never forwarded, an accepted request is forwarded or answered
    for name, case in PARSER.items():
        if isinstance(case, Invalid):
            assert PROXY_OUTCOME[name] != "forward", name


@pytest.mark.parametrize(("sub", "name"), CASES, ids=[n for _, n in CASES])
def test_torture_message(sub: str, name: str) -> None:
    data = load(sub, name)
    case = PARSER[name]
    if isinstance(case, Invalid):
        if case.stage == "parse":
            with pytest.raises(SipParseError) as info:
                parse_message(data)
        else:
            msg = parse_message(data)  # lazy parse accepts it; validation refuses it
            with pytest.raises(SipParseError) as info:
                msg.validate()
        assert info.value.status_hint == case.hint, info.value.reason
        with pytest.raises(SipParseError):
            parse_message(data, strict=True)
        return
    assert isinstance(case, Valid)
    msg = parse_message(data, strict=True)
    if case.method is None:
        assert isinstance(msg, SipResponse)
        assert msg.status == case.status
    else:
        assert isinstance(msg, SipRequest)
        assert msg.method_raw == case.method
        assert msg.uri == case.uri
        assert msg.raw[msg.uri_start : msg.uri_end] == case.uri
    assert len(msg.vias()) == case.vias
    assert msg.call_id() == case.call_id
    assert len(msg.body) == case.body
    assert msg.raw == data[: len(msg.raw)]  # raw is a prefix: nothing re-encoded
    msg.credentials()
    msg.user_agent()
    _ = msg.headers


def test_torture_details() -> None:
    wsinv = parse_message(load("rfc4475", "wsinv.sip"))
    assert wsinv.max_forwards() == 68
    assert wsinv.cseq() == (9, b"INVITE")
    assert [v.branch for v in wsinv.vias()] == [b"390skdjuw", b"z9hG4bK9ikj8", b"z9hG4bK30239"]
    assert wsinv.from_addr().tag == b"98asjd8"
    assert wsinv.to_addr().tag == b"1918181833n"
    esc02 = parse_message(load("rfc4475", "esc02.sip"))
    assert isinstance(esc02, SipRequest)
    assert esc02.method.name == "OTHER"  # RE%47IST%45R is not REGISTER
    assert len(esc02.contacts()) == 2  # C%6Fntact is not Contact
    escnull = parse_message(load("rfc4475", "escnull.sip"))
    assert [c.uri for c in escnull.contacts()] == [
        b"sip:%00@host5.example.com",
        b"sip:%00%00@host5.example.com",
    ]
    dblreq = load("rfc4475", "dblreq.sip")
    msg = parse_message(dblreq)
    assert b"INVITE" not in msg.raw  # the trailing octets are not forwarded
    intmeth = parse_message(load("rfc4475", "intmeth.sip"))
    assert b"\x00" in (intmeth.to_addr().display or b"")
    mpart = parse_message(load("rfc4475", "mpart01.sip"))
    assert mpart.body.count(b"\x00") == 2
    regaut = parse_message(load("rfc4475", "regaut01.sip"))
    creds = regaut.credentials()
    assert creds is not None
    assert creds.scheme == b"NoOneKnowsThisScheme"
    assert not creds.is_digest
    zeromf = parse_message(load("rfc4475", "zeromf.sip"))
    assert zeromf.max_forwards() == 0
    bcast = parse_message(load("rfc4475", "bcast.sip"))
    assert bcast.vias()[1].host == b"255.255.255.255"
    lwsdisp = parse_message(load("rfc4475", "lwsdisp.sip"))
    assert lwsdisp.from_addr().display == b"caller"


def test_rfc5118_details() -> None:
    good = parse_message(load("rfc5118", "ipv6-good.sip"))
    assert good.top_via().host == b"2001:db8::9:1"
    assert good.contacts()[0].uri == b"sip:caller@[2001:db8::1]"
    amb = parse_message(load("rfc5118", "port-ambiguous.sip"))
    assert isinstance(amb, SipRequest)
    u = amb.request_uri()
    assert u is not None
    assert (u.host, u.port) == (b"2001:db8::10:5070", None)
    unamb = parse_message(load("rfc5118", "port-unambiguous.sip"))
    assert isinstance(unamb, SipRequest)
    u = unamb.request_uri()
    assert u is not None
    assert (u.host, u.port) == (b"2001:db8::10", 5070)
    for name in ("via-received-param-with-delim.sip", "via-received-param-no-delim.sip"):
        v = parse_message(load("rfc5118", name)).top_via()
        assert v.received == b"2001:db8::9:255"
        assert v.branch is not None and v.branch.startswith(b"z9hG4bKas3")
    mult = parse_message(load("rfc5118", "mult-ip-in-header.sip"))
    vias = mult.vias()
    assert [(v.host, v.port, v.transport) for v in vias] == [
        (b"2001:db8::9:1", 6050, b"UDP"),
        (b"192.0.2.1", None, b"UDP"),
        (b"2001:db8::9:255", None, b"TCP"),
    ]
    assert vias[2].received == b"192.0.2.200"
    mapped = parse_message(load("rfc5118", "ipv4-mapped-ipv6.sip"))
    assert [v.host for v in mapped.vias()] == [b"::ffff:192.0.2.10", b"::ffff:192.0.2.2"]
    assert mapped.vias()[0].port == 19823


def test_every_valid_message_survives_tcp_framing() -> None:
    stream = b""
    expected = []
    for sub, name in CASES:
        if isinstance(PARSER[name], Valid) and name != "inv2543.sip":  # no Content-Length
            raw = parse_message(load(sub, name)).raw
            stream += raw + b"\r\n\r\n"
            expected += [raw, b""]
    assert StreamFramer().feed(stream) == expected
