"""The wire formats of alerts, pure: the JSON body, RFC 5424 with structured data, and CEF, each
read back by a parser written here to its spec (RFC 5424 section 6; the ArcSight "Common Event
Format" implementation standard: header fields split on unescaped `|`, `\\|` and `\\\\` escaped in
the header; extension `key=value` pairs separated by spaces, `\\=`, `\\\\`, `\\n`, `\\r` escaped
in values), including hostile input."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import re
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipguard.engine.effects import SecurityEvent
from sipguard.policy.model import Severity
from sipguard.services.alert_formats import (
    DETAIL_LIMIT,
    FIELD_LIMIT,
    Alert,
    Origin,
    alert_record,
    cef_line,
    clean,
    json_line,
    octet_frame,
    rfc5424,
    sign,
    syslog_message,
    title,
)

T0 = 1_714_564_800.123  # 2024-05-01T12:00:00.123Z
ORIGIN = Origin("edge1.example.net", "0.1.0", "4242")

BAN = SecurityEvent(
    T0,
    "ban",
    Severity.WARNING,
    "203.0.113.66",
    5062,
    "NL",
    "1000",
    "REGISTER",
    "brute-force",
    "brute_force: banned until 1714565400 (1 offences): 5 failed logins within 60s (401)",
)
FRAUD = SecurityEvent(
    T0 + 1,
    "fraud_destination",
    Severity.ERROR,
    "10.0.0.5",
    5060,
    None,
    "2001",
    "INVITE",
    "fraud.destinations.deny_types",
    "call to +881612345678: satellite (GMSS) is a denied number type",
)
HOSTILE = (
    "a|b=c\\d\ne\rf\x00g]h\"i'j Jürgen ☎ 日本 \u202e\u2028\udcff😀 k=v cs1=x |CEF:0|" + "X" * 10_000
)


# ------------------------------------------------------------------------- parsers to the spec


@dataclass
class Syslog:
    pri: int
    timestamp: datetime.datetime
    host: str
    app: str
    procid: str
    msgid: str
    sd: dict[str, dict[str, str]]  # SD-ID -> params
    msg: str


_HEADER = re.compile(r"<(\d{1,3})>1 (\S+) (\S{1,255}) (\S{1,48}) (\S{1,128}) (\S{1,32}) ")
_SD_NAME = re.compile(r"[!-~]{1,32}")


def parse_rfc5424(data: bytes) -> Syslog:
    """RFC 5424 6: HEADER SP STRUCTURED-DATA [SP MSG]; SD-PARAM values escape `"`, `\\`, `]`."""
    text = data.decode("utf-8")  # the message must be UTF-8
    m = _HEADER.match(text)
    assert m, text[:200]
    stamp = datetime.datetime.fromisoformat(m[2])
    assert stamp.tzinfo is not None
    rest = text[m.end() :]
    sd: dict[str, dict[str, str]] = {}
    if rest.startswith("-"):
        rest = rest[1:]
    else:
        assert rest.startswith("["), rest[:80]
        while rest.startswith("["):
            end = min(i for i in (rest.find(" "), rest.find("]")) if i > 0)
            sd_id = rest[1:end]
            assert _SD_NAME.fullmatch(sd_id) and not set(sd_id) & set('= ]"')
            params: dict[str, str] = {}
            i = end
            while rest[i] == " ":
                eq = rest.index("=", i)
                name = rest[i + 1 : eq]
                assert _SD_NAME.fullmatch(name) and not set(name) & set('= ]"'), name
                assert rest[eq + 1] == '"'
                i = eq + 2
                value: list[str] = []
                while rest[i] != '"':
                    if rest[i] == "\\" and rest[i + 1] in '"\\]':
                        value.append(rest[i + 1])
                        i += 2
                    else:
                        assert rest[i] not in '"]', rest[i - 20 : i + 5]  # must be escaped
                        value.append(rest[i])
                        i += 1
                params[name] = "".join(value)
                i += 1
            assert rest[i] == "]"
            sd[sd_id] = params
            rest = rest[i + 1 :]
    assert rest == "" or rest.startswith(" ")
    return Syslog(int(m[1]), stamp, m[3], m[4], m[5], m[6], sd, rest[1:])


@dataclass
class Cef:
    version: str
    vendor: str
    product: str
    device_version: str
    signature_id: str
    name: str
    severity: str
    ext: dict[str, str]


_KEY = re.compile(r"[A-Za-z0-9_]+")


def parse_cef(line: str) -> Cef:
    """The header: `CEF:Version|Vendor|Product|Version|SignatureID|Name|Severity|`, split on
    unescaped pipes (`\\|` is a pipe, `\\\\` a backslash); the rest is the extension."""
    assert line.startswith("CEF:"), line[:40]
    assert "\n" not in line and "\r" not in line
    fields: list[str] = []
    current: list[str] = []
    i = 4
    while len(fields) < 7:
        ch = line[i]
        if ch == "\\":
            assert line[i + 1] in "|\\", f"bad header escape at {i}: {line[i : i + 2]!r}"
            current.append(line[i + 1])
            i += 2
        elif ch == "|":
            fields.append("".join(current))
            current = []
            i += 1
        else:
            current.append(ch)
            i += 1
    version, vendor, product, device_version, signature_id, name, severity = fields
    ext = parse_extension(line[i:])
    return Cef(version, vendor, product, device_version, signature_id, name, severity, ext)


def parse_extension(text: str) -> dict[str, str]:
    """Space-separated `key=value`; a value runs to the space before the next key (a word
    followed by an unescaped `=`); in values `\\=`, `\\\\`, `\\n`, `\\r` are the escapes and an
    unescaped `=` cannot occur."""
    equals: list[int] = []
    i = 0
    while i < len(text):
        if text[i] == "\\":
            assert i + 1 < len(text) and text[i + 1] in "=\\nr", f"bad escape {text[i : i + 2]!r}"
            i += 2
            continue
        if text[i] == "=":
            equals.append(i)
        i += 1
    keys: list[tuple[int, int, str]] = []  # key start, '=' index, key
    for eq in equals:
        start = text.rfind(" ", 0, eq) + 1
        key = text[start:eq]
        assert _KEY.fullmatch(key), f"not a key: {key!r}"
        keys.append((start, eq, key))
    out: dict[str, str] = {}
    for n, (_, eq, key) in enumerate(keys):
        end = keys[n + 1][0] - 1 if n + 1 < len(keys) else len(text)
        raw = text[eq + 1 : end]
        value = re.sub(
            r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m[1], m[1]), raw, flags=re.DOTALL
        )
        assert key not in out, f"duplicate key {key}"
        out[key] = value
    return out


# ---------------------------------------------------------------------------------- sanitising


def test_clean_escapes_what_is_not_printable_and_cuts_to_the_limit() -> None:
    assert clean("1000", FIELD_LIMIT) == "1000"
    assert clean(None, 10) == ""
    assert clean("a\r\nb\tc\x00\x1b[2J", 100) == "a\\r\\nb\\tc\\x00\\x1b[2J"
    assert clean("x\u202ey\u2028z\udcff", 100) == "x\\u202ey\\u2028z\\udcff"  # bidi, LS, lone
    assert clean("Jürgen ☎ 日本 😀", 100) == "Jürgen ☎ 日本 😀"  # printable non-ASCII stays
    cut = clean("X" * 10_000, 64)
    assert len(cut) == 64 and cut.endswith("...")
    assert clean("X" * 64, 64) == "X" * 64
    assert len(clean("\n" * 1000, 64)) <= 64  # escapes count against the limit
    assert clean("\n" * 1000, 64).startswith("\\n\\n")


# ---------------------------------------------------------------------------------------- JSON


def test_json_body_has_the_documented_fields() -> None:
    rec = json.loads(json_line(Alert(BAN), ORIGIN))
    assert rec == {
        "event": "ban",
        "severity": "warning",
        "time": "2024-05-01T12:00:00.123Z",
        "title": "Source banned from 203.0.113.66 (account 1000)",
        "source": {"ip": "203.0.113.66", "port": 5062},
        "country": "NL",
        "account": "1000",
        "method": "REGISTER",
        "rule": "brute-force",
        "evidence": BAN.detail,
        "count": 1,
        "summary": False,
        "host": "edge1.example.net",
        "sipguard": "0.1.0",
    }


def test_json_summary_carries_the_count_and_the_span() -> None:
    alert = Alert(FRAUD, 9_999, summary=True, first_at=T0 + 1, last_at=T0 + 59)
    rec = alert_record(alert, ORIGIN)
    assert rec["count"] == 9_999 and rec["summary"] is True
    assert rec["first_seen"] == "2024-05-01T12:00:01.123Z"
    assert rec["last_seen"] == "2024-05-01T12:00:59.123Z"
    assert rec["title"] == (
        "9999 more like this: Toll fraud: forbidden destination from 10.0.0.5 (account 2001)"
    )
    assert rec["country"] is None


def test_json_overflow_summary_names_no_source() -> None:
    alert = Alert(BAN, 500, summary=True, first_at=T0, last_at=T0 + 10, overflow=True)
    rec = alert_record(alert, ORIGIN)
    assert rec["source"] == {"ip": None, "port": None} and rec["account"] is None
    assert rec["overflow"] is True
    assert "500 more Source banned alerts from several sources" in str(rec["title"])


def test_hmac_signature() -> None:
    body = json_line(Alert(BAN), ORIGIN)
    expected = hmac.new(b"change-me", body, hashlib.sha256).hexdigest()
    assert sign(body, "change-me") == f"sha256={expected}"


# ------------------------------------------------------------------------------------ RFC 5424


def test_rfc5424_line_structure() -> None:
    line = rfc5424(Alert(BAN), ORIGIN)
    assert line.startswith(b"<132>1 2024-05-01T12:00:00.123Z edge1.example.net sipguard 4242 ban ")
    msg = parse_rfc5424(line)
    assert msg.pri == 16 * 8 + 4  # local0, warning
    assert msg.timestamp == datetime.datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=datetime.UTC)
    assert (msg.host, msg.app, msg.procid, msg.msgid) == (
        "edge1.example.net",
        "sipguard",
        "4242",
        "ban",
    )
    assert msg.sd == {
        "sipguard@32473": {
            "kind": "ban",
            "severity": "warning",
            "src": "203.0.113.66",
            "spt": "5062",
            "country": "NL",
            "account": "1000",
            "method": "REGISTER",
            "rule": "brute-force",
            "count": "1",
        }
    }
    assert msg.msg == f"Source banned from 203.0.113.66 (account 1000): {BAN.detail}"


@pytest.mark.parametrize(
    ("severity", "pri"),
    [
        (Severity.INFO, 134),
        (Severity.NOTICE, 133),
        (Severity.WARNING, 132),
        (Severity.ERROR, 131),
        (Severity.CRITICAL, 130),
    ],
)
def test_syslog_severity_mapping(severity: Severity, pri: int) -> None:
    event = SecurityEvent(T0, "geo_stale", severity, detail="GeoIP data is 60 days old")
    msg = parse_rfc5424(rfc5424(Alert(event), ORIGIN))
    assert msg.pri == pri
    assert msg.sd["sipguard@32473"] == {
        "kind": "geo_stale",
        "severity": severity.value,
        "count": "1",
    }
    assert msg.msg == "GeoIP database out of date: GeoIP data is 60 days old"


def test_sd_values_escape_quote_backslash_and_bracket() -> None:
    event = SecurityEvent(T0, "rule", Severity.WARNING, "198.51.100.7", account='a"b\\c]d')
    line = rfc5424(Alert(event), ORIGIN)
    assert b'account="a\\"b\\\\c\\]d"' in line
    assert parse_rfc5424(line).sd["sipguard@32473"]["account"] == 'a"b\\c]d'


def test_summary_in_structured_data() -> None:
    alert = Alert(BAN, 41, summary=True, first_at=T0 + 2, last_at=T0 + 50)
    params = parse_rfc5424(rfc5424(alert, ORIGIN)).sd["sipguard@32473"]
    assert params["count"] == "41"
    assert params["first"] == "2024-05-01T12:00:02.123Z"
    assert params["last"] == "2024-05-01T12:00:50.123Z"


def test_octet_counting_frame() -> None:
    message = rfc5424(Alert(FRAUD), ORIGIN)
    framed = octet_frame(message)
    length, _, rest = framed.partition(b" ")
    assert int(length) == len(rest) == len(message) and rest == message


# ----------------------------------------------------------------------------------------- CEF


def test_cef_line_of_a_ban() -> None:
    line = cef_line(Alert(BAN), ORIGIN)
    assert line.startswith("CEF:0|sipguard|sipguard|0.1.0|ban|Source banned|5|rt=1714564800123 ")
    cef = parse_cef(line)
    assert (cef.version, cef.vendor, cef.product, cef.device_version) == (
        "0",
        "sipguard",
        "sipguard",
        "0.1.0",
    )
    assert (cef.signature_id, cef.name, cef.severity) == ("ban", "Source banned", "5")
    assert cef.ext == {
        "rt": "1714564800123",
        "src": "203.0.113.66",
        "spt": "5062",
        "suser": "1000",
        "requestMethod": "REGISTER",
        "act": "ban",
        "cat": "ban",
        "cnt": "1",
        "cs1": "brute-force",
        "cs1Label": "rule",
        "cs2": "NL",
        "cs2Label": "country",
        "msg": f"Source banned from 203.0.113.66 (account 1000): {BAN.detail}",
        "dvchost": "edge1.example.net",
    }


def test_cef_summary_of_toll_fraud_and_ipv6_source() -> None:
    alert = Alert(FRAUD, 12, summary=True, first_at=T0 + 1, last_at=T0 + 30)
    cef = parse_cef(cef_line(alert, ORIGIN))
    assert (cef.signature_id, cef.severity) == ("fraud_destination", "8")
    assert cef.name == "Toll fraud: forbidden destination"
    assert cef.ext["cat"] == "toll_fraud" and cef.ext["cnt"] == "12"
    assert cef.ext["start"] == "1714564801123" and cef.ext["end"] == "1714564830123"
    v6 = SecurityEvent(T0, "rate_limited", Severity.NOTICE, "2001:db8:66::", 5060)
    ext = parse_cef(cef_line(Alert(v6), ORIGIN)).ext
    assert ext["c6a2"] == "2001:db8:66::" and ext["c6a2Label"] == "Source IPv6 Address"
    assert "src" not in ext


def test_cef_syslog_message_carries_the_cef_line_as_msg() -> None:
    msg = parse_rfc5424(syslog_message(Alert(BAN), ORIGIN, cef=True, facility=4))
    assert msg.pri == 4 * 8 + 4 and msg.sd == {}
    assert msg.msg == cef_line(Alert(BAN), ORIGIN)


# ------------------------------------------------------------------------------- hostile input


def hostile_event(
    text: str, *, ip: str = "198.51.100.9", kind: str = "brute_force"
) -> SecurityEvent:
    return SecurityEvent(T0, kind, Severity.CRITICAL, ip, 5060, text, text, text, text, text)


def check_every_format(event: SecurityEvent) -> None:
    """Each format holds one line, parses to spec, and gives back exactly the cleaned text."""
    for alert in (Alert(event), Alert(event, 7, summary=True, first_at=T0, last_at=T0 + 1)):
        short = {f: clean(getattr(event, f), FIELD_LIMIT) for f in ("account", "rule", "method")}
        detail = clean(event.detail, DETAIL_LIMIT)
        heading = title(alert)

        body = json_line(alert, ORIGIN)
        assert body.endswith(b"\n") and body.count(b"\n") == 1
        rec = json.loads(body)
        assert rec["account"] == (short["account"] or None)
        assert rec["rule"] == (short["rule"] or None)
        assert rec["evidence"] == (detail or None)
        assert rec["event"] == clean(event.kind, FIELD_LIMIT)

        for cef in (False, True):
            line = syslog_message(alert, ORIGIN, cef=cef, facility=16)
            assert b"\n" not in line and b"\r" not in line and len(line) < 4096
            msg = parse_rfc5424(line)
            if cef:
                parsed = parse_cef(msg.msg)
                assert parsed.signature_id == clean(event.kind, FIELD_LIMIT)
                assert parsed.ext.get("suser", "") == short["account"]
                assert parsed.ext.get("cs1", "") == short["rule"]
                assert parsed.ext.get("requestMethod", "") == short["method"]
                assert parsed.ext["msg"] == heading + (f": {detail}" if detail else "")
                assert parsed.ext["cnt"] == str(alert.count)
            else:
                params = msg.sd["sipguard@32473"]
                assert params.get("account", "") == short["account"]
                assert params.get("rule", "") == short["rule"]
                assert params["kind"] == clean(event.kind, FIELD_LIMIT)
                assert msg.msg == heading + (f": {detail}" if detail else "")


@pytest.mark.parametrize(
    "text",
    [
        HOSTILE,
        "|",
        "=",
        "\\",
        "\\=",
        "\\|",
        "a=b c=d",
        " trailing ",
        "\n\r\n",
        ']"',
        "x" * 10_240,
        "é" * 10_240,
        "",
    ],
    ids=lambda t: repr(t[:12]),
)
def test_hostile_text_in_every_field_parses(text: str) -> None:
    check_every_format(hostile_event(text))
    check_every_format(hostile_event(text, ip=text, kind=text or "x"))


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(max_size=400),
    ip=st.text(max_size=60),
    kind=st.text(min_size=1, max_size=40),
)
def test_any_text_in_any_field_parses(text: str, ip: str, kind: str) -> None:
    check_every_format(hostile_event(text, ip=ip, kind=kind))


def test_the_parsers_are_strict() -> None:
    """They would catch an escape the formatter forgot."""
    with pytest.raises(AssertionError):
        parse_extension("msg=a=b cnt=1")  # unescaped '=' in a value
    with pytest.raises(AssertionError):
        parse_extension("msg=a\\x")  # not a CEF escape
    assert parse_cef("CEF:0|a\\|b|p|1|s|n|5|k=v").vendor == "a|b"
    with pytest.raises(AssertionError):
        parse_cef("CEF:0|a|b|p|1|s|n|5|k=v")  # an unescaped pipe splits: "5|k" is no key
    with pytest.raises(AssertionError):
        parse_rfc5424(b'<132>1 2024-05-01T12:00:00Z h a p m [x@1 k="a"b"] msg')
    with pytest.raises(AssertionError):
        parse_rfc5424(b'<132>1 2024-05-01T12:00:00Z h a p m [x@1 k="a]b"] msg')
