"""What an alert looks like on the wire: a JSON object (webhook body, JSON-lines file), an RFC 5424
syslog message with structured data, and an ArcSight CEF line (carried as the MSG of an RFC 5424
message). Pure code: no I/O, no clock; the time of an alert is the time of its event.

Every text field of an event may carry attacker bytes (account, user agent in the evidence, ...).
`clean` escapes what is not printable (control characters, line breaks, bidi and other format
characters, lone surrogates) and cuts the field to a fixed length, before any format adds its own
escaping, so each format's output is bounded and holds one line.

Syslog facility: local0 (16), the customary facility of network appliances, so a collector can
route sipguard apart from the host's own auth log; the router takes another one as a parameter.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
from dataclasses import dataclass
from ipaddress import IPv6Address, ip_address

from sipguard.core.text import clean
from sipguard.engine.effects import SecurityEvent
from sipguard.policy.model import Severity

__all__ = [
    "CEF_SEVERITY",
    "DETAIL_LIMIT",
    "FACILITY_AUTH",
    "FACILITY_LOCAL0",
    "FIELD_LIMIT",
    "SD_ID",
    "SIGNATURE_HEADER",
    "SYSLOG_SEVERITY",
    "Alert",
    "Origin",
    "alert_record",
    "cef_line",
    "clean",
    "json_body",
    "json_line",
    "kind_name",
    "octet_frame",
    "rfc5424",
    "sign",
    "syslog_message",
    "title",
]

FIELD_LIMIT = 64  # characters of a short field (account, rule, method, country, kind, address)
DETAIL_LIMIT = 256  # characters of the evidence (the engine already cuts it to 200 raw)
HOST_LIMIT = 255  # RFC 5424 HOSTNAME

SIGNATURE_HEADER = "X-SIPGuard-Signature"  # policies/README.md: `sha256=<hex HMAC of the body>`
SD_ID = "sipguard@32473"  # 32473: the private enterprise number RFC 5612 sets aside for examples
APP_NAME = "sipguard"
FACILITY_LOCAL0 = 16
FACILITY_AUTH = 4  # "security/authorization messages"

#: Ours to RFC 5424 severities (6 informational, 5 notice, 4 warning, 3 error, 2 critical).
SYSLOG_SEVERITY: dict[Severity, int] = {
    Severity.INFO: 6,
    Severity.NOTICE: 5,
    Severity.WARNING: 4,
    Severity.ERROR: 3,
    Severity.CRITICAL: 2,
}

#: Ours to CEF 0..10 (0-3 low, 4-6 medium, 7-8 high, 9-10 very high).
CEF_SEVERITY: dict[Severity, int] = {
    Severity.INFO: 1,
    Severity.NOTICE: 3,
    Severity.WARNING: 5,
    Severity.ERROR: 8,
    Severity.CRITICAL: 10,
}

#: kind -> (name for people and the CEF Name, CEF category)
KINDS: dict[str, tuple[str, str]] = {
    "ban": ("Source banned", "ban"),
    "rule": ("Policy rule matched", "policy"),
    "rate_limited": ("Rate limit exceeded", "flood"),
    "brute_force": ("SIP brute force", "brute_force"),
    "distributed_brute_force": ("Distributed SIP brute force", "brute_force"),
    "account_blocked": ("Account blocked for a source", "brute_force"),
    "enumeration": ("SIP account enumeration", "scan"),
    "unusual_login": ("Unusual login", "login"),
    "fraud_destination": ("Toll fraud: forbidden destination", "toll_fraud"),
    "fraud_limit": ("Toll fraud: call limit exceeded", "toll_fraud"),
    "fraud_quiet_hours": ("Toll fraud: international call in quiet hours", "toll_fraud"),
    "fraud_spike": ("Toll fraud: call spike", "toll_fraud"),
    "country_denied": ("Source country denied", "geo"),
    "country_unknown": ("Source country unknown", "geo"),
    "geo_stale": ("GeoIP database out of date", "system"),
    "policy_reload": ("Policy reloaded", "system"),
}


@dataclass(frozen=True, slots=True)
class Alert:
    """One message to a sink. `count` is the number of events it stands for: 1 for the first
    event of a (kind, source), N for the summary of the N repeats that followed it in the window
    (`summary`: "N more like this"); then `event` is the last of them and `first_at`/`last_at`
    span them. `overflow`: the summary of events a sink's alert budget held back, from several
    sources (the source fields of `event` are then not meaningful and are left out)."""

    event: SecurityEvent
    count: int = 1
    summary: bool = False
    first_at: float = 0.0
    last_at: float = 0.0
    overflow: bool = False


@dataclass(frozen=True, slots=True)
class Origin:
    """Who reports: the sipguard host name, version and process id (RFC 5424 PROCID)."""

    host: str
    version: str
    procid: str = "-"


# ------------------------------------------------------------------------------- sanitising


def _ascii_token(text: str, limit: int) -> str:
    """RFC 5424 HOSTNAME / MSGID: printable US-ASCII without spaces, or the NILVALUE."""
    token = "".join(ch if "!" <= ch <= "~" else "_" for ch in text[:limit])
    return token or "-"


@dataclass(frozen=True, slots=True)
class _Fields:
    """The event's text, cleaned once."""

    kind: str
    ip: str
    country: str
    account: str
    method: str
    rule: str
    detail: str


def _fields(alert: Alert) -> _Fields:
    ev = alert.event
    return _Fields(
        kind=clean(ev.kind, FIELD_LIMIT),
        ip="" if alert.overflow else clean(ev.ip, FIELD_LIMIT),
        country=clean(ev.country, FIELD_LIMIT),
        account="" if alert.overflow else clean(ev.account, FIELD_LIMIT),
        method=clean(ev.method, FIELD_LIMIT),
        rule=clean(ev.rule, FIELD_LIMIT),
        detail=clean(ev.detail, DETAIL_LIMIT),
    )


def kind_name(kind: str) -> str:
    known = KINDS.get(kind)
    return known[0] if known else clean(kind.replace("_", " "), FIELD_LIMIT)


def _category(kind: str) -> str:
    known = KINDS.get(kind)
    return known[1] if known else "other"


def title(alert: Alert) -> str:
    """One line for people: what, from where, and the count of a summary."""
    return _title(alert, _fields(alert))


def _title(alert: Alert, f: _Fields) -> str:
    name = kind_name(alert.event.kind)
    if alert.overflow:
        return f"{alert.count} more {name} alerts from several sources (alert budget exceeded)"
    where = f" from {f.ip}" if f.ip else ""
    who = f" (account {f.account})" if f.account else ""
    if alert.summary:
        return f"{alert.count} more like this: {name}{where}{who}"
    return f"{name}{where}{who}"


def _iso(at: float) -> str:
    """ISO 8601 / RFC 3339 UTC with milliseconds: 2024-05-01T12:00:00.123Z."""
    stamp = datetime.datetime.fromtimestamp(at, tz=datetime.UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -------------------------------------------------------------------------------------- JSON


def alert_record(alert: Alert, origin: Origin) -> dict[str, object]:
    """The JSON object of the webhook body and of a JSON-lines file line."""
    f = _fields(alert)
    ev = alert.event
    record: dict[str, object] = {
        "event": f.kind,
        "severity": ev.severity.value,
        "time": _iso(ev.at),
        "title": _title(alert, f),
        "source": {"ip": f.ip or None, "port": ev.port if f.ip and ev.port else None},
        "country": f.country or None,
        "account": f.account or None,
        "method": f.method or None,
        "rule": f.rule or None,
        "evidence": f.detail or None,
        "count": alert.count,
        "summary": alert.summary,
    }
    if alert.summary:
        record["first_seen"] = _iso(alert.first_at)
        record["last_seen"] = _iso(alert.last_at)
    if alert.overflow:
        record["overflow"] = True
    record["host"] = clean(origin.host, HOST_LIMIT)
    record["sipguard"] = origin.version
    return record


def json_body(alert: Alert, origin: Origin) -> bytes:
    """Compact UTF-8 JSON, one line (JSON escapes every control character)."""
    text = json.dumps(alert_record(alert, origin), ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8", "backslashreplace")


def json_line(alert: Alert, origin: Origin) -> bytes:
    return json_body(alert, origin) + b"\n"


def sign(body: bytes, secret: str) -> str:
    """The `X-SIPGuard-Signature` value: `sha256=` and the hex HMAC-SHA256 of the body."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


# ---------------------------------------------------------------------------------- RFC 5424


def _sd_value(text: str) -> str:
    """RFC 5424 6.3.3: `"`, `\\` and `]` are escaped with a backslash."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _structured_data(alert: Alert, f: _Fields) -> str:
    ev = alert.event
    params: list[tuple[str, str]] = [("kind", f.kind), ("severity", ev.severity.value)]
    params += [
        (name, value)
        for name, value in (
            ("src", f.ip),
            ("spt", str(ev.port) if ev.port and f.ip else ""),
            ("country", f.country),
            ("account", f.account),
            ("method", f.method),
            ("rule", f.rule),
        )
        if value
    ]
    params.append(("count", str(alert.count)))
    if alert.summary:
        params += [("first", _iso(alert.first_at)), ("last", _iso(alert.last_at))]
    body = " ".join(f'{name}="{_sd_value(value)}"' for name, value in params)
    return f"[{SD_ID} {body}]"


def rfc5424(
    alert: Alert,
    origin: Origin,
    *,
    facility: int = FACILITY_LOCAL0,
    msg: str | None = None,
    structured: bool = True,
) -> bytes:
    """`<PRI>1 TIMESTAMP HOSTNAME sipguard PROCID MSGID [SD] MSG`: MSGID is the kind, MSG the
    title and the evidence unless `msg` is given. No BOM before MSG (MSG-ANY): collectors that
    print it show mojibake, and UTF-8 text reads right without it."""
    f = _fields(alert)
    pri = facility * 8 + SYSLOG_SEVERITY[alert.event.severity]
    sd = _structured_data(alert, f) if structured else "-"
    if msg is None:
        msg = _title(alert, f) + (f": {f.detail}" if f.detail else "")
    header = (
        f"<{pri}>1 {_iso(alert.event.at)} {_ascii_token(origin.host, HOST_LIMIT)} {APP_NAME} "
        f"{_ascii_token(origin.procid, 128)} {_ascii_token(f.kind, 32)}"
    )
    return f"{header} {sd} {msg}".encode("utf-8", "backslashreplace")


# --------------------------------------------------------------------------------------- CEF


def _cef_header(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|")


def _cef_value(text: str) -> str:
    """CEF extension values: `\\`, `=` and line breaks escaped (clean() already turned line
    breaks into text; this holds for any input)."""
    return (
        text.replace("\\", "\\\\")
        .replace("=", "\\=")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
    )


def cef_line(alert: Alert, origin: Origin) -> str:
    """`CEF:0|sipguard|sipguard|VERSION|KIND|NAME|SEVERITY|ext` with standard extension keys:
    rt/start/end (ms since the epoch), src (IPv4) or c6a2 (IPv6), spt, suser, requestMethod, act,
    msg (evidence), cat, cnt (events this alert stands for), cs1 rule, cs2 country, dvchost."""
    f = _fields(alert)
    ev = alert.event
    ext: list[tuple[str, str]] = [("rt", str(round(ev.at * 1000)))]
    if f.ip:
        if _is_ipv6(f.ip):
            ext += [("c6a2", f.ip), ("c6a2Label", "Source IPv6 Address")]
        else:
            ext.append(("src", f.ip))
        if ev.port:
            ext.append(("spt", str(ev.port)))
    if f.account:
        ext.append(("suser", f.account))
    if f.method:
        ext.append(("requestMethod", f.method))
    if ev.kind == "ban":
        ext.append(("act", "ban"))
    ext += [("cat", _category(ev.kind)), ("cnt", str(alert.count))]
    if alert.summary:
        ext += [
            ("start", str(round(alert.first_at * 1000))),
            ("end", str(round(alert.last_at * 1000))),
        ]
    if f.rule:
        ext += [("cs1", f.rule), ("cs1Label", "rule")]
    if f.country:
        ext += [("cs2", f.country), ("cs2Label", "country")]
    ext.append(("msg", _title(alert, f) + (f": {f.detail}" if f.detail else "")))
    ext.append(("dvchost", clean(origin.host, HOST_LIMIT)))
    header = "|".join(
        _cef_header(part)
        for part in (
            "sipguard",
            "sipguard",
            origin.version,
            f.kind,
            kind_name(ev.kind),
            str(CEF_SEVERITY[ev.severity]),
        )
    )
    extension = " ".join(f"{key}={_cef_value(value)}" for key, value in ext)
    return f"CEF:0|{header}|{extension}"


def _is_ipv6(text: str) -> bool:
    try:
        return isinstance(ip_address(text), IPv6Address)
    except ValueError:
        return ":" in text


# ------------------------------------------------------------------------------------ framing


def syslog_message(alert: Alert, origin: Origin, *, cef: bool, facility: int) -> bytes:
    """The RFC 5424 message of a syslog sink: structured data and a text MSG, or (CEF) no
    structured data and the CEF line as MSG."""
    if cef:
        return rfc5424(
            alert, origin, facility=facility, msg=cef_line(alert, origin), structured=False
        )
    return rfc5424(alert, origin, facility=facility)


def octet_frame(message: bytes) -> bytes:
    """RFC 6587 3.4.1 octet counting: `LEN SP MSG` (for syslog over TCP)."""
    return b"%d %s" % (len(message), message)
