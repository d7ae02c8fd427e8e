"""Grammars of the policy's scalar values: durations, rates, clock times, addresses, networks,
URLs, storage locations, names.

Each parser takes the raw scalar text (never a YAML 1.1 resolved value) and returns the value or
raises `ValueError` with a short, lower-case message; the loader turns that into a located issue.
"""

from __future__ import annotations

import datetime
import difflib
import ipaddress
import re
import zoneinfo
from collections.abc import Iterable
from urllib.parse import urlsplit

from sipguard.policy.model import Endpoint, HostPort, Network, Rate, Transport

__all__ = [
    "DURATION_UNITS",
    "MAX_DURATION",
    "RATE_UNITS",
    "format_duration",
    "parse_clock",
    "parse_digits",
    "parse_duration",
    "parse_endpoint",
    "parse_host_port",
    "parse_http_url",
    "parse_network",
    "parse_rate",
    "parse_rule_name",
    "parse_storage",
    "parse_timezone",
    "suggest",
]

#: Seconds per duration unit, largest first (the order the parts of `1h30m` must follow).
DURATION_UNITS: dict[str, float] = {
    "w": 7 * 86400.0,
    "d": 86400.0,
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 0.001,
}
_WITHOUT_WEEKS = {unit: size for unit, size in DURATION_UNITS.items() if unit != "w"}
#: Named units accepted after the slash of a rate (`10/min`); `10/5m` (a duration) works too.
RATE_UNITS: dict[str, float] = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}
#: Longest duration accepted anywhere: 100 years. It also keeps `9999...9d` from becoming infinity.
MAX_DURATION = 36500 * 86400.0

_PART = re.compile(r"([0-9]{1,12}(?:\.[0-9]{1,9})?)(ms|s|m|h|d|w)")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_UNIT_ORDER = {unit: i for i, unit in enumerate(DURATION_UNITS)}
_RATE = re.compile(r"([0-9]{1,9})/(.+)")
_CLOCK = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])")
_EXAMPLES = "use e.g. 30s, 10m, 1h, 7d"
_PORT = re.compile(r"[0-9]{1,5}")
_ADDRESS = re.compile(r"(?P<host>\[[^\]]*\]|[^\[\]/:]*)(?::(?P<port>[^/]*))?")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.?")
_RULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_DIGITS = re.compile(r"[0-9]{1,4}")


def parse_duration(text: str) -> float:
    """`30s`, `10m`, `1h`, `7d`, `2w`, `500ms`, `1.5h`, `1h30m` -> seconds. A unit is required."""
    if _NUMBER.fullmatch(text):
        raise ValueError(f"duration needs a unit: {text!r} (did you mean '{text}s'?)")
    total = 0.0
    pos = 0
    last = -1
    for part in _PART.finditer(text):
        if part.start() != pos:
            break
        order = _UNIT_ORDER[part.group(2)]
        if order <= last:
            raise ValueError(f"not a duration: {text!r} (units must go from large to small)")
        last = order
        total += float(part.group(1)) * DURATION_UNITS[part.group(2)]
        pos = part.end()
    if pos == 0 or pos != len(text):
        raise ValueError(f"not a duration: {text!r} ({_EXAMPLES})")
    if total > MAX_DURATION:
        raise ValueError(f"duration too long: {text!r} (at most 36500d)")
    return total


def parse_rate(text: str) -> Rate:
    """`10/min`, `30/s`, `100/h`, `5/10s` -> `Rate(count, per_seconds)`."""
    m = _RATE.fullmatch(text)
    if m is None:
        raise ValueError(f"not a rate: {text!r} (use e.g. 10/min, 30/s, 100/h)")
    count = int(m.group(1))
    unit = m.group(2)
    per = RATE_UNITS.get(unit)
    if per is None:
        try:
            per = parse_duration(unit)
        except ValueError:
            raise ValueError(
                f"not a rate: {text!r} (after '/' use s, min, h, d or a duration like 10s)"
            ) from None
    if count < 1:
        raise ValueError(f"rate must allow at least one message: {text!r}")
    if per <= 0.0:
        raise ValueError(f"rate period must be longer than zero: {text!r}")
    return Rate(count, per)


def parse_clock(text: str) -> datetime.time:
    """`22:00`, `7:30` -> a naive `datetime.time` (the zone is a separate setting)."""
    m = _CLOCK.fullmatch(text)
    if m is None:
        raise ValueError(f"not a time of day: {text!r} (use HH:MM, 00:00 to 23:59)")
    return datetime.time(int(m.group(1)), int(m.group(2)))


def format_duration(seconds: float) -> str:
    """The shortest policy spelling of a duration: 3600 -> `1h`, 5400 -> `1h30m`, 0 -> `0s`,
    90 days -> `90d` (not `12w6d`), 14 days -> `2w`."""
    if seconds <= 0:
        return "0s"
    millis = round(seconds * 1000)
    spellings = [_spell(millis, DURATION_UNITS), _spell(millis, _WITHOUT_WEEKS)]
    return min(spellings, key=len)  # a tie keeps the first: weeks


def _spell(millis: int, units: dict[str, float]) -> str:
    parts: list[str] = []
    for unit, size in units.items():
        step = round(size * 1000)
        if millis >= step:
            parts.append(f"{millis // step}{unit}")
            millis %= step
    return "".join(parts)


def suggest(word: str, choices: Iterable[str]) -> str | None:
    """The choice `word` probably meant: the same letters in another case, else a close spelling."""
    options = list(choices)
    folded = {c.lower(): c for c in options}
    if word.lower() in folded:
        return folded[word.lower()]
    close = difflib.get_close_matches(word.lower(), list(folded), n=1, cutoff=0.6)
    return folded[close[0]] if close else None


def _parse_ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f"not an IP address: {text!r}") from None


def _split_host_port(text: str) -> tuple[str, str | None]:
    m = _ADDRESS.fullmatch(text)
    if m is None or not m.group("host"):
        raise ValueError(f"not HOST:PORT: {text!r}")
    host = m.group("host")
    if host.startswith("["):
        host = host[1:-1]
        if "." in host and ":" not in host:
            raise ValueError(f"only IPv6 addresses go in brackets: {text!r}")
        if ":" not in host:
            raise ValueError(f"not an IPv6 address: {host!r}")
    elif ":" in host:  # pragma: no cover - the regex keeps ':' out of an unbracketed host
        raise ValueError(f"put IPv6 addresses in brackets: {text!r}")
    return host, m.group("port")


def _port(text: str | None, whole: str, *, zero_ok: bool) -> int:
    if text is None:
        raise ValueError(f"missing port in {whole!r}")
    if not _PORT.fullmatch(text) or int(text) > 65535:
        raise ValueError(f"not a port: {text!r}")
    port = int(text)
    if port == 0 and not zero_ok:
        raise ValueError(f"port 0 is not a destination: {whole!r}")
    return port


def parse_endpoint(text: str, *, hostname_ok: bool = False, zero_port_ok: bool = True) -> Endpoint:
    """`udp://HOST:PORT` / `tcp://HOST:PORT` -> `Endpoint`. HOST is an IPv4 address or a bracketed
    IPv6 one (or, with `hostname_ok`, a DNS name); the port is required."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise ValueError(f"not a udp:// or tcp:// address: {text!r}")
    try:
        transport = Transport(scheme)
    except ValueError:
        if scheme.lower() in ("tls", "sips", "ws", "wss"):
            raise ValueError(f"transport {scheme!r} is not supported (udp or tcp)") from None
        raise ValueError(f"not a udp:// or tcp:// address: {text!r}") from None
    if ":" in rest and rest.count(":") > 1 and not rest.startswith("["):
        raise ValueError(f"put IPv6 addresses in brackets: {text!r}")
    host, port_text = _split_host_port(rest)
    if port_text is None:
        hint = f"{text}:5060"
        raise ValueError(f"missing port in {text!r} (did you mean {hint!r}?)")
    port = _port(port_text, text, zero_ok=zero_port_ok)
    try:
        host = _parse_ip(host)
    except ValueError:
        if not hostname_ok or not _HOSTNAME.fullmatch(host) or host.replace(".", "").isdigit():
            raise
    return Endpoint(transport, host, port)


def parse_host_port(text: str) -> HostPort:
    """`127.0.0.1:9460` or `[::1]:9460` -> `HostPort`."""
    if text.isdigit():
        raise ValueError(f"not HOST:PORT: {text!r} (did you mean '127.0.0.1:{text}'?)")
    if text.count(":") > 1 and not text.startswith("["):
        raise ValueError(f"put IPv6 addresses in brackets: {text!r}")
    host, port_text = _split_host_port(text)
    return HostPort(_parse_ip(host), _port(port_text, text, zero_ok=True))


def parse_advertise(text: str) -> str:
    """The public address of sipguard: an IP literal (no brackets), not a wildcard."""
    address = _parse_ip(text.strip("[]"))
    if ipaddress.ip_address(address).is_unspecified:
        raise ValueError(f"not a reachable address: {text!r} (advertise the public IP)")
    return address


def parse_network(text: str) -> Network:
    """`192.0.2.0/24`, `2001:db8::/32` or a plain address (a /32 or /128) -> an ip network."""
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        if "has host bits set" in str(exc):
            fixed = ipaddress.ip_network(text, strict=False)
            raise ValueError(f"host bits set in {text!r} (did you mean '{fixed}'?)") from None
        raise ValueError(f"not a network: {text!r}") from None


def parse_http_url(text: str) -> str:
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(f"not a URL: {text!r}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {text!r}")
    if not parts.hostname or any(c.isspace() for c in text):
        raise ValueError(f"not a URL: {text!r}")
    if port == 0:
        raise ValueError(f"port 0 is not a destination: {text!r}")
    return text


def parse_storage(text: str) -> str:
    if text.startswith("sqlite:"):
        rest = text[len("sqlite:") :]
        if "?" in rest:
            raise ValueError(f"sqlite URL parameters are not supported: {text!r}")
        if rest.startswith("//"):
            after = rest[2:]
            if not after.startswith("/"):
                raise ValueError(
                    f"sqlite URL with a host: {text!r} (use sqlite:///ABSOLUTE/PATH or "
                    "sqlite:RELATIVE/PATH)"
                )
            rest = "/" + after.lstrip("/")
        if not rest:
            raise ValueError(f"sqlite URL without a path: {text!r}")
        return rest
    if "://" in text:
        raise ValueError(
            f"not a storage location: {text!r} (use sqlite:///ABSOLUTE/PATH, "
            "sqlite:RELATIVE/PATH or a path)"
        )
    return text


def parse_rule_name(text: str) -> str:
    if not _RULE_NAME.fullmatch(text):
        raise ValueError(
            f"not a rule name: {text!r} (letters, digits, '-', '_', '.', ':'; at most 64)"
        )
    return text


def parse_digits(text: str) -> str:
    if not _DIGITS.fullmatch(text):
        raise ValueError(f"not a dialling prefix: {text!r} (1 to 4 digits)")
    return text


def parse_timezone(text: str) -> str:
    try:
        zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        hint = suggest(text, zoneinfo.available_timezones())
        tail = f" (did you mean {hint!r}?)" if hint else ""
        raise ValueError(f"unknown time zone: {text!r}{tail}") from None
    return text
