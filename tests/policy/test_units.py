"""The scalar grammars of policy values, one by one."""

from __future__ import annotations

import datetime
from ipaddress import ip_network

import pytest

from sipguard.policy.model import Endpoint, HostPort, Rate, Transport
from sipguard.policy.units import (
    MAX_DURATION,
    format_duration,
    parse_clock,
    parse_digits,
    parse_duration,
    parse_endpoint,
    parse_host_port,
    parse_http_url,
    parse_network,
    parse_rate,
    parse_rule_name,
    parse_storage,
    parse_timezone,
    suggest,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("10m", 600.0),
        ("1h", 3600.0),
        ("7d", 7 * 86400.0),
        ("30d", 30 * 86400.0),
        ("2w", 14 * 86400.0),
        ("500ms", 0.5),
        ("1.5h", 5400.0),
        ("1h30m", 5400.0),
        ("1d2h3m4s", 86400.0 + 7200 + 180 + 4),
        ("0s", 0.0),
        ("0755s", 755.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("30", "duration needs a unit: '30' (did you mean '30s'?)"),
        ("1:30", "not a duration: '1:30' (use e.g. 30s, 10m, 1h, 7d)"),
        ("10 min", "not a duration: '10 min' (use e.g. 30s, 10m, 1h, 7d)"),
        ("10M", "not a duration: '10M' (use e.g. 30s, 10m, 1h, 7d)"),
        ("-5s", "not a duration: '-5s' (use e.g. 30s, 10m, 1h, 7d)"),
        ("", "not a duration: '' (use e.g. 30s, 10m, 1h, 7d)"),
        ("h", "not a duration: 'h' (use e.g. 30s, 10m, 1h, 7d)"),
        ("1h ", "not a duration: '1h ' (use e.g. 30s, 10m, 1h, 7d)"),
        ("1m1h", "not a duration: '1m1h' (units must go from large to small)"),
        ("1h1h", "not a duration: '1h1h' (units must go from large to small)"),
        ("36501d", "duration too long: '36501d' (at most 36500d)"),
        ("9" * 40 + "d", f"not a duration: '{'9' * 40}d' (use e.g. 30s, 10m, 1h, 7d)"),
    ],
)
def test_parse_duration_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=r".*") as info:
        parse_duration(text)
    assert str(info.value) == message


def test_max_duration_is_accepted() -> None:
    assert parse_duration("36500d") == MAX_DURATION


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),
        (30.0, "30s"),
        (3600.0, "1h"),
        (5400.0, "1h30m"),
        (30 * 86400.0, "30d"),
        (90 * 86400.0, "90d"),
        (14 * 86400.0, "2w"),
        (15 * 86400.0 + 3600, "15d1h"),
        (0.25, "250ms"),
        (86400.0 + 1, "1d1s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("10/min", Rate(10, 60.0)),
        ("30/s", Rate(30, 1.0)),
        ("100/h", Rate(100, 3600.0)),
        ("1000/day", Rate(1000, 86400.0)),
        ("5/10s", Rate(5, 10.0)),
        ("3/m", Rate(3, 60.0)),
        ("2/1h30m", Rate(2, 5400.0)),
    ],
)
def test_parse_rate(text: str, rate: Rate) -> None:
    assert parse_rate(text) == rate


def test_rate_per_second() -> None:
    assert parse_rate("30/min").per_second == pytest.approx(0.5)
    assert Rate(10, 1.0).per_second == 10.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10 per min", "not a rate: '10 per min' (use e.g. 10/min, 30/s, 100/h)"),
        ("10", "not a rate: '10' (use e.g. 10/min, 30/s, 100/h)"),
        ("/min", "not a rate: '/min' (use e.g. 10/min, 30/s, 100/h)"),
        ("0/s", "rate must allow at least one message: '0/s'"),
        ("10/0s", "rate period must be longer than zero: '10/0s'"),
        (
            "10/fortnight",
            "not a rate: '10/fortnight' (after '/' use s, min, h, d or a duration like 10s)",
        ),
    ],
)
def test_parse_rate_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=r".*") as info:
        parse_rate(text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("text", "value"),
    [("22:00", datetime.time(22, 0)), ("7:30", datetime.time(7, 30)), ("00:00", datetime.time(0))],
)
def test_parse_clock(text: str, value: datetime.time) -> None:
    assert parse_clock(text) == value


@pytest.mark.parametrize("text", ["24:00", "25:00", "7am", "1320", "22:60", "22:0", ""])
def test_parse_clock_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a time of day"):
        parse_clock(text)


@pytest.mark.parametrize(
    ("text", "endpoint"),
    [
        ("udp://0.0.0.0:5060", Endpoint(Transport.UDP, "0.0.0.0", 5060)),
        ("tcp://10.0.0.5:5080", Endpoint(Transport.TCP, "10.0.0.5", 5080)),
        ("udp://[::1]:5060", Endpoint(Transport.UDP, "::1", 5060)),
        ("udp://[0:0::1]:0", Endpoint(Transport.UDP, "::1", 0)),
        ("tcp://[2001:DB8::5]:65535", Endpoint(Transport.TCP, "2001:db8::5", 65535)),
        ("udp://127.0.0.1:05060", Endpoint(Transport.UDP, "127.0.0.1", 5060)),
    ],
)
def test_parse_endpoint(text: str, endpoint: Endpoint) -> None:
    assert parse_endpoint(text) == endpoint


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sip:1.2.3.4:5060", "not a udp:// or tcp:// address: 'sip:1.2.3.4:5060'"),
        ("1.2.3.4:5060", "not a udp:// or tcp:// address: '1.2.3.4:5060'"),
        ("UDP://1.2.3.4:5060", "not a udp:// or tcp:// address: 'UDP://1.2.3.4:5060'"),
        ("tls://1.2.3.4:5061", "transport 'tls' is not supported (udp or tcp)"),
        ("udp://1.2.3.4", "missing port in 'udp://1.2.3.4' (did you mean 'udp://1.2.3.4:5060'?)"),
        ("udp://1.2.3.4:", "not a port: ''"),
        ("udp://1.2.3.4:70000", "not a port: '70000'"),
        ("udp://1.2.3.4:-1", "not a port: '-1'"),
        ("udp://1.2.3.4:5060/x", "not HOST:PORT: '1.2.3.4:5060/x'"),
        ("udp://::1:5060", "put IPv6 addresses in brackets: 'udp://::1:5060'"),
        ("udp://[1.2.3.4]:5060", "only IPv6 addresses go in brackets: '[1.2.3.4]:5060'"),
        ("udp://[pbx]:5060", "not an IPv6 address: 'pbx'"),
        ("udp://pbx.example.net:5060", "not an IP address: 'pbx.example.net'"),
        ("udp://010.0.0.1:5060", "not an IP address: '010.0.0.1'"),
        ("udp://:5060", "not HOST:PORT: ':5060'"),
    ],
)
def test_parse_endpoint_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=r".*") as info:
        parse_endpoint(text)
    assert str(info.value) == message


def test_parse_endpoint_hostnames_and_port_zero_are_per_field() -> None:
    assert parse_endpoint("udp://logs.example.net:514", hostname_ok=True).host == "logs.example.net"
    with pytest.raises(ValueError, match=r"not an IP address: '999\.1\.1\.1'"):
        parse_endpoint("udp://999.1.1.1:514", hostname_ok=True)
    with pytest.raises(ValueError, match="port 0 is not a destination"):
        parse_endpoint("udp://10.0.0.5:0", zero_port_ok=False)


def test_endpoint_url_brackets_ipv6() -> None:
    assert Endpoint(Transport.UDP, "::1", 5060).url == "udp://[::1]:5060"
    assert str(Endpoint(Transport.TCP, "192.0.2.1", 0)) == "tcp://192.0.2.1:0"


def test_parse_host_port() -> None:
    assert parse_host_port("127.0.0.1:9460") == HostPort("127.0.0.1", 9460)
    assert parse_host_port("[::1]:9460") == HostPort("::1", 9460)
    assert str(HostPort("::1", 9460)) == "[::1]:9460"
    for bad, message in [
        ("localhost:9460", "not an IP address: 'localhost'"),
        ("127.0.0.1", "missing port in '127.0.0.1'"),
        ("::1:9460", "put IPv6 addresses in brackets: '::1:9460'"),
    ]:
        with pytest.raises(ValueError, match=r".*") as info:
            parse_host_port(bad)
        assert str(info.value) == message


@pytest.mark.parametrize(
    ("text", "network"),
    [
        ("192.0.2.0/24", "192.0.2.0/24"),
        ("192.0.2.7", "192.0.2.7/32"),
        ("2001:db8::/32", "2001:db8::/32"),
        ("2001:db8::1", "2001:db8::1/128"),
        ("0.0.0.0/0", "0.0.0.0/0"),
    ],
)
def test_parse_network(text: str, network: str) -> None:
    assert parse_network(text) == ip_network(network)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("192.0.2.5/24", "host bits set in '192.0.2.5/24' (did you mean '192.0.2.0/24'?)"),
        ("2001:db8::1/32", "host bits set in '2001:db8::1/32' (did you mean '2001:db8::/32'?)"),
        ("10.0.0.0/33", "not a network: '10.0.0.0/33'"),
        ("10.0.0/8", "not a network: '10.0.0/8'"),
        ("example.net", "not a network: 'example.net'"),
    ],
)
def test_parse_network_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=r".*") as info:
        parse_network(text)
    assert str(info.value) == message


def test_parse_http_url() -> None:
    assert parse_http_url("https://noc.example.net/hook") == "https://noc.example.net/hook"
    assert parse_http_url("http://127.0.0.1:8080/x?y=1") == "http://127.0.0.1:8080/x?y=1"
    for bad, message in [
        ("ftp://noc.example.net/", "not an http(s) URL: 'ftp://noc.example.net/'"),
        ("noc.example.net/hook", "not an http(s) URL: 'noc.example.net/hook'"),
        ("https:///hook", "not a URL: 'https:///hook'"),
        ("https://noc.example.net:99999/", "not a URL: 'https://noc.example.net:99999/'"),
        ("https://noc.example.net:0/", "port 0 is not a destination: 'https://noc.example.net:0/'"),
        ("https://noc example/", "not a URL: 'https://noc example/'"),
    ]:
        with pytest.raises(ValueError, match=r".*") as info:
            parse_http_url(bad)
        assert str(info.value) == message


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("sqlite:///var/lib/sipguard/sipguard.db", "/var/lib/sipguard/sipguard.db"),
        ("sqlite:////var/lib/sipguard.db", "/var/lib/sipguard.db"),
        ("sqlite:var/sipguard.db", "var/sipguard.db"),
        ("sqlite:../var/sipguard.db", "../var/sipguard.db"),
        ("sqlite:/abs.db", "/abs.db"),
        ("sipguard.db", "sipguard.db"),
        ("/srv/sipguard.db", "/srv/sipguard.db"),
    ],
)
def test_parse_storage(text: str, path: str) -> None:
    assert parse_storage(text) == path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "sqlite://host/x.db",
            "sqlite URL with a host: 'sqlite://host/x.db' "
            "(use sqlite:///ABSOLUTE/PATH or sqlite:RELATIVE/PATH)",
        ),
        ("sqlite:", "sqlite URL without a path: 'sqlite:'"),
        ("sqlite:x.db?mode=ro", "sqlite URL parameters are not supported: 'sqlite:x.db?mode=ro'"),
        (
            "postgres://db/x",
            "not a storage location: 'postgres://db/x' "
            "(use sqlite:///ABSOLUTE/PATH, sqlite:RELATIVE/PATH or a path)",
        ),
    ],
)
def test_parse_storage_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=r".*") as info:
        parse_storage(text)
    assert str(info.value) == message


def test_parse_rule_name() -> None:
    for good in ["scanners", "benelux-only-registrations", "r1", "geo.nl:v2", "A_B", "x" * 64]:
        assert parse_rule_name(good) == good
    for bad in ["", "has spaces", "-leading", "x" * 65, "naïve"]:
        with pytest.raises(ValueError, match="not a rule name"):
            parse_rule_name(bad)


def test_parse_digits() -> None:
    assert parse_digits("0") == "0"
    assert parse_digits("9") == "9"
    assert parse_digits("0000") == "0000"
    for bad in ["", "+0", "00000", "a"]:
        with pytest.raises(ValueError, match="not a dialling prefix"):
            parse_digits(bad)


def test_parse_timezone() -> None:
    assert parse_timezone("Europe/Amsterdam") == "Europe/Amsterdam"
    assert parse_timezone("UTC") == "UTC"
    with pytest.raises(ValueError, match=r".*") as info:
        parse_timezone("Europe/Amsterdm")
    assert (
        str(info.value) == "unknown time zone: 'Europe/Amsterdm' (did you mean 'Europe/Amsterdam'?)"
    )
    for bad in ["Mars/Olympus", "../../etc/passwd", "", "/etc/localtime"]:
        with pytest.raises(ValueError, match="unknown time zone"):
            parse_timezone(bad)


def test_suggest() -> None:
    keys = ["listen", "upstream", "rules", "bans"]
    assert suggest("upstrem", keys) == "upstream"
    assert suggest("RULES", keys) == "rules"
    assert suggest("Lisen", keys) == "listen"
    assert suggest("xyz", keys) is None
    assert suggest("register", ["REGISTER", "INVITE"]) == "REGISTER"
